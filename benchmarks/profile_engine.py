"""Profile the fast engine on one bench workload: CPU seconds and the top functions (cProfile, by own time).

Usage: ``python benchmarks/profile_engine.py --kind free_text --samples 2 [--layers 0-29] [--top 25]
[--model gemma3-270m]``.
Uses the same pairs and CAA vector as ``bench_engine.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import MULTIPLIERS, load_pairs  # noqa: E402

from interp_steer.evaluation.fast_engine import fast_propensities  # noqa: E402
from interp_steer.methods import extract_caa  # noqa: E402
from interp_steer.models import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["ab", "free_text"], default="free_text")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--layers", default="all", help="'all' or 'A-B'")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="smollm2-135m", help="a built-in model name (see bench_engine.py --model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    ab, ft, train = load_pairs(args.samples, 32)
    vector = extract_caa(model, train, layers=list(range(model.cfg.n_layers)), progress=False)
    lo, hi = (0, model.cfg.n_layers - 1) if args.layers == "all" else map(int, args.layers.split("-"))
    vectors = {layer: vector for layer in range(lo, hi + 1)}
    pairs = ab if args.kind == "ab" else ft
    fast_propensities(model, pairs[:1], {lo: vector}, MULTIPLIERS, progress=False)  # warm-up
    profiler = cProfile.Profile()
    cpu = time.process_time()
    profiler.enable()
    fast_propensities(model, pairs, vectors, MULTIPLIERS, progress=False)
    profiler.disable()
    cpu = time.process_time() - cpu
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print(f"{args.kind}, {len(pairs)} samples, layers {lo}-{hi}: {cpu:.1f} CPU s (under cProfile)")
    print(out.getvalue())


if __name__ == "__main__":
    main()

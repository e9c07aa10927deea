"""Propensity-engine benchmark: naive TL loop vs batched engine vs fast engine vs steering-vectors, one table.

Workloads (embedded SmolLM2-135M, CPU): N samples × 7 multipliers × {all 30 layers ("layer scan"), one layer},
for A/B pairs (persona: desire-for-acquiring-power) and free-text pairs (builtin sentiment). Every engine runs in
this one process on the same samples (steering-vectors in its own venv, on the Hugging Face model from the same
GGUF). Slow engines are timed on a subset (fewer samples and/or layers) and extrapolated linearly; the table says
which. Usage: ``python benchmarks/bench_engine.py [--smoke] [--skip-sv] [--markdown out.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from interp_steer.data import ContrastivePair  # noqa: E402
from interp_steer.evaluation.fast_engine import fast_propensities  # noqa: E402
from interp_steer.evaluation.naive import naive_propensities  # noqa: E402
from interp_steer.evaluation.propensity import compute_propensities, scoring_rows  # noqa: E402
from interp_steer.methods import extract_caa  # noqa: E402
from interp_steer.models import load_model  # noqa: E402
from interp_steer.models.embedded import embedded_gguf_path  # noqa: E402

SV_VENV = HERE / ".venv-sv"
MULTIPLIERS = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
KEY = ["layer", "sample_id", "multiplier"]


# ----------------------------------------------------------------------------------------------- measurement
class PeakRss:
    """Peak resident memory above the level at entry, sampled every 5 ms in a thread."""

    def __enter__(self):
        self.base = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.delta_mb = self.peak - self.base


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def gemm_gflops(seconds: float = 2.0) -> float:
    """fp32 matmul GFLOP per CPU-second at the model's layer shapes (for the FLOP floor).

    Per CPU-second rather than per wall-second, so the floor is comparable with the engines' CPU time on a
    machine shared with other jobs."""
    a, b = torch.randn(512, 576), torch.randn(576, 1536)
    a @ b
    count, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        a @ b
        count += 1
    return 2 * 512 * 576 * 1536 * count / (time.process_time() - start) / 1e9


def flop_floor(model, pairs, layers, n_mult) -> float:
    """2 × params × tokens each result needs: prefixes once, the suffix above each steered layer per multiplier,
    and only the scored unembedding columns (attention score FLOPs ignored)."""
    cfg = model.cfg
    block = sum(p.numel() for p in model.blocks[0].parameters())
    rows = scoring_rows(model.tokenizer, pairs)
    prefix_tokens = sum(len(p) for p in {r.ids[: r.steer_from] for r in rows})
    suffix = [len(r.ids) - r.steer_from for r in rows]
    token_layers = prefix_tokens * cfg.n_layers + sum(suffix) * (max(layers) + 1)
    token_layers += sum(s * n_mult * (cfg.n_layers - layer - 1) for s in suffix for layer in layers)
    unembed = sum((2 if r.letters else cfg.d_vocab * (len(r.ids) - r.score_from)) for r in rows) * cfg.d_model
    return 2.0 * (token_layers * block + unembed * n_mult * len(layers))


# ------------------------------------------------------------------------------------------------- engines
@dataclass
class Result:
    engine: str
    wall_s: float  # extrapolated to the full workload where `note` says so
    frame: pd.DataFrame | None
    peak_mb: float
    cpu_s: float  # process CPU time (all threads), extrapolated like wall_s
    note: str = ""


def per_layer(engine, model, pairs, vector, layers, **kwargs) -> pd.DataFrame:
    return pd.concat([engine(model, pairs, vector.select(layer), MULTIPLIERS, **kwargs) for layer in layers],
                     ignore_index=True)


def timed(fn):
    """(result, wall seconds, process CPU seconds, peak RSS increase in MB)."""
    with PeakRss() as mem:
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return out, wall, cpu, mem.delta_mb


def run_sv(model, pairs, vector, layers) -> tuple[dict, str] | tuple[None, str]:
    """steering-vectors in its own venv; ``(json result, "")`` or ``(None, reason)``."""
    python = SV_VENV / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(SV_VENV)], check=True, capture_output=True)
        probe = subprocess.run([str(python), "-c", "import steering_vectors, transformers, gguf, accelerate"], capture_output=True)
        if probe.returncode != 0:
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "steering-vectors==0.12.2",
                            "transformers<5", "gguf", "accelerate", "torch==2.13.0"], check=True, capture_output=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not set up {SV_VENV}: {exc}"
    gguf = embedded_gguf_path()
    rows = [{"ids": list(r.ids), "steer_from": r.steer_from, "letters": list(r.letters) if r.letters else None,
             "score_from": r.score_from, "sample": r.sample, "side": r.side}
            for r in scoring_rows(model.tokenizer, pairs)]
    job = {"gguf_dir": str(gguf.parent), "gguf_file": gguf.name, "rows": rows, "layers": list(layers),
           "multipliers": MULTIPLIERS, "threads": torch.get_num_threads(),
           "directions": {layer: vector[layer].float().cpu() for layer in layers}}
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(job, f"{tmp}/job.pt")
        done = subprocess.run([str(python), str(HERE / "sv_worker.py"), f"{tmp}/job.pt", f"{tmp}/out.json"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            return None, "steering-vectors worker failed: " + done.stderr.strip().splitlines()[-1][:200]
        return json.loads(Path(f"{tmp}/out.json").read_text()), ""


def sv_frame(result: dict, pairs) -> pd.DataFrame:
    """Raw worker scores → (layer, sample_id, multiplier, propensity)."""
    raw = {(layer, sample, side, m): value for layer, sample, side, m, value in result["scores"]}
    records = []
    for (layer, sample, side, m), value in raw.items():
        if side == "neg":
            continue
        value = value - raw[(layer, sample, "neg", m)] if side == "pos" else value
        records.append({"layer": layer, "sample_id": pairs[sample].id, "multiplier": m, "propensity": value})
    return pd.DataFrame.from_records(records)


def max_abs_diff(frame: pd.DataFrame | None, reference: pd.DataFrame) -> float:
    if frame is None:
        return float("nan")
    """Over the (layer, sample, multiplier) cells both tables have."""
    merged = reference[KEY + ["propensity"]].merge(frame[KEY + ["propensity"]], on=KEY, suffixes=("_ref", ""))
    return float((merged["propensity"] - merged["propensity_ref"]).abs().max()) if len(merged) else float("nan")


# ----------------------------------------------------------------------------------------------- workloads
def load_pairs(n: int, n_train: int) -> tuple[list[ContrastivePair], list[ContrastivePair], list[ContrastivePair]]:
    """(A/B eval pairs, free-text eval pairs, A/B training pairs for the CAA vector)."""
    try:
        from interp_steer.data import load_dataset

        ab = list(load_dataset("persona:desire-for-acquiring-power"))
        ft = list(load_dataset("builtin:sentiment", framing="free_text"))
    except (ImportError, TypeError):
        from interp_steer.data.mwe import load_persona_ab

        ab = list(load_persona_ab("desire-for-acquiring-power"))
        things = [json.loads(line)["thing"] for line in
                  (HERE.parent / "interp_steer/data/builtin/sentiment.jsonl").read_text().splitlines() if line.strip()]
        ft = [ContrastivePair(f"What do you think of {t}?", f" I really love {t}.", f" I really hate {t}.",
                              kind="free_text", id=f"sentiment#{i}", dataset="builtin:sentiment")
              for i, t in enumerate(things)]
    return ab[:n], ft[:n], ab[-n_train:]


def bench_workload(name, model, pairs, vector, layers, args, gflops) -> list[dict]:
    n_layers_naive = min(len(layers), args.naive_layers)
    naive_layers = [layers[round(i * (len(layers) - 1) / max(n_layers_naive - 1, 1))] for i in range(n_layers_naive)]
    subset = pairs[: args.naive_samples]
    scale_naive = (len(pairs) / len(subset)) * (len(layers) / len(naive_layers))
    results = []
    ref, wall, cpu, mem = timed(lambda: per_layer(naive_propensities, model, subset, vector, naive_layers))
    results.append(Result("naive TL loop", wall * scale_naive, ref, mem, cpu * scale_naive,
                          f"timed {len(subset)} samples × {len(naive_layers)} layers, ×{scale_naive:g}"))
    # the batched engine always runs the whole model, so its cost per layer does not depend on the layer
    batched_layers = naive_layers[-1:]
    scale_b = len(layers) / len(batched_layers)
    frame, wall, cpu, mem = timed(lambda: per_layer(compute_propensities, model, pairs, vector, batched_layers, batch_size=32))
    results.append(Result("batched (compute_propensities)", wall * scale_b, frame, mem, cpu * scale_b,
                          f"timed {len(batched_layers)} layers, ×{scale_b:g}" if scale_b != 1 else ""))
    frame, wall, cpu, mem = timed(lambda: fast_propensities(model, pairs, {layer: vector for layer in layers}, MULTIPLIERS,
                                                       progress=False))
    results.append(Result("fast (fast_propensities)", wall, frame, mem, cpu))
    if not args.skip_sv:
        out, why = run_sv(model, subset, vector, naive_layers)
        if out is None:
            print(f"[{name}] steering-vectors row skipped: {why}", file=sys.stderr)
        else:
            results.append(Result("steering-vectors 0.12.2 (HF)", out["wall_s"] * scale_naive, sv_frame(out, subset),
                                  out["peak_rss_delta_mb"], out["cpu_s"] * scale_naive, f"timed {len(subset)} samples × {len(naive_layers)} layers, ×{scale_naive:g}"))
    units = len(pairs) * len(MULTIPLIERS) * len(layers)
    floor_s = flop_floor(model, pairs, layers, len(MULTIPLIERS)) / (gflops * 1e9)
    naive_wall, naive_cpu = results[0].wall_s, results[0].cpu_s
    return [{
        "workload": name, "engine": r.engine, "wall s": r.wall_s, "CPU s": r.cpu_s, "units/s": units / r.wall_s,
        "speed-up vs naive (wall)": naive_wall / r.wall_s, "speed-up vs naive (CPU)": naive_cpu / r.cpu_s, "max |Δ| vs naive": max_abs_diff(r.frame, ref),
        "peak RSS +MB": r.peak_mb, "FLOP-floor CPU s": floor_s, "floor fraction (CPU)": floor_s / r.cpu_s, "note": r.note,
    } for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a quick end-to-end check")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--naive-samples", type=int, default=8, help="samples the naive loop / steering-vectors time")
    parser.add_argument("--naive-layers", type=int, default=2, help="layers the slow engines time in the layer scan")
    parser.add_argument("--single-layer", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-sv", action="store_true", help="leave out the steering-vectors row")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.naive_samples, args.naive_layers = 4, 2, 2
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model = load_model()
    ab, ft, train = load_pairs(args.samples, 32)
    vector = extract_caa(model, train, layers=list(range(model.cfg.n_layers)), progress=False)
    gflops = gemm_gflops()
    print(f"machine: {os.cpu_count()} CPUs, torch threads {args.threads}, fp32 GEMM ≈ {gflops:.1f} GFLOP per CPU-second", flush=True)
    rows = []
    all_layers = list(range(model.cfg.n_layers))
    for kind, pairs in (("A/B", ab), ("free text", ft)):
        for scope, layers in (("layer scan", all_layers), ("single layer", [args.single_layer])):
            name = f"{kind}, {scope} ({len(pairs)}×{len(MULTIPLIERS)}×{len(layers)})"
            print(f"running {name} …", file=sys.stderr, flush=True)
            done = bench_workload(name, model, pairs, vector, layers, args, gflops)
            for row in done:  # progress while the rest runs
                print(f"  {row['engine']}: wall {row['wall s']:.1f} s, CPU {row['CPU s']:.1f} s, "
                      f"×{row['speed-up vs naive (CPU)']:.1f} (CPU) vs naive", file=sys.stderr, flush=True)
            rows += done
    table = pd.DataFrame(rows)
    formats = {"wall s": "{:.1f}", "CPU s": "{:.1f}", "units/s": "{:.1f}", "speed-up vs naive (wall)": "{:.1f}×",
               "speed-up vs naive (CPU)": "{:.1f}×", "max |Δ| vs naive": "{:.1e}",
               "peak RSS +MB": "{:.0f}", "FLOP-floor CPU s": "{:.2f}", "floor fraction (CPU)": "{:.1%}"}
    shown = table.copy()
    for col, fmt in formats.items():
        shown[col] = shown[col].map(fmt.format)
    markdown = markdown_table(shown)
    print(markdown)
    if args.markdown:
        args.markdown.write_text(markdown + "\n")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency)."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

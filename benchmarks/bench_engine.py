"""Propensity-engine benchmark: naive TL loop vs batched engine vs fast engine vs steering-vectors, one table.

Workloads (embedded SmolLM2-135M by default, or ``--model gemma3-270m``; CPU by default): N samples × 7 multipliers × {all layers ("layer scan"), one
layer}, for A/B pairs (persona: desire-for-acquiring-power) and free-text pairs (builtin sentiment). Every engine runs
in this one process on the same samples (steering-vectors in a worker process, on the Hugging Face model from the
same GGUF, at batch 1 and in its best use). Slow engines are timed on a subset (fewer samples and/or layers) and
extrapolated linearly; the table says which. The optional engine ``fast-tl`` is the fast engine with
TransformerLens's own block and a per-row key/value copy instead of the shared-prefix block (what architectures the
shared block does not cover get). Usage: ``python benchmarks/bench_engine.py [--model gemma3-270m] [--smoke]
[--skip-sv] [--engines naive,batched,fast,fast-tl,sv] [--markdown out.md]``; on a GPU: ``--device cuda --dtype bfloat16 --shape llama2-7b --random-weights``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_shapes import DTYPES, SHAPES, random_model  # noqa: E402
from peak_rss import PeakRss, rss_mb  # noqa: E402

import interp_steer.evaluation.fast_engine as fast_engine  # noqa: E402
from interp_steer.data import ContrastivePair  # noqa: E402
from interp_steer.evaluation.fast_engine import fast_propensities  # noqa: E402
from interp_steer.evaluation.naive import naive_propensities  # noqa: E402
from interp_steer.evaluation.propensity import compute_propensities, scoring_rows  # noqa: E402
from interp_steer.methods import extract_caa  # noqa: E402
from interp_steer.models import load_model  # noqa: E402
from interp_steer.models.embedded import (  # noqa: E402
    EMBEDDED_MODEL_NAME,
    GEMMA_MODEL_NAME,
    MODEL_REGISTRY,
    embedded_gguf_path,
    gemma_gguf_path,
)

SV_VENV = HERE / ".venv-sv"
MULTIPLIERS = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
KEY = ["layer", "sample_id", "multiplier"]


# ----------------------------------------------------------------------------------------------- measurement
def gemm_gflops(model, seconds: float = 2.0) -> float:
    """Matmul GFLOP per second at the model's MLP shape, dtype and device (for the FLOP floor).

    On CPU per CPU-second rather than per wall-second, so the floor is comparable with the engines' CPU time on a
    machine shared with other jobs; on a GPU per wall-second (synchronised)."""
    cfg = model.cfg
    rows = 512 if cfg.device in ("cpu", None) else 8192
    a = torch.randn(rows, cfg.d_model, dtype=cfg.dtype, device=cfg.device)
    b = torch.randn(cfg.d_model, cfg.d_mlp, dtype=cfg.dtype, device=cfg.device)
    clock = _clock(cfg.device)
    a @ b
    _sync(cfg.device)
    count, start = 0, clock()
    while clock() - start < seconds:
        a @ b
        count += 1
        if count % 16 == 0:
            _sync(cfg.device)
    _sync(cfg.device)
    return 2 * rows * cfg.d_model * cfg.d_mlp * count / (clock() - start) / 1e9


def _on_gpu(device) -> bool:
    return str(device).startswith("cuda")


def _sync(device) -> None:
    if _on_gpu(device):
        torch.cuda.synchronize()


def _clock(device):
    """The clock the floor is compared with: process CPU time on CPU, wall time on a GPU."""
    return time.perf_counter if _on_gpu(device) else time.process_time


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


DEVICE = "cpu"
MODEL_GGUF = {EMBEDDED_MODEL_NAME: embedded_gguf_path, GEMMA_MODEL_NAME: gemma_gguf_path}
"""The GGUF each built-in model is converted from (steering-vectors loads the Hugging Face model from it)."""


def fast_with_tl_block(model, pairs, vectors, multipliers, **kwargs) -> pd.DataFrame:
    """The fast engine with TransformerLens's own block (per-row key/value copy) instead of the shared-prefix
    block: the path of architectures ``supports_shared_prefix_block`` does not cover (before issue #24: every model
    with QK-norm, post-norms, local windows or parallel blocks, i.e. Gemma 2/3, Mistral, NeoX)."""
    original = fast_engine.supports_shared_prefix_block
    fast_engine.supports_shared_prefix_block = lambda model: False
    try:
        return fast_propensities(model, pairs, vectors, multipliers, **kwargs)
    finally:
        fast_engine.supports_shared_prefix_block = original


def timed(fn):
    """(result, wall seconds, process CPU seconds, peak memory increase in MB: RSS on CPU, allocated GPU memory
    on a GPU)."""
    gpu = _on_gpu(DEVICE)
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    with PeakRss() as mem:
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        _sync(DEVICE)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if gpu else mem.delta_mb
    return out, wall, cpu, peak


def _sv_python() -> tuple[Path | None, str]:
    """A Python with steering-vectors 0.12.2, transformers, gguf and accelerate: ``benchmarks/.venv-sv`` if present,
    else this interpreter if it has them, else a new ``.venv-sv`` (pip)."""
    probe = "import steering_vectors, transformers, gguf, accelerate"
    venv_python = SV_VENV / "bin" / "python"
    for python in (venv_python, Path(sys.executable)):
        if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
            return python, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(SV_VENV)], check=True, capture_output=True)
        subprocess.run([str(venv_python), "-m", "pip", "install", "--quiet", "steering-vectors==0.12.2",
                        "transformers<5", "gguf", "accelerate", "torch==2.13.0"], check=True, capture_output=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not set up {SV_VENV}: {exc}"
    return venv_python, ""


def run_sv(model, pairs, batch1_pairs, vector, layers, model_name: str) -> tuple[dict, str] | tuple[None, str]:
    """steering-vectors in a worker process, at batch 1 (on ``batch1_pairs``) and batched per (layer, multiplier)
    (on ``pairs``); ``({mode: json result}, "")`` or ``(None, reason)``."""
    python, why = _sv_python()
    if python is None:
        return None, why
    gguf = MODEL_GGUF[model_name]()

    def as_rows(chosen):
        return [{"ids": list(r.ids), "steer_from": r.steer_from, "letters": list(r.letters) if r.letters else None,
                 "score_from": r.score_from, "sample": r.sample, "side": r.side}
                for r in scoring_rows(model.tokenizer, chosen)]

    job = {"gguf_dir": str(gguf.parent), "gguf_file": gguf.name, "rows": as_rows(pairs), "rows_batch1": as_rows(batch1_pairs),
           "layers": list(layers), "multipliers": MULTIPLIERS, "threads": torch.get_num_threads(), "modes": ["batch1", "batched"],
           "directions": {layer: vector[layer].float().cpu() for layer in layers}}
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(job, f"{tmp}/job.pt")
        done = subprocess.run([str(python), str(HERE / "sv_worker.py"), f"{tmp}/job.pt", f"{tmp}/out.json"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            return None, "steering-vectors worker failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:200]
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
    scale_layers = len(layers) / len(naive_layers)
    engines = set(args.engines.split(","))
    results = []
    ref = None
    if "naive" in engines:
        ref, wall, cpu, mem = timed(lambda: per_layer(naive_propensities, model, subset, vector, naive_layers))
        results.append(Result("naive TL loop", wall * scale_naive, ref, mem, cpu * scale_naive,
                              f"timed {len(subset)} samples × {len(naive_layers)} layers, ×{scale_naive:g}"))
    if "batched" in engines:
        # the batched engine always runs the whole model, so its cost per layer does not depend on the layer
        batched_layers = naive_layers[-1:]
        scale_b = len(layers) / len(batched_layers)
        frame, wall, cpu, mem = timed(lambda: per_layer(compute_propensities, model, pairs, vector, batched_layers, batch_size=32))
        results.append(Result("batched (compute_propensities)", wall * scale_b, frame, mem, cpu * scale_b,
                              f"timed {len(batched_layers)} layers, ×{scale_b:g}" if scale_b != 1 else ""))
    if "fast" in engines:
        frame, wall, cpu, mem = timed(lambda: fast_propensities(model, pairs, {layer: vector for layer in layers},
                                                                MULTIPLIERS, progress=False))
        results.append(Result("fast (fast_propensities)", wall, frame, mem, cpu))
    if "fast-tl" in engines:
        frame, wall, cpu, mem = timed(lambda: fast_with_tl_block(model, pairs, {layer: vector for layer in layers},
                                                                 MULTIPLIERS, progress=False))
        results.append(Result("fast, TransformerLens block + per-row KV copy", wall, frame, mem, cpu))
    if "sv" in engines and not args.skip_sv:
        out, why = (None, "no Hugging Face model for --random-weights") if args.random_weights else \
            run_sv(model, pairs, subset, vector, naive_layers, args.model)
        if out is None:
            print(f"[{name}] steering-vectors rows skipped: {why}", file=sys.stderr)
        else:
            one = out["batch1"]
            results.append(Result("steering-vectors 0.12.2 (HF), batch 1", one["wall_s"] * scale_naive, sv_frame(one, subset),
                                  one["peak_rss_delta_mb"], one["cpu_s"] * scale_naive,
                                  f"timed {len(subset)} samples × {len(naive_layers)} layers, ×{scale_naive:g}"))
            best = out["batched"]
            results.append(Result("steering-vectors 0.12.2 (HF), batched per layer × multiplier", best["wall_s"] * scale_layers,
                                  sv_frame(best, pairs), best["peak_rss_delta_mb"], best["cpu_s"] * scale_layers,
                                  f"timed {len(pairs)} samples × {len(naive_layers)} layers, ×{scale_layers:g}"
                                  if scale_layers != 1 else ""))
    units = len(pairs) * len(MULTIPLIERS) * len(layers)
    floor_s = flop_floor(model, pairs, layers, len(MULTIPLIERS)) / (gflops * 1e9)
    naive = results[0] if results and results[0].engine == "naive TL loop" else None
    gpu = _on_gpu(DEVICE)
    return [{
        "workload": name, "engine": r.engine, "wall s": r.wall_s, "CPU s": r.cpu_s, "units/s": units / r.wall_s,
        "speed-up vs naive (wall)": naive.wall_s / r.wall_s if naive else float("nan"),
        "speed-up vs naive (CPU)": naive.cpu_s / r.cpu_s if naive else float("nan"),
        "max abs Δ vs naive": max_abs_diff(r.frame, ref) if ref is not None else float("nan"),
        "peak RSS +MB" if not gpu else "peak GPU memory +MB": r.peak_mb, "FLOP-floor CPU s" if not gpu else "FLOP-floor s": floor_s,
        "floor fraction (CPU)" if not gpu else "floor fraction (wall)": floor_s / (r.wall_s if gpu else r.cpu_s), "note": r.note,
    } for r in results]


WORKLOADS = ("ab-scan", "ab-one", "ft-scan", "ft-one")


def main() -> None:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a quick end-to-end check")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--naive-samples", type=int, default=8, help="samples the naive loop / steering-vectors time")
    parser.add_argument("--naive-layers", type=int, default=2, help="layers the slow engines time in the layer scan")
    parser.add_argument("--single-layer", type=int, default=13, help="the single-layer workloads' layer (clipped to the model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-sv", action="store_true", help="leave out the steering-vectors rows")
    parser.add_argument("--engines", default="naive,batched,fast,sv",
                        help="comma list of naive, batched, fast, fast-tl (fast engine on TransformerLens's block), sv")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    parser.add_argument("--scan-layers", help="'A-B': the layer-scan workloads scan layers A…B only (default: all)")
    parser.add_argument("--device", default="cpu", help="torch device for the model and every engine (e.g. cuda)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--model", default=EMBEDDED_MODEL_NAME, choices=sorted(MODEL_REGISTRY),
                        help="the built-in model to benchmark (real weights; ignored with --random-weights)")
    parser.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES),
                        help="model shape for --random-weights")
    parser.add_argument("--random-weights", action="store_true", help="random weights of --shape (no download, no conversion)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.naive_samples, args.naive_layers = 4, 2, 2
    bad = [w for w in args.workloads.split(",") if w not in WORKLOADS]
    if bad:
        parser.error(f"--workloads: unknown {bad}; choose from {', '.join(WORKLOADS)}")
    if not args.random_weights and args.shape != "smollm2-135m":
        parser.error(f"--shape {args.shape} needs --random-weights (real weights: --model)")
    bad = [e for e in args.engines.split(",") if e not in ("naive", "batched", "fast", "fast-tl", "sv")]
    if bad:
        parser.error(f"--engines: unknown {bad}; choose from naive, batched, fast, fast-tl, sv")
    if _on_gpu(args.device) and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch.cuda.is_available() is False")
    DEVICE = args.device
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.random_weights:
        model = random_model(args.shape, device=args.device, dtype=DTYPES[args.dtype])
    else:
        model = load_model(args.model)
        if args.device != "cpu":
            model.to(args.device)
        if DTYPES[args.dtype] != model.cfg.dtype:
            model.to(DTYPES[args.dtype])
            model.cfg.dtype = DTYPES[args.dtype]
    ab, ft, train = load_pairs(args.samples, 32)
    vector = extract_caa(model, train, layers=list(range(model.cfg.n_layers)), progress=False)
    gflops = gemm_gflops(model)
    unit = "wall-second" if _on_gpu(args.device) else "CPU-second"
    print(f"machine: {os.cpu_count()} CPUs, torch threads {args.threads}, device {args.device}, {args.dtype}, "
          f"{'shape ' + args.shape + ' (random weights)' if args.random_weights else 'model ' + args.model}; GEMM ≈ {gflops:.1f} GFLOP per {unit}",
          flush=True)
    print(f"resident memory with the model loaded (the base of every 'peak RSS +MB'): {rss_mb():.0f} MB", flush=True)
    rows = []
    all_layers = list(range(model.cfg.n_layers))
    if args.scan_layers:
        first, last = (int(v) for v in args.scan_layers.split("-"))
        all_layers = [layer for layer in all_layers if first <= layer <= last]
    single = min(args.single_layer, model.cfg.n_layers - 1)
    chosen = args.workloads.split(",")
    for kind, code, pairs in (("A/B", "ab", ab), ("free text", "ft", ft)):
        for scope, tag, layers in (("layer scan", "scan", all_layers), ("single layer", "one", [single])):
            if f"{code}-{tag}" not in chosen:
                continue
            name = f"{kind}, {scope} ({len(pairs)}×{len(MULTIPLIERS)}×{len(layers)})"
            print(f"running {name} …", file=sys.stderr, flush=True)
            done = bench_workload(name, model, pairs, vector, layers, args, gflops)
            for row in done:  # progress while the rest runs
                print(f"  {row['engine']}: wall {row['wall s']:.1f} s, CPU {row['CPU s']:.1f} s, "
                      f"×{row['speed-up vs naive (CPU)']:.1f} (CPU) vs naive", file=sys.stderr, flush=True)
            rows += done
    table = pd.DataFrame(rows)
    formats = {"wall s": "{:.1f}", "CPU s": "{:.1f}", "units/s": "{:.1f}", "speed-up vs naive (wall)": "{:.1f}×",
               "speed-up vs naive (CPU)": "{:.1f}×", "max abs Δ vs naive": "{:.1e}",
               "peak RSS +MB": "{:.0f}", "peak GPU memory +MB": "{:.0f}", "FLOP-floor CPU s": "{:.2f}",
               "FLOP-floor s": "{:.3f}", "floor fraction (CPU)": "{:.1%}", "floor fraction (wall)": "{:.1%}"}
    shown = table.copy()
    for col, fmt in formats.items():
        if col in shown:
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

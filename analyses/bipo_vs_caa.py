"""BiPO vs CAA on the embedded model: steerability, anti-steerable fraction, propensity curves and cosine of the
two vectors, at their own norms and at equal norm, with the same layer and the same train/test split per dataset.

Work units are (dataset, method): ``caa`` extracts the CAA vector from the train pairs and evaluates it;
``bipo`` trains BiPO on the same train pairs at the same layer and evaluates the BiPO vector at its own norm and
rescaled to the CAA norm (``SteeringVector.normalize``). Evaluation (``fast_propensities``) adds the vector from
the last prompt token on; BiPO is *trained* with the vector at every position, so ``--all-pos-datasets`` also
scores a few datasets with every-position steering (BiPO's training convention) as a check.

Each finished unit is cached under ``units/`` (propensity table + vector); BiPO training checkpoints every
``--checkpoint-every`` steps, so an interrupted run resumes mid-training. Report: ``report.md`` + PNGs + CSVs.

    python analyses/bipo_vs_caa.py                                  # default sizes, ~20-25 min on 1 CPU thread
    python analyses/bipo_vs_caa.py --datasets builtin:sentiment --ab-datasets "" --n-train 8 --n-test 4 --steps 2 \
        --out /tmp/bipo_vs_caa_tiny                                 # a smoke test in a minute or two
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bipo_vs_caa_report import write_report  # noqa: E402
from common import (  # noqa: E402
    Report, base_parser, chosen_layer, load_embedded_model, parse_float_list, propensity_engine, read_unit,
    split_pairs, unit_path, write_unit,
)

FREE_TEXT_DATASETS = ("builtin:sentiment,builtin:formality,persona:narcissism@free_text,"
                      "persona:risk-seeking@free_text,persona:politically-liberal@free_text")
AB_DATASETS = "persona:narcissism"
MULTIPLIERS = (-1.5, -0.75, 0.0, 0.75, 1.5)


def parse_args():
    parser = base_parser(__doc__.split("\n")[0], n_train=40, n_test=24, multipliers=MULTIPLIERS)
    parser.add_argument("--datasets", default=FREE_TEXT_DATASETS, help="comma-separated free-text specs")
    parser.add_argument("--ab-datasets", default=AB_DATASETS, help="comma-separated A/B specs ('' for none)")
    parser.add_argument("--layer", type=int, default=None, help="steering layer (default: layer_scan.py's choice)")
    parser.add_argument("--steps", type=int, default=30, help="BiPO optimiser steps (BiPOConfig.max_steps)")
    parser.add_argument("--lr", type=float, default=0.03, help="BiPO learning rate (paper: 5e-4, too slow for a short run)")
    parser.add_argument("--beta", type=float, default=0.1, help="BiPO DPO temperature")
    parser.add_argument("--batch-size", type=int, default=4, help="BiPO pairs per micro-batch")
    parser.add_argument("--grad-accumulation", type=int, default=1, help="BiPO micro-batches per optimiser step")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="BiPO AdamW weight decay")
    parser.add_argument("--checkpoint-every", type=int, default=5, help="BiPO checkpoint interval (steps)")
    parser.add_argument("--all-pos-datasets", default="builtin:sentiment",
                        help="datasets also scored with every-position steering ('' for none)")
    parser.add_argument("--all-pos-multipliers", type=parse_float_list, default=[-1.5, 0.0, 1.5],
                        help="multipliers of the every-position check")
    return parser.parse_args()


def specs(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def split_key(spec: str, layer: int, args) -> str:
    mults = "_".join(f"{m:g}" for m in args.multipliers)
    return f"{spec}__L{layer}_tr{args.n_train}_te{args.n_test}_s{args.seed}_m{mults}"


def bipo_key(args) -> str:
    return f"st{args.steps}_lr{args.lr:g}_b{args.beta:g}_bs{args.batch_size}x{args.grad_accumulation}_wd{args.weight_decay:g}"


def bipo_config(args, layer: int, checkpoint: Path):
    from interp_steer.methods import BiPOConfig

    return BiPOConfig(layer=layer, beta=args.beta, lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
                      grad_accumulation=args.grad_accumulation, max_steps=args.steps, warmup_steps=args.steps // 10,
                      seed=args.seed, checkpoint_every=args.checkpoint_every, checkpoint_path=str(checkpoint))


def vector_file(out_dir: Path, key: str) -> Path:
    return unit_path(out_dir, key).with_suffix(".safetensors")


def caa_unit(model, engine, spec: str, layer: int, args, key: str, out_dir: Path) -> pd.DataFrame:
    from interp_steer.methods import extract_caa

    train, test = split_pairs(spec, args.n_train, args.n_test, args.seed)
    t0 = time.time()
    vector = extract_caa(model, train, [layer], progress=False, dataset=spec)
    seconds = time.time() - t0
    vector.save(vector_file(out_dir, key))
    table = engine(model, test, vector, args.multipliers, progress=False, vector_name="caa")
    return table.assign(method="caa", vector_norm=vector.norms()[vector.hook_names[0]], train_seconds=seconds,
                        n_train=len(train))


def bipo_unit(model, engine, spec: str, layer: int, args, key: str, caa_key: str, out_dir: Path) -> pd.DataFrame:
    from interp_steer.methods import train_bipo
    from interp_steer.steering import SteeringVector

    train, test = split_pairs(spec, args.n_train, args.n_test, args.seed)
    checkpoint = unit_path(out_dir, key).with_suffix(".ckpt.pt")
    config = bipo_config(args, layer, checkpoint)
    resume = checkpoint if checkpoint.exists() else None
    if resume:
        print(f"[bipo_vs_caa]   resuming BiPO from {checkpoint.name}", flush=True)
    t0 = time.time()
    vector = train_bipo(model, train, config, resume_from=resume, dataset=spec)
    seconds = time.time() - t0
    vector.save(vector_file(out_dir, key))
    caa = SteeringVector.load(vector_file(out_dir, caa_key))
    caa_norm = caa.norms()[caa.hook_names[0]]
    frames = [
        engine(model, test, vector, args.multipliers, progress=False, vector_name="bipo").assign(method="bipo"),
        engine(model, test, vector.normalize(caa_norm), args.multipliers, progress=False,
               vector_name="bipo@caa_norm").assign(method="bipo@caa_norm"),
    ]
    norm = vector.norms()[vector.hook_names[0]]
    table = pd.concat(frames, ignore_index=True)
    table["vector_norm"] = np.where(table["method"] == "bipo", norm, caa_norm)
    return table.assign(train_seconds=seconds, n_train=len(train))


@torch.inference_mode()
def all_position_propensities(model, pairs, vector, multipliers, name: str, cache: dict, batch_size: int = 8) -> pd.DataFrame:
    """Free-text propensity with ``m * vector`` added at every position (BiPO's training convention).

    ``cache`` keeps the unsteered (m = 0) scores, which are the same for every vector."""
    from interp_steer.data import encode_pair, pad_token_id
    from interp_steer.methods.response_logprobs import pair_logprobs, preference_batch
    from interp_steer.steering import steer

    encoded = [encode_pair(model.tokenizer, p) for p in pairs]
    pad = pad_token_id(model.tokenizer)
    records = []
    for m in multipliers:
        if float(m) == 0.0 and "zero" in cache:
            scores = cache["zero"]
        else:
            with steer(model, vector, multiplier=float(m), positions="all"):
                scores = torch.cat([pair_logprobs(model, preference_batch(encoded[i:i + batch_size], pad))
                                    for i in range(0, len(encoded), batch_size)])
            if float(m) == 0.0:
                cache["zero"] = scores
        for pair, (pos, neg) in zip(pairs, scores.tolist()):
            records.append({"sample_id": pair.id, "dataset": pair.dataset, "vector": name, "multiplier": float(m),
                            "propensity": pos - neg, "pos_logprob": pos, "neg_logprob": neg})
    return pd.DataFrame.from_records(records)


def all_pos_unit(model, spec: str, args, caa_key: str, bipo_unit_key: str, out_dir: Path) -> pd.DataFrame:
    from interp_steer.steering import SteeringVector

    _, test = split_pairs(spec, args.n_train, args.n_test, args.seed)
    caa = SteeringVector.load(vector_file(out_dir, caa_key))
    bipo = SteeringVector.load(vector_file(out_dir, bipo_unit_key))
    cache: dict = {}
    frames = [all_position_propensities(model, test, caa, args.all_pos_multipliers, "caa", cache),
              all_position_propensities(model, test, bipo.normalize(caa.norms()[caa.hook_names[0]]),
                                        args.all_pos_multipliers, "bipo@caa_norm", cache)]
    return pd.concat(frames, ignore_index=True).assign(positions="all")


def main() -> None:
    args = parse_args()
    layer, layer_source = chosen_layer(args.layer)
    report = Report("bipo_vs_caa", f"BiPO vs CAA steering vectors at layer {layer} (SmolLM2-135M)", args.out)
    out_dir = report.out_dir
    torch.set_num_threads(args.threads)
    engine, engine_name = propensity_engine()
    free_text, ab, all_pos = specs(args.datasets), specs(args.ab_datasets), specs(args.all_pos_datasets)
    all_pos = [s for s in all_pos if s in free_text]
    plan = [(spec, method) for spec in free_text + ab for method in ("caa", "bipo")] + [(s, "allpos") for s in all_pos]

    timing_file = out_dir / "units" / "timings.json"
    timings = json.loads(timing_file.read_text()) if timing_file.exists() else {}
    model = None
    frames, allpos_frames, vectors, keys = [], [], {}, []
    started, computed = time.time(), 0
    for index, (spec, method) in enumerate(plan, 1):
        base = split_key(spec, layer, args)
        caa_key, bk = f"caa__{base}", f"bipo__{base}__{bipo_key(args)}"
        key = {"caa": caa_key, "bipo": bk, "allpos": f"allpos__{base}__{bipo_key(args)}__am{'_'.join(f'{m:g}' for m in args.all_pos_multipliers)}"}[method]
        keys.append(key)
        frame = read_unit(out_dir, key)
        status = "cached"
        if frame is None:
            t0 = time.time()
            print(f"[bipo_vs_caa] unit {index}/{len(plan)}: {method} on {spec} ...", flush=True)
            model = model if model is not None else load_embedded_model(args.threads)
            if method == "caa":
                frame = caa_unit(model, engine, spec, layer, args, key, out_dir)
            elif method == "bipo":
                frame = bipo_unit(model, engine, spec, layer, args, key, caa_key, out_dir)
            else:
                frame = all_pos_unit(model, spec, args, caa_key, bk, out_dir)
            write_unit(out_dir, key, frame)
            timings[key] = round(time.time() - t0, 1)
            timing_file.write_text(json.dumps(timings, indent=1))
            unit_path(out_dir, key).with_suffix(".ckpt.pt").unlink(missing_ok=True)
            computed += 1
            status = f"{time.time() - t0:.0f}s"
        elapsed = (time.time() - started) / 60
        print(f"[bipo_vs_caa] unit {index}/{len(plan)} {method:6s} {spec}: {status} (elapsed {elapsed:.1f} min)", flush=True)
        if method == "allpos":
            allpos_frames.append(frame.assign(spec=spec))
            continue
        frames.append(frame.assign(spec=spec))
        vectors[(spec, method)] = vector_file(out_dir, key)
    propensities = pd.concat(frames, ignore_index=True)
    allpos = pd.concat(allpos_frames, ignore_index=True) if allpos_frames else None
    write_report(report, propensities, allpos, vectors, layer, layer_source, engine_name, args,
                 {"units computed by this invocation": f"{computed} of {len(plan)}",
                  "BiPO config": bipo_config(args, layer, Path("<unit>.ckpt.pt")).to_json(),
                  "unit seconds": {k: timings[k] for k in keys if k in timings}})


if __name__ == "__main__":
    main()

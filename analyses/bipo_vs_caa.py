"""BiPO vs CAA on the embedded model: steerability, anti-steerable fraction, propensity curves and cosine of the
two vectors, at their own norms and at equal norm, with the same layer and the same train/test split per dataset.

Work units are (dataset, method): ``caa`` extracts the CAA vector from the train pairs and evaluates it;
``bipo`` trains BiPO on the same train pairs at the same layer and evaluates the BiPO vector at its own norm and
rescaled to the CAA norm (``SteeringVector.normalize``). Evaluation (``fast_propensities``) adds the vector from
the last prompt token on; BiPO is *trained* with the vector at every position, so ``--all-pos-datasets`` also
scores a few datasets with every-position steering (BiPO's training convention) as a check.

A thin entry point over :mod:`interp_steer.runs.bipo_vs_caa` (units = dataset × method, each finished unit's
vector and propensity table under ``units/``); BiPO training checkpoints every ``--checkpoint-every`` steps, so an
interrupted run resumes mid-training. Report: ``report.md`` + PNGs + CSVs.

    python analyses/bipo_vs_caa.py                                  # default sizes, ~20-25 min on 1 CPU thread
    python analyses/bipo_vs_caa.py --datasets builtin:sentiment --ab-datasets "" --n-train 8 --n-test 4 --steps 2 \
        --out /tmp/bipo_vs_caa_tiny                                 # a smoke test in a minute or two
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bipo_vs_caa_report import write_report  # noqa: E402
from common import Report, base_parser, chosen_layer, parse_float_list, study_executor  # noqa: E402

from interp_steer.config import COARSE_MULTIPLIERS, HALF_STEP_MULTIPLIERS  # noqa: E402

FREE_TEXT_DATASETS = ("builtin:sentiment,builtin:formality,persona:narcissism@free_text,"
                      "persona:risk-seeking@free_text,persona:politically-liberal@free_text")
AB_DATASETS = "persona:narcissism"
MULTIPLIERS = HALF_STEP_MULTIPLIERS


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
    parser.add_argument("--all-pos-multipliers", type=parse_float_list, default=list(COARSE_MULTIPLIERS),
                        help="multipliers of the every-position check")
    return parser.parse_args()


def specs(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def main() -> None:
    from interp_steer.runs.bipo_vs_caa import BipoVsCaaConfig, BipoVsCaaJob, run_bipo_vs_caa

    args = parse_args()
    layer, layer_source = chosen_layer(args.layer)
    report = Report("bipo_vs_caa", f"BiPO vs CAA steering vectors at layer {layer} ({args.model})", args.out)
    free_text, ab, all_pos = specs(args.datasets), specs(args.ab_datasets), specs(args.all_pos_datasets)
    config = BipoVsCaaConfig(
        model=args.model, datasets=free_text + ab, layer=layer, multipliers=args.multipliers, n_train=args.n_train,
        n_test=args.n_test, seed=args.seed, all_pos_datasets=[s for s in all_pos if s in free_text],
        all_pos_multipliers=args.all_pos_multipliers, bipo_steps=args.steps, bipo_lr=args.lr, bipo_beta=args.beta,
        bipo_batch_size=args.batch_size, bipo_grad_accumulation=args.grad_accumulation,
        bipo_weight_decay=args.weight_decay, checkpoint_every=args.checkpoint_every,
        checkpoint_dir=str(report.out_dir / "units"))
    run = run_bipo_vs_caa(config, report.out_dir, executor=study_executor(args))
    print(f"[bipo_vs_caa] {run.summary_line()}", flush=True)
    run.raise_if_failed()
    job = BipoVsCaaJob(config)
    vectors = {(u.dataset, u.method): report.out_dir / job.unit_files(u)[0] for u in job.units()}
    allpos = run.tables["allpos"]
    write_report(report, run.tables["propensities"], allpos if len(allpos) else None, vectors, layer, layer_source,
                 "fast_propensities", args,
                 {"units computed by this invocation": f"{len(run.done)} of {run.total}",
                  "BiPO config": config.bipo_config("<unit>.ckpt.pt").to_json(),
                  "unit seconds": run.unit_seconds})


if __name__ == "__main__":
    main()

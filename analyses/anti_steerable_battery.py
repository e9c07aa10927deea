"""Thin entry point of the pre-registered anti-steerability battery (issue 26).

    python analyses/anti_steerable_battery.py features  STUDY_DIR OUT_DIR   # stage 1: model forwards (resumable)
    python analyses/anti_steerable_battery.py tests     STUDY_DIR OUT_DIR   # stage 2: tests, tables, report.md
    python analyses/anti_steerable_battery.py all       STUDY_DIR OUT_DIR

SmolLM2: STUDY_DIR=analyses/results/tan2024_full OUT_DIR=analyses/results/anti_steerable/battery.
Gemma 3: STUDY_DIR=analyses/results/tan2024_gemma OUT_DIR=analyses/results/anti_steerable/battery_gemma.
Both stages refuse to run when OUT_DIR holds results of an edited plan.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PLAN = Path(__file__).resolve().parent / "prereg" / "anti_steerable_battery.md"


def main(argv: list[str] | None = None) -> int:
    from interp_steer.analysis.battery import check_plan_lock, compute_features
    from interp_steer.errors import InterpSteerError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["features", "tests", "all"])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="features: at most this many datasets (unit order)")
    parser.add_argument("--vectors-dir", type=Path, default=None, help="where the CAA directions are cached")
    args = parser.parse_args(argv)
    try:
        check_plan_lock(PLAN, args.out_dir, record=args.stage != "features")
        if args.stage in ("features", "all"):
            from interp_steer.analysis.battery_heldout import battery_vectors_dir
            from interp_steer.models import load_model

            cfg = json.loads((args.study_dir / "config.json").read_text(encoding="utf-8"))
            model = load_model(cfg["model"])
            vectors = args.vectors_dir or battery_vectors_dir(cfg["model"])
            compute_features(model, args.study_dir, args.out_dir, vectors, limit=args.limit,
                             echo=lambda m: print(m, flush=True))
        if args.stage in ("tests", "all"):
            from interp_steer.analysis.battery_tests import run_tests

            run_tests(args.study_dir, args.out_dir, PLAN)
    except InterpSteerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

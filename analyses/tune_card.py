"""Rebuild a finished tune run's steering card from what it already wrote (no metric is recomputed).

The runner's combine step (:func:`interp_steer.runs.tune.combine_tune`) re-reads ``units/`` and rewrites the
combined tables and ``recommendation.json``; the baseline, generations and capability tables are read back from
their CSV / parquet files; then :func:`interp_steer.runs.tune.write_run_card` writes ``steering_card.html``. Only the
card's projection view runs the model (one forward pass of one held-out prompt, clean and steered).

    python analyses/tune_card.py analyses/results/tune/sentiment
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from interp_steer.evaluation.settings import chosen_setting
from interp_steer.models import load_model
from interp_steer.runs.files import read_table
from interp_steer.runs.runner import RunReport
from interp_steer.runs.tune import TuneConfig, TuneJob, TuneResult, combine_tune, write_run_card


def rebuild_card(out_dir: Path, data_dir: str | None = None) -> Path:
    """Combine ``out_dir``'s tune units again and write its steering card; returns the card's path."""
    config = TuneConfig.read(out_dir / "config.json")
    tables = combine_tune(out_dir, config)
    rec = json.loads((out_dir / "recommendation.json").read_text())
    fmt = config.table_format
    optional = {name: read_table(out_dir / f"{name}.{fmt}") if (out_dir / f"{name}.{fmt}").exists() else None
                for name in ("baseline", "generations", "capability")}
    report = RunReport(out_dir, total=len(config.layers), tables=tables)
    result = TuneResult(out_dir, report, tables["summary"], rec, **optional)
    model = load_model(config.model, device=config.device)
    job = TuneJob(config, data_dir=data_dir)
    return write_run_card(config, result, model, chosen_setting(tables["summary"], rec), job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="a finished tune run's directory")
    parser.add_argument("--data-dir", default=None, help="data root (default $INTERP_STEER_DATA)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(rebuild_card(args.out_dir, args.data_dir))


if __name__ == "__main__":
    main()

"""``compare`` end to end on the tiny model with a small random SAE: the report's steerability table carries each
vector's mean slope and anti-steerable fraction with the 95% intervals of :mod:`interp_steer.stats`, recomputed
here from the job's per-sample table."""

from __future__ import annotations

import pandas as pd
import pytest
from tiny_models import make_sae

from interp_steer.report.format import format_interval
from interp_steer.runs.compare import run_compare
from interp_steer.runs.job_configs import CompareConfig
from interp_steer.stats.intervals import anti_steerable_interval, mean_interval


@pytest.mark.slow
def test_compare_report_gives_every_vectors_steerability_with_intervals(tiny, tmp_path):
    sae = make_sae(tiny.cfg.d_model, d_sae=32, hook_name="blocks.1.hook_resid_post")
    sae.save_model(str(tmp_path / "sae"))
    config = CompareConfig(dataset="builtin:sentiment", layer=1, sae=str(tmp_path / "sae"), model="tiny-llama",
                           n_train=8, n_test=6, n_texts=4, n_probe=8, n_generations=0, seed=0)
    out = tmp_path / "out"
    run_compare(config, out, echo=lambda *_: None)
    per_sample = pd.read_csv(out / "per_sample_steerability.csv")
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "mean_slope [95% CI]" in report and "anti_steerable_fraction [95% CI]" in report
    for vector, group in per_sample.groupby("vector"):
        slopes = group["slope"].to_numpy(float)
        row = next(line for line in report.splitlines() if line.startswith(f"| {vector} |"))
        assert format_interval(mean_interval(slopes, n_boot=2000, seed=0)) in row
        assert format_interval(anti_steerable_interval(slopes, n_boot=2000, seed=0)) in row
        assert f"| {len(slopes)} |" in row

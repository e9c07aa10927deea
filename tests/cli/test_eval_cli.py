"""The ``evaluate`` and ``scan`` CLI commands on the tiny model with the built-in sentiment set."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.methods import extract_caa


def test_evaluate_writes_tables_plots_and_summary(tmp_path, tiny):
    from interp_steer.data import load_dataset

    vec = extract_caa(tiny, load_dataset("builtin:sentiment")[:4], [1], progress=False)
    path = vec.save(tmp_path / "sent.safetensors")
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["evaluate", "--vector", str(path), "--dataset", "builtin:sentiment", "--model", "tiny-llama",
                                      "--n", "3", "--multipliers", "-1,0,1", "--random-baselines", "1", "--format", "csv",
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    props = pd.read_csv(out / "propensities.csv")
    assert sorted(props.vector.unique()) == ["random:0", "sent"] and len(props) == 2 * 3 * 3
    summary = pd.read_csv(out / "summary.csv")
    assert "mean slope" in result.output and len(summary) == 2
    for png in ("propensity_curves.png", "steerability_distribution.png"):
        assert (out / png).stat().st_size > 0
    bad = CliRunner().invoke(app, ["evaluate", "--vector", str(path), "--dataset", "builtin:sentiment", "--model", "tiny-llama",
                                   "--split", "train", "--out", str(out)], catch_exceptions=False)
    assert bad.exit_code == 2 and bad.output.startswith("error: --split 'train'")


def test_scan_runs_and_resumes(tmp_path):
    out = tmp_path / "scan"
    args = ["scan", "--dataset", "builtin:sentiment", "--model", "tiny-llama", "--layers", "0,2", "--n-train", "4",
            "--n-test", "3", "--multipliers", "-1,0,1", "--out", str(out), "--no-progress"]
    first = CliRunner().invoke(app, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    units = sorted((out / "units").glob("*.propensity.parquet"))
    assert len(units) == 2 and (out / "layer_scan.png").exists()
    stamps = [u.stat().st_mtime_ns for u in units]
    second = CliRunner().invoke(app, args, catch_exceptions=False)
    assert second.exit_code == 0
    assert [u.stat().st_mtime_ns for u in units] == stamps  # resumed: nothing recomputed
    summary = pd.read_parquet(out / "summary.parquet")
    assert sorted(summary.layer) == [0, 2] and (summary.n_samples == 3).all()

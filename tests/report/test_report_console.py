"""Console tables: the interval merge and alignment on hand-made frames, and snapshots of what ``demo``, ``scan``,
``evaluate``, ``tune`` and ``study`` print on the tiny model (seeded; timings, load averages and paths normalised).

Set ``UPDATE_SNAPSHOTS=1`` to rewrite the files in ``tests/snapshots/`` after an intended change, then read the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from interp_steer.report.console import align, display_frame, interval_triples, paths_block, render_table

SNAPSHOTS = Path(__file__).parent / "snapshots"


def test_interval_triples_are_merged_with_units_in_the_header():
    frame = pd.DataFrame({"layer": [6, 15], "multiplier": [0.05, 0.1], "shift": [0.6078, 3.2373],
                          "shift_lo": [0.3679, 2.4108], "shift_hi": [0.8317, 4.0767], "kl": [0.01035, 0.06652],
                          "kl_lo": [0.00899, 0.06143], "kl_hi": [0.01189, 0.07212], "anti_steerable_fraction": [0.25, 0.0],
                          "anti_steerable_lo": [0.05, 0.0], "anti_steerable_hi": [0.7, 0.1], "note": ["a", None]})
    assert interval_triples(list(frame.columns)) == {
        "shift": ("shift", "shift_lo", "shift_hi"), "kl": ("kl", "kl_lo", "kl_hi"),
        "anti_steerable_fraction": ("anti_steerable_fraction", "anti_steerable_lo", "anti_steerable_hi")}
    shown = display_frame(frame, units={"shift": "nats", "kl": "nats/token"}, labels={"kl": "KL"})
    assert list(shown.columns) == ["layer", "multiplier", "shift (nats) [95% CI]", "KL (nats/token) [95% CI]",
                                   "anti steerable fraction [95% CI]", "note"]
    assert shown["shift (nats) [95% CI]"].tolist() == ["0.61 [0.37, 0.83]", "3.24 [2.41, 4.08]"]
    assert shown["KL (nats/token) [95% CI]"].tolist() == ["0.0103 [0.0090, 0.0119]", "0.0665 [0.0614, 0.0721]"]
    assert shown["multiplier"].tolist() == ["0.05", "0.1"] and shown["note"].tolist() == ["a", ""]
    assert not any(c.endswith(("_lo", "_hi")) for c in shown.columns)


def test_estimate_ci_low_ci_high_and_alignment():
    frame = pd.DataFrame({"statistic": ["mean_slope", "anti"], "estimate": [4.244, 0.5], "ci_low": [2.698, 0.487],
                          "ci_high": [6.412, 0.512], "n_samples": [160, 6750]})
    text = align(display_frame(frame))
    lines = text.splitlines()
    assert "4.2 [2.7, 6.4]" in lines[2] and "0.500 [0.487, 0.512]" in lines[3]
    # numbers are right-aligned: every data row ends at the same column; text starts at the same column
    assert len({len(line) for line in lines}) == 1
    assert lines[2].index("mean_slope") == lines[3].index("anti") == lines[0].index("statistic")


def test_render_table_has_a_meaning_paragraph_and_no_pandas_repr():
    frame = pd.DataFrame({"x": np.arange(3.0), "x_lo": np.arange(3.0) - 1, "x_hi": np.arange(3.0) + 1})
    text = render_table(frame, "Title", meaning="a " * 80)
    assert text.startswith("Title\n") and "What this means: a a" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "dtype" not in text and "x_lo" not in text and "0.0 [-1.0, 1.0]" in text
    assert paths_block(["a/b.csv"]) == "wrote:\n  a/b.csv\n"


def normalise(text: str, *dirs: Path) -> str:
    """Paths, timings and load averages out of console output, so the snapshot depends on results only."""
    text = re.sub(r"[\w ]+:\s+\d+%\|[^|\n]*\|[^\]\n]*\][\r\n]?", "", text)  # progress bars
    for d in dirs:
        text = text.replace(str(d), "<OUT>")
    text = re.sub(r"\d+\.\d s wall,\s+\d+\.\d s CPU \(load [\d.]+\)", "<time>", text)
    text = re.sub(r"\(\d+ s wall, \d+ s CPU after import\)", "(<time>)", text)
    text = re.sub(r"report in \d+ s", "report in <time>", text)
    text = re.sub(r"in [\d.]+ ?s\b", "in <time>", text)
    text = re.sub(r" {2,}<time>", " <time>", text)
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        if os.environ.get("CI") and not path.exists():
            pytest.fail(f"snapshot {path} is missing")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"console output differs from {path}"


@pytest.mark.slow
def test_demo_console_snapshot(tmp_path):
    from interp_steer.runs.demo import DemoConfig, run_demo

    lines: list[str] = []
    run_demo(DemoConfig(model="tiny-llama", layers="0,1", eval_layer=1, n_train=6, n_test=4, n_neutral=3,
                        max_new_tokens=5, continuation_tokens=4, n_boot=200), tmp_path / "demo", echo=lines.append)
    check_snapshot("demo.txt", normalise("\n".join(lines), tmp_path))


def _cli(args: list[str]) -> str:
    from interp_steer.cli import app

    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_scan_evaluate_tune_console_snapshots(tmp_path):
    scan = _cli(["scan", "--dataset", "builtin:sentiment", "--model", "tiny-llama", "--layers", "0,2", "--n-train", "4",
                 "--n-test", "3", "--multipliers", "-1,0,1", "--out", str(tmp_path / "scan"), "--no-progress",
                 "--format", "csv"])
    check_snapshot("scan.txt", normalise(scan, tmp_path))
    vector = tmp_path / "v.safetensors"
    _cli(["extract", "--dataset", "builtin:sentiment", "--model", "tiny-llama", "--layers", "1", "--n-train", "4",
          "--out", str(vector)])
    evaluate = _cli(["evaluate", "--vector", str(vector), "--dataset", "builtin:sentiment", "--model", "tiny-llama",
                     "--n", "4", "--multipliers", "0,2", "--neutral-n", "2", "--continuation-tokens", "2",
                     "--n-generations", "1", "--max-new-tokens", "3", "--n-boot", "200", "--format", "csv",
                     "--out", str(tmp_path / "eval")])
    check_snapshot("evaluate.txt", normalise(evaluate, tmp_path))
    tune = _cli(["tune", "--dataset", "builtin:sentiment", "--model", "tiny-llama", "--layers", "1",
                 "--multipliers", "0,2", "--n-neutral", "2", "--continuation-tokens", "2", "--n-boot", "200",
                 "--n-generations", "1", "--max-new-tokens", "3", "--format", "csv", "--out", str(tmp_path / "tune")])
    check_snapshot("tune.txt", normalise(tune, tmp_path))


def test_study_console_snapshot(tmp_path):
    from interp_steer.runs.study import study_console_text

    headline = pd.DataFrame({
        "section": ["layer", "steerability", "steerability"], "group": ["free_text", "persona / ab", "persona / free_text"],
        "statistic": ["mean_slope", "anti_steerable_fraction", "mean_slope"],
        "units": ["nats per unit multiplier", "share of samples", "nats per unit multiplier"],
        "estimate": [4.2437, 0.50013, 3.4621], "ci_low": [2.6981, 0.48712, 3.1447], "ci_high": [6.4123, 0.51244, 3.8122],
        "n_samples": [160, 6750, 6750], "n_datasets": [8, 135, 135], "method": ["cluster-percentile"] * 3})
    text = study_console_text(tmp_path, headline, ["a.png", "b.png"], 3.2)
    assert "4.2 [2.7, 6.4]" in text and "0.500 [0.487, 0.512]" in text and "3.46 [3.14, 3.81]" in text
    check_snapshot("study.txt", normalise(text, tmp_path))

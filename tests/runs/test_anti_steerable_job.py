"""The ``why`` job end to end on the tiny model (built-in free-text sentiment data): files, group rule,
resume, combine, and one-line config errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from interp_steer.analysis.slope_groups import slope_intervals
from interp_steer.errors import ConfigError
from interp_steer.runs.runner import run_job
from interp_steer.runs.why import WhyConfig, WhyJob, case_key, parse_case

CASES = ["builtin:sentiment@0", "builtin:sentiment@1"]


def _config(**kw):
    base = dict(cases=CASES, n_train=6, n_test=12, n_boot=100, n_folds=3, sae=None, timing_sites=8, batch_size=32,
                multipliers=[-4.0, -2.0, 0.0, 2.0, 4.0])
    base.update(kw)
    return WhyConfig(**base)


@pytest.fixture(scope="module")
def finished(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("why")
    report = run_job(WhyJob(_config()), out, model=tiny, progress=False)
    report.raise_if_failed()
    return out, report


def test_job_writes_every_file_per_case(finished):
    out, report = finished
    assert sorted(report.done) == sorted(case_key(c) for c in CASES)
    for case in CASES:
        folder = out / case_key(case)
        for name in ("README.md", "groups.csv", "patching.csv", "predictor.csv", "factor_tests.csv", "patching.png",
                     "views_steerable.html", "views_anti-steerable.html", "direct_effect.csv", "summary.json"):
            assert (folder / name).exists(), name
        readme = (folder / "README.md").read_text()
        summary = json.loads((folder / "summary.json").read_text())
        sizes = summary["groups"]
        assert sum(sizes.values()) == 12
        assert f"steerable **{sizes['steerable']}**" in readme and "Rule: steerable: the 95% bootstrap CI" in readme
        assert summary["speedup"]["max_abs_diff"] < 1e-5
        html = (folder / "views_steerable.html").read_text()
        assert "cdn" not in html.lower().split("<body>")[1][:2000] or "CircuitsVis" in html


def test_groups_follow_the_ci_rule_recomputed_from_the_propensities(finished):
    out, _ = finished
    folder = out / case_key(CASES[0])
    props = pd.read_csv(folder / "propensity.csv", dtype={"sample_id": str})
    groups = pd.read_csv(folder / "groups.csv", dtype={"sample_id": str}).set_index("sample_id")
    again = slope_intervals(props, n_boot=100, seed=0).set_index("sample_id").loc[groups.index]
    np.testing.assert_allclose(groups["slope"], again["slope"], atol=1e-9)
    expected = np.where(groups["ci_low"] > 0, "steerable", np.where(groups["ci_high"] < 0, "anti-steerable", "insensitive"))
    assert list(groups["group"]) == list(expected)
    for sid, part in props.groupby("sample_id"):
        assert groups.loc[sid, "slope"] == pytest.approx(np.polyfit(part["multiplier"], part["propensity"], 1)[0], abs=1e-9)


def test_patching_rows_match_the_chosen_samples_and_restore_at_the_next_layer(finished):
    out, _ = finished
    folder = out / case_key(CASES[0])
    summary = json.loads((folder / "summary.json").read_text())
    patching = pd.read_csv(folder / "patching.csv")
    assert set(patching["sample_id"]) == {summary["steerable_sample"], summary["anti_sample"]}
    assert patching["layer"].min() == 1  # layers after the vector (layer 0)
    for role, sid in (("steerable", summary["steerable_sample"]), ("anti-steerable", summary["anti_sample"])):
        first = patching[patching["role"] == role].iloc[0]
        # the patched sample's clean/steered metrics are its propensities at 0 and the patch multiplier
        props = pd.read_csv(folder / "propensity.csv")
        curve = props[props["sample_id"] == sid].set_index("multiplier")["propensity"]
        assert first["metric_clean"] == pytest.approx(curve[0.0], abs=1e-4)
        assert first["metric_steered"] == pytest.approx(curve[4.0], abs=1e-4)


def test_rerun_reuses_finished_cases_and_combines(tiny, finished):
    out, _ = finished
    report = run_job(WhyJob(_config()), out, model=tiny, progress=False)
    assert sorted(report.reused) == sorted(case_key(c) for c in CASES) and not report.done
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["case"]) == CASES
    pooled = pd.read_csv(out / "predictor_pooled.csv")
    assert set(pooled["metric"]) == {"AUC", "R² (within-case z)"} and (pooled["n_cases"] == 2).all()


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="<dataset spec>@<layer>"):
        parse_case("builtin:sentiment")
    with pytest.raises(ConfigError, match="free-text"):
        _config(cases=["persona:narcissism@9"])
    with pytest.raises(ConfigError, match="including 0"):
        _config(multipliers=[-1.0, 1.0, 2.0])
    with pytest.raises(ConfigError, match="n-test"):
        _config(n_test=4)


def test_cli_why_reports_bad_options_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from interp_steer.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["why", "--out", str(tmp_path / "o"), "--cases", "builtin:sentiment"])
    assert result.exit_code != 0 and "<dataset spec>@<layer>" in result.output
    result = runner.invoke(app, ["why", "--out", str(tmp_path / "o"), "--cases", "builtin:sentiment@9", "--head-regions", "middle"])
    assert result.exit_code != 0 and "--head-regions" in result.output
    assert not (tmp_path / "o").exists()  # refused before anything was written

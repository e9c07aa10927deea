"""tune: the recommendation rule on synthetic tables, the summary against hand computation, the job end to end on a
tiny model (files, resume, prompting baseline), and the CLI command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from interp_steer.data import load_dataset, train_test_split
from interp_steer.errors import ConfigError
from interp_steer.evaluation.naive import naive_propensities
from interp_steer.runs.files import read_table
from interp_steer.runs.tune import TuneConfig, recommend, tune_summary
from interp_steer.steering import SteeringVector


def _synthetic(rows):
    return pd.DataFrame(rows, columns=["layer", "multiplier", "shift", "shift_lo", "kl", "kl_hi"]).assign(units="raw")


def test_recommend_picks_largest_shift_within_budget():
    summary = _synthetic([
        (3, 0.0, 0.0, 0.0, 0.0, 0.0),
        (3, 1.0, 0.5, 0.2, 0.02, 0.04),
        (3, 2.0, 1.5, 1.0, 0.08, 0.12),   # larger shift but its KL upper limit exceeds 0.1
        (6, 1.0, 0.9, 0.4, 0.05, 0.09),   # the answer
        (6, 2.0, 3.0, 2.0, 0.30, 0.40),
        (6, -1.0, -0.9, -1.2, 0.05, 0.08),
    ])
    rec = recommend(summary, 0.1)
    assert rec["found"] and (rec["layer"], rec["multiplier"]) == (6, 1.0)
    assert rec["kl_hi"] <= 0.1 and rec["shift_excludes_zero"]
    assert recommend(summary, 0.2)["multiplier"] == 2.0 and recommend(summary, 0.2)["layer"] == 3
    none = recommend(summary, 0.01)
    assert not none["found"] and "0.04" in none["reason"]
    negative = _synthetic([(1, 0.0, 0, 0, 0, 0), (1, 1.0, -0.3, -0.5, 0.01, 0.02)])
    assert not recommend(negative, 0.1)["found"]
    assert "positive direction" in recommend(negative, 0.1)["reason"]


def test_tune_summary_shift_is_paired_difference():
    props = pd.DataFrame({"layer": [2] * 6, "sample_id": ["a", "b", "c"] * 2,
                          "multiplier": [0.0] * 3 + [1.0] * 3, "propensity": [1.0, 2.0, 3.0, 2.0, 2.5, 5.0]})
    neutral = pd.DataFrame({"layer": [2] * 4, "passage_id": ["p", "q"] * 2, "multiplier": [0.0, 0.0, 1.0, 1.0],
                            "kl": [0.0, 0.0, 0.1, 0.3], "dnll": [0.0, 0.0, 0.2, 0.4]})
    out = tune_summary(props, neutral, None, n_boot=200).set_index("multiplier")
    assert out.loc[1.0, "shift"] == pytest.approx(np.mean([1.0, 0.5, 2.0]))
    assert 0.5 <= out.loc[1.0, "shift_lo"] <= out.loc[1.0, "shift_hi"] <= 2.0
    assert out.loc[1.0, "kl"] == pytest.approx(0.2) and out.loc[1.0, "dnll"] == pytest.approx(0.3)
    assert out.loc[0.0, "shift"] == 0.0 and np.isnan(out.loc[0.0, "format_mass"])


def test_config_rejects_bad_settings():
    with pytest.raises(ConfigError, match="including 0"):
        TuneConfig(model="tiny-llama", dataset="builtin:sentiment", layers=[1], multipliers=[1, 2])
    with pytest.raises(ConfigError, match="--kl-budget"):
        TuneConfig(model="tiny-llama", dataset="builtin:sentiment", layers=[1], kl_budget=0)
    with pytest.raises(ConfigError, match="--units"):
        TuneConfig(model="tiny-llama", dataset="builtin:sentiment", layers=[1], units="sigma")


@pytest.fixture(scope="module")
def ab_split():
    pairs = load_dataset("builtin:sentiment@ab")
    train, test = train_test_split(pairs, test_fraction=0.5, seed=0)
    return train[:6], test[:4]


@pytest.mark.slow
def test_run_tune_end_to_end_on_tiny_model(tiny, ab_split, tmp_path):
    from interp_steer.runs.tune import run_tune

    train, test = ab_split
    cfg = TuneConfig(model="tiny-llama", dataset="builtin:sentiment@ab", layers=[0, 1], multipliers=[0, 1, 4],
                     units="norm", n_neutral=3, continuation_tokens=2, n_boot=200, batch_size=8)
    data = {cfg.dataset: (train, test)}
    result = run_tune(cfg, tmp_path, model=tiny, data=data, n_generations=1, max_new_tokens=3, progress=False)
    summary = result.summary
    assert len(summary) == 6 and set(summary.units) == {"norm"}
    # the propensities equal the naive reference engine at the raw multipliers the norm units stand for
    vec = SteeringVector.load(tmp_path / "units/L001.vector.safetensors")
    row = summary[(summary.layer == 1) & (summary.multiplier == 4.0)].iloc[0]
    assert vec["blocks.1.hook_resid_post"].norm().item() == pytest.approx(row.reference_norm, rel=1e-5)
    naive = naive_propensities(tiny, test, vec, [0.0, 4.0])
    by_m = naive.pivot(index="sample_id", columns="multiplier", values="propensity")
    assert row["shift"] == pytest.approx((by_m[4.0] - by_m[0.0]).mean(), abs=1e-4)
    neutral = read_table(tmp_path / "neutral.csv")
    kl = neutral[(neutral.layer == 1) & (neutral.multiplier == 4.0)].kl.mean()
    assert row.kl == pytest.approx(kl)
    assert summary[summary.multiplier == 0].kl.abs().max() < 1e-9
    assert (summary.format_mass > 0).all()
    rec = json.loads((tmp_path / "recommendation.json").read_text())
    assert rec == json.loads(json.dumps(result.recommendation))
    if rec["found"]:
        assert rec["kl_hi"] <= cfg.kl_budget
    base = result.baseline
    assert list(base.arm) == ["pos", "neg", "pos", "neg", "contrast", "contrast"]
    contrast = base[(base.method == "prompting") & (base.arm == "contrast")].iloc[0]
    pos = base[(base.method == "prompting") & (base.arm == "pos")].iloc[0]
    neg = base[(base.method == "prompting") & (base.arm == "neg")].iloc[0]
    assert contrast["shift"] == pytest.approx(pos["shift"] - neg["shift"], abs=1e-9)
    for name in ("report.md", "tune_pareto.png", "summary.csv", "baseline.csv", "generations.csv"):
        assert (tmp_path / name).stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert "Does steering beat just asking?" in report and "norm" in report
    again = run_tune(cfg, tmp_path, model=tiny, data=data, n_generations=0, progress=False)
    assert again.report.done == [] and len(again.report.reused) == 2
    pd.testing.assert_frame_equal(again.summary, summary)


@pytest.mark.slow
def test_tune_cli(tmp_path):
    from interp_steer.cli import app

    runner = CliRunner()
    out = tmp_path / "tune"
    args = ["tune", "--model", "tiny-llama", "--dataset", "builtin:sentiment", "--layers", "1", "--multipliers", "0,2",
            "--n-test", "2", "--n-train", "3", "--n-neutral", "2", "--continuation-tokens", "2", "--n-generations", "1",
            "--max-new-tokens", "2", "--n-boot", "100", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "report.md").exists() and (out / "summary.csv").exists()
    bad = runner.invoke(app, args[:-2] + ["--kl-budget", "-1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--kl-budget" in bad.output
    clash = runner.invoke(app, [a if a != "0,2" else "0,3" for a in args])
    assert clash.exit_code == 2 and "multipliers" in clash.output

"""``interp-steer study compare``: two tiny-model studies joined; correlations equal scipy's on the studies' own
per-dataset tables; mismatched units or datasets are refused in one line before anything is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.errors import ConfigError
from interp_steer.runs.study import preset_config, run_study
from interp_steer.runs.study_compare import check_compatible, load_side
from interp_steer.runs.study_compare_report import run_compare
from interp_steer.runs.study_config import format_ci

NAMES = ["narcissism", "agreeableness", "psychopathy", "risk-seeking"]


@pytest.fixture(scope="module")
def studies(tmp_path_factory, data_root):
    """Two finished tiny studies (4 persona sets in both framings + 1 xrisk set) on two seeds of tiny-llama."""
    from interp_steer.models.layout import use_linear_layout
    from interp_steer.models.tiny import tiny_model

    datasets = [f"persona:{n}" for n in NAMES] + [f"persona:{n}@free_text" for n in NAMES] + ["xrisk:survival-instinct"]
    dirs = []
    for seed in (0, 1):
        model = use_linear_layout(tiny_model("tiny-llama", seed=seed))
        config = preset_config("tiny", model="tiny-llama", data_dir=data_root, scan_layers=[0, 1, 2], n_boot=100,
                               datasets=datasets)
        out = tmp_path_factory.mktemp(f"study{seed}")
        run_study(config, out, data_dir=data_root, model=model, echo=lambda _: None)
        dirs.append(out)
    return dirs


def _dataset_values(out, name: str, statistic: str, framing: str) -> pd.Series:
    table = pd.read_csv(out / "tables" / name)
    rows = table[(table["level"] == "dataset") & (table["statistic"] == statistic) & (table["framing"] == framing)]
    return rows.set_index("dataset")["estimate"].sort_index()


def test_compare_correlations_match_scipy_on_the_studies_tables(studies, tmp_path, data_root):
    out = tmp_path / "compare"
    tables = run_compare(studies, out, data_dir=data_root, n_boot=200)
    corr = tables["correlations"]
    labels = sorted(corr["model_b"].unique()) + sorted(corr["model_a"].unique())
    assert len(set(labels)) == 2  # the same model name twice gets distinct labels
    for framing, name, variant in (("free_text", "steerability_cis.csv", "summed"),
                                   ("free_text", "steerability_cis_per_token.csv", "per_token"),
                                   ("ab", "steerability_cis.csv", "summed")):
        a = _dataset_values(studies[0], name, "mean_slope", framing)
        b = _dataset_values(studies[1], name, "mean_slope", framing).reindex(a.index)
        row = corr[(corr["framing"] == framing) & (corr["source"] == "all") & (corr["measure"] == "mean_slope")
                   & (corr["variant"] == variant)].set_index("statistic")
        assert row.loc["spearman_r", "estimate"] == pytest.approx(stats.spearmanr(a, b)[0])
        assert row.loc["pearson_r", "estimate"] == pytest.approx(stats.pearsonr(a, b)[0])
        assert row.loc["spearman_r", "ci_low"] <= row.loc["spearman_r", "estimate"] + 1e-12
        assert int(row.loc["spearman_r", "n_samples"]) == len(a)
    persona = corr[(corr["source"] == "persona") & (corr["framing"] == "ab")]
    assert not persona.empty and set(persona["n_samples"]) == {4}
    report = (out / "report.md").read_text()
    assert "Paper vs here" in report and "correlation_steerability_between_models" in report and "relative-depth" in report
    compute = pd.read_csv(out / "tables" / "compute.csv")  # both models' stages and their totals
    assert set(compute["stage"]) >= {"scan", "steerability", "all stages"} and compute["model"].nunique() == 2
    assert "## Compute, both models" in report
    side_by_side = pd.read_csv(out / "tables" / "id_ood_side_by_side.csv")
    for study, label in zip(studies, [c for c in side_by_side.columns if c not in ("section", "group", "statistic",
                                                                                   "units")]):
        head = pd.read_csv(study / "tables" / "headline.csv")
        rows = head[head["section"].isin(["id_ood", "generalisation"])]
        assert len(rows) == len(side_by_side)
        for r in rows.itertuples():
            cell = side_by_side[(side_by_side["group"] == r.group) & (side_by_side["statistic"] == r.statistic)][label]
            assert cell.iloc[0].startswith(format_ci(r.estimate, r.ci_low, r.ci_high))
    profiles = tables["profiles"]
    assert np.allclose(profiles["relative_depth"], profiles["layer"] / 3)
    for rel in ("figures/depth_profiles_free_text.png", "tables/joined.csv", "tables/correlations.csv"):
        assert (out / rel).exists(), rel


def _copy(study, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(study, target)
    return target


@pytest.mark.parametrize("change, message", [
    ("multipliers", "mismatched units"),
    ("per_token", "mismatched units"),
    ("dataset", "mismatched datasets"),
])
def test_compare_refuses_mismatched_units_or_datasets_in_one_line(studies, tmp_path, change, message):
    other = _copy(studies[1], tmp_path, "other")
    if change == "multipliers":
        config = json.loads((other / "config.json").read_text())
        config["multipliers"] = [-1.0, 0.0, 1.0]
        (other / "config.json").write_text(json.dumps(config))
    elif change == "per_token":
        (other / "tables" / "steerability_cis_per_token.csv").unlink()
    else:
        path = other / "tables" / "steerability_cis.csv"
        table = pd.read_csv(path)
        table[table["dataset"] != "persona:psychopathy@free_text"].to_csv(path, index=False)
    with pytest.raises(ConfigError, match=message):
        check_compatible([load_side(studies[0]), load_side(other)])
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["study", "compare", str(studies[0]), str(other), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not out.exists()  # refused before anything is written


def test_compare_needs_two_directories(studies, tmp_path):
    result = CliRunner().invoke(app, ["study", "compare", str(studies[0]), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "at least 2" in result.output


@pytest.mark.parametrize("a_rate, mass, flagged", [((0.45, 0.55), None, False), ((0.92, 0.97), None, True),
                                                   ((0.03, 0.08), None, True), ((0.45, 0.55), (0.01, 0.02), True),
                                                   ((0.45, 0.55), (0.6, 0.7), False)])
def test_compare_labels_ab_figures_of_a_model_without_the_ab_task(studies, tmp_path, data_root, a_rate, mass, flagged):
    """The A/B-task verdict is read back from each study's headline table (the criterion of its report §2)."""
    sides = [_copy(s, tmp_path, f"s{i}") for i, s in enumerate(studies)]
    for side in sides:  # both studies: the same a_rate (and format mass) CI
        path = side / "tables" / "headline.csv"
        table = pd.read_csv(path)
        table = table[~((table["section"] == "ab_task") & (table["group"] == "all sources / ab")
                        & table["statistic"].isin(["a_rate", "mean_format_mass"]))]
        rows = [dict(section="ab_task", group="all sources / ab", statistic="a_rate", units="share of samples",
                     estimate=sum(a_rate) / 2, ci_low=a_rate[0], ci_high=a_rate[1])]
        if mass is not None:
            rows.append(dict(section="ab_task", group="all sources / ab", statistic="mean_format_mass",
                             units="probability", estimate=sum(mass) / 2, ci_low=mass[0], ci_high=mass[1]))
        pd.concat([table, pd.DataFrame(rows)], ignore_index=True).to_csv(path, index=False)
        assert load_side(side).does_ab_task is (not flagged)
    out = tmp_path / "compare"
    run_compare(sides, out, data_dir=data_root, n_boot=50)
    report = (out / "report.md").read_text()
    ab_lines = [line for line in report.splitlines() if line.startswith("- ") and "ab / summed" in line]
    free_lines = [line for line in report.splitlines() if line.startswith("- ") and "free_text / summed" in line]
    assert ab_lines and free_lines
    assert all(line.startswith("- UNINTERPRETABLE") for line in ab_lines) is flagged
    assert not any("UNINTERPRETABLE" in line for line in free_lines)
    assert ("**A/B framing.**" in report) is flagged


def test_study_verdict_matches_its_report_section(studies):
    """The tiny study's report §2 verdict equals the one the compare job reads back from its headline table."""
    for study in studies:
        report = (study / "report.md").read_text()
        says_no = "the model does NOT do the A/B task" in report
        assert says_no or "the model does the A/B task" in report
        assert load_side(study).does_ab_task is (not says_no)


def test_estimated_cpu_equals_a_hand_computation(tmp_path):
    """Measured: runner record, or driver CPU ≥ wall/10; the rest get their stage-and-framing mean."""
    from interp_steer.runs.study_config import estimated_cpu

    timings = [("steerability", "persona_a-1", 10.0, 9.5), ("steerability", "persona_b@free_text-2", 20.0, 19.0),
               ("steerability", "persona_c-3", 12.0, 0.05), ("steerability", "persona_d@free_text-4", 30.0, 0.1),
               ("steerability", "persona_e-5", 8.0, 0.02), ("steerability", "persona_a-1", 11.0, 10.0),
               ("id_ood", "x-1", 100.0, 1.0)]
    (tmp_path / "timings.jsonl").write_text("\n".join(json.dumps(dict(stage=s, unit=u, wall_s=w, cpu_s=c))
                                                      for s, u, w, c in timings) + "\n")
    (tmp_path / "steerability").mkdir()
    (tmp_path / "steerability" / "unit_timings.jsonl").write_text(json.dumps(dict(unit="persona_e-5", cpu_s=7.0)) + "\n")
    table = estimated_cpu(tmp_path / "timings.jsonl").set_index("stage")
    steer = table.loc["steerability"]
    # a-1 (its last line, 10.0) and e-5 (runner, 7.0) measured A/B; b-2 (19.0) measured free text
    assert steer["units"] == 5 and steer["measured_units"] == 3
    assert steer["cpu_s_measured"] == pytest.approx(10.0 + 7.0 + 19.0)
    assert steer["cpu_s_estimated"] == pytest.approx(10.0 + 7.0 + 19.0 + (10.0 + 7.0) / 2 + 19.0)
    assert steer["wall_s"] == pytest.approx(11.0 + 20.0 + 12.0 + 30.0 + 8.0)
    ood = table.loc["id_ood"]  # nothing measured in the stage: no estimate
    assert ood["measured_units"] == 0 and np.isnan(ood["cpu_s_estimated"])

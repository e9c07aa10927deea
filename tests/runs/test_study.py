"""``interp-steer study tan2024``: the study's pure steps against independent computations, the option checks
(one-line errors before any model load), resume without recomputation (tiny random model), and the whole tiny
preset end to end on the embedded model with every figure and a CI beside every headline number."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.errors import ConfigError
from interp_steer.runs.study import (
    ScanHoldout,
    choose_layer,
    compute_totals,
    format_ci,
    headline_rows,
    layer_profile,
    preset_config,
    run_study,
    select_datasets,
    unsteered_table,
)

TINY_FIGURES = [
    "layer_profile_free_text", "violins_ab", "violins_free_text", "summary_mean_slope_ab",
    "summary_mean_slope_free_text", "summary_anti_steerable_fraction_ab", "summary_anti_steerable_fraction_free_text",
    "propensity_curves_ab", "propensity_curves_free_text", "ab_baseline_a_rate", "spurious_variance", "id_vs_ood",
    "relative_vs_propensity_difference", "summary_anti_steerable_fraction_per_token_free_text", "id_ood_heatmap",
]


def scan_like(rng: np.random.Generator, means: dict[int, float]) -> pd.DataFrame:
    """A scan-shaped per-sample table: 3 free-text datasets × the layers of ``means`` × 5 samples."""
    rows = []
    for d in ("persona:a@free_text", "persona:b@free_text", "persona:c@free_text"):
        for layer, mean in means.items():
            for s in range(5):
                rows.append({"dataset": d, "layer": layer, "sample_id": str(s), "slope": mean + rng.normal(0, 0.1)})
    return pd.DataFrame(rows)


def test_layer_profile_and_choice_match_pandas():
    per_sample = scan_like(np.random.default_rng(0), {2: 0.1, 5: 0.9, 8: 0.4})
    profile = layer_profile(per_sample, n_boot=200)
    expected = per_sample.groupby(["layer", "dataset"])["slope"].mean().groupby("layer").mean()
    means = profile[profile["statistic"] == "mean_slope"].set_index("layer")["estimate"]
    np.testing.assert_allclose(means.sort_index().to_numpy(), expected.sort_index().to_numpy(), rtol=1e-12)
    choice = choose_layer(profile, "free_text")
    assert choice["layer"] == int(expected.idxmax()) == 5
    assert choice["ci_low"] <= choice["estimate"] <= choice["ci_high"] and choice["n_datasets"] == 3
    tied = profile.assign(estimate=np.where(profile["statistic"] == "mean_slope", 1.0, profile["estimate"]))
    assert choose_layer(tied, "free_text")["layer"] == 2  # ties → the lower layer
    with pytest.raises(ConfigError, match="ab framing"):
        choose_layer(profile, "ab")


def test_select_datasets_spreads_over_the_ranks():
    summary = pd.DataFrame({"dataset": [f"d{i:02d}" for i in range(30)], "mean_slope": np.arange(30.0)[::-1]})
    picked = select_datasets(summary, 13)
    ranks = sorted(summary.set_index("dataset").loc[picked, "mean_slope"])
    assert len(picked) == 13 and ranks[0] == 0 and ranks[-1] == 29  # lowest and highest included
    assert max(np.diff(ranks)) <= 3  # evenly spaced: 29 / 12 ≈ 2.4 apart
    assert select_datasets(summary.head(5), 13) == summary.head(5).sort_values("mean_slope")["dataset"].tolist()


def test_headline_rows_drop_statistics_without_an_interval():
    table = pd.DataFrame({"statistic": ["a", "b"], "estimate": [0.5, 0.2], "ci_low": [0.1, np.nan],
                          "ci_high": [0.9, np.nan], "n_samples": [10, 10], "n_datasets": [2, 1], "method": ["m", "m"]})
    rows = headline_rows(table, "s", "g", {"a": "nats"})
    assert rows["statistic"].tolist() == ["a"] and rows["units"].tolist() == ["nats"]
    assert format_ci(0.5, 0.1, 0.9) == "0.500 [0.100, 0.900]"


def test_compute_totals_sums_each_unit_once(tmp_path):
    path = tmp_path / "timings.jsonl"
    lines = [{"stage": "scan", "unit": "a", "wall_s": 10.0, "cpu_s": 4.0},
             {"stage": "scan", "unit": "b", "wall_s": 5.0, "cpu_s": 2.0},
             {"stage": "scan", "unit": "a", "wall_s": 12.0, "cpu_s": 5.0},  # recomputed: the last line counts
             {"stage": "id_ood", "unit": "c", "wall_s": 1.0, "cpu_s": 0.5}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    totals = compute_totals(path).set_index("stage")
    assert totals.loc["scan"].tolist() == [2, 17.0, 7.0, 0] and totals.loc["id_ood"].tolist() == [1, 1.0, 0.5, 0]
    assert compute_totals(tmp_path / "missing.jsonl").empty
    # the runner's per-unit CPU (e.g. from a Ray worker) replaces the driver's where it was recorded
    (tmp_path / "scan").mkdir()
    runner = [{"unit": "b", "wall_s": 4.0, "cpu_s": 30.0}, {"unit": "b", "wall_s": 4.0, "cpu_s": 3.5}]
    (tmp_path / "scan" / "unit_timings.jsonl").write_text("\n".join(json.dumps(x) for x in runner) + "\n")
    totals = compute_totals(path).set_index("stage")
    assert totals.loc["scan"].tolist() == [2, 17.0, 8.5, 1]


def test_unsteered_table_one_row_per_variant_sample():
    per_sample = pd.DataFrame({"dataset": "d", "train_variant": ["BASE", "SYS_POS", "BASE", "SYS_POS"],
                               "variant": ["BASE", "BASE", "SYS_POS", "SYS_POS"], "sample_id": "0", "kind": "free_text",
                               "unsteered_propensity": [1.0, 1.0, 2.5, 2.5], "slope": [0.1, 0.2, 0.3, 0.4]})
    table = unsteered_table(per_sample)
    assert table.set_index("variant")["propensity"].to_dict() == {"BASE": 1.0, "SYS_POS": 2.5}
    assert (table["multiplier"] == 0.0).all()
    with pytest.raises(ConfigError, match="unsteered_propensity"):
        unsteered_table(per_sample.drop(columns="unsteered_propensity"))


def test_scan_samples_are_disjoint_from_the_evaluated_test_samples(data_root):
    from interp_steer.runs.scan import RegistryPairs

    config = preset_config("tiny")
    holdout = ScanHoldout(config.test_fraction, config.seed, 20, 30, str(data_root))
    evaluation = RegistryPairs(None, config.test_fraction, config.seed, config.n_train, None, str(data_root))
    for spec in ("persona:narcissism@free_text", "persona:narcissism"):
        fit, scored = holdout(spec)
        _, test = evaluation(spec)
        assert len(fit) == 20 and len(scored) == 30
        assert not ({p.id for p in fit} | {p.id for p in scored}) & {p.id for p in test}


def test_presets_cover_the_paper(data_root):
    full = preset_config("full", data_dir=data_root)
    ab = [d for d in full.datasets if "@free_text" not in d]
    free = [d for d in full.datasets if d.endswith("@free_text")]
    assert len(ab) == 152 and sum(d.startswith("xrisk:") for d in ab) == 17 and len(free) == 135
    assert full.n_test >= 50 and full.scan_layers == [] and len(full.multipliers) == 7
    assert full.multipliers[0] == -1.5 and full.multipliers[-1] == 1.5
    with pytest.raises(ConfigError, match="--preset"):
        preset_config("huge")
    with pytest.raises(ConfigError, match="including 0"):
        preset_config("tiny", multipliers=[-1.0, 1.0])


@pytest.mark.parametrize("args, message", [
    (["study", "tan2023"], "known studies"),
    (["study", "tan2024", "--preset", "huge"], "--preset"),
    (["study", "tan2024", "--executor", "dask"], "--executor"),
    (["study", "tan2024", "--n-test", "0"], "--n-test"),
    (["study", "tan2024", "--scan-layers", "5-2"], "--scan-layers"),
    (["study", "tan2024", "--multipliers=-1,1"], "including 0"),
])
def test_bad_options_fail_in_one_line_before_the_model_loads(args, message, tmp_path, monkeypatch):
    import interp_steer.models

    def no_model(*_, **__):
        raise AssertionError("the model must not load for a bad option")

    monkeypatch.setattr(interp_steer.models, "load_model", no_model)
    result = CliRunner().invoke(app, args + ["--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]


def test_resumed_study_recomputes_nothing_and_chooses_the_argmax_layer(tiny, tmp_path, data_root):
    config = preset_config("tiny", model="tiny-llama", data_dir=data_root, scan_layers=[0, 1, 2], n_boot=100)
    first_log: list[str] = []
    first = run_study(config, tmp_path, data_dir=data_root, model=tiny, echo=first_log.append)
    scan = pd.read_csv(tmp_path / "scan" / "per_sample.csv")
    means = scan.groupby(["layer", "dataset"])["slope"].mean().groupby("layer").mean()
    assert first.layer["layer"] == int(means.idxmax())
    again_log: list[str] = []
    again = run_study(config, tmp_path, data_dir=data_root, model=tiny, echo=again_log.append)
    for stage in ("scan", "steerability", "ab_task", "id_ood"):
        line = next(x for x in again_log if x.startswith(f"[{stage}]") and "units" in x)
        assert " 0 computed" in line, line
    pd.testing.assert_frame_equal(first.headline, again.headline)
    timed = compute_totals(tmp_path / "timings.jsonl").set_index("stage")["units"].to_dict()
    # one line per computed unit, none on the rerun (ab_task: one unit per A/B dataset of the tiny preset)
    assert timed == {"scan": 2, "steerability": 5, "ab_task": 3, "id_ood": 2}
    assert len((tmp_path / "timings.jsonl").read_text().splitlines()) == 12
    with pytest.raises(ConfigError, match="different"):
        run_study(preset_config("tiny", model="tiny-llama", scan_layers=[0, 1, 2], n_test=5), tmp_path,
                  data_dir=data_root, model=tiny)


@pytest.mark.embedded
def test_tiny_study_end_to_end_has_every_figure_and_interval(tmp_path, data_root):
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["study", "tan2024", "--preset", "tiny", "--out", str(out),
                                      "--data-dir", str(data_root)])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for name in TINY_FIGURES:
        path = out / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000, name
        assert f"](figures/{name}.png)" in report, name
    referenced = re.findall(r"\]\((figures/[^)]+\.png)\)", report)
    assert sorted(referenced) == sorted(f"figures/{n}.png" for n in TINY_FIGURES)
    headline = pd.read_csv(out / "tables" / "headline.csv")
    assert {"layer", "steerability", "ab_task", "ab_null", "free_text", "spurious", "id_ood"} <= set(headline["section"])
    values = headline[["estimate", "ci_low", "ci_high"]].to_numpy(dtype=float)
    assert np.isfinite(values).all() and (values[:, 1] <= values[:, 0] + 1e-12).all()
    assert (values[:, 0] <= values[:, 2] + 1e-12).all() and (headline["n_samples"] > 0).all()
    for row in headline.itertuples():  # every headline number is printed with its interval and n
        assert f"**{row.statistic}** = {format_ci(row.estimate, row.ci_low, row.ci_high)}" in report
    assert f"chosen layer {result.output.split('chosen layer ')[-1].split(';')[0]}" in report


def test_full_grid_id_ood_keeps_the_unsteered_propensity(tiny, tmp_path, data_root):
    """The full 5 × 5 grid's per-sample rows carry each (variant, sample)'s propensity at multiplier 0, equal to
    compute_propensities of the unsteered model on that variant's prompts."""
    from interp_steer.data import load_dataset, train_test_split
    from interp_steer.evaluation import apply_variant, compute_propensities, persona_sentences
    from interp_steer.methods.caa import extract_caa
    from interp_steer.runs.id_ood import IdOodConfig, run_id_ood

    config = IdOodConfig(model="tiny-llama", datasets=["narcissism"], layer=1, multipliers=[-1.0, 0.0, 1.0],
                         n_train=4, n_test=2, full_grid=True, engine="batched")
    per_sample = run_id_ood(config, tmp_path, data_dir=data_root, model=tiny, progress=False).tables["per_sample"]
    assert len(per_sample) == 25 * 2
    train, test = train_test_split(load_dataset("persona:narcissism@free_text", data_dir=data_root),
                                   test_fraction=0.5, seed=0)
    sentences = persona_sentences(train[:4])
    vector = extract_caa(tiny, train[:4], [1], progress=False)
    for variant in ("BASE", "USER_NEG"):
        direct = compute_propensities(tiny, apply_variant(test[:2], variant, sentences), vector, [0.0], progress=False)
        rows = per_sample[per_sample["variant"] == variant]
        for sample_id, value in zip(direct["sample_id"], direct["propensity"]):
            got = rows.loc[rows["sample_id"] == sample_id, "unsteered_propensity"].to_numpy(float)
            np.testing.assert_allclose(got, value, atol=1e-4)  # the same for every train variant's vector


def test_format_ci_switches_to_scientific_notation_for_tiny_values():
    assert format_ci(0.5, 0.4, 0.6) == "0.500 [0.400, 0.600]"
    assert format_ci(3e-4, -1e-3, 2e-3) == "3.00e-04 [-1.00e-03, 2.00e-03]"


def _grid_tables(rng: np.random.Generator):
    """A synthetic 5 × 5 grid: 3 datasets × 6 samples; per-sample slopes and unsteered propensities per variant."""
    from interp_steer.evaluation import VARIANTS

    per_sample, props = [], []
    own = {"d1": 4.0, "d2": 2.0, "d3": 0.2}  # d3's own slopes are near zero relative to its ID slope on SYS_NEG
    for d, scale in own.items():
        for i in range(6):
            for y in VARIANTS:
                props.append({"dataset": d, "variant": y, "sample_id": f"{d}#{i}", "multiplier": 0.0, "kind": "free_text",
                              "propensity": float(rng.normal(0, 3))})
                for x in VARIANTS:
                    base = scale * (0.05 if (d == "d3" and y == "SYS_NEG") else 1.0)
                    per_sample.append({"dataset": d, "train_variant": x, "variant": y, "sample_id": f"{d}#{i}",
                                       "kind": "free_text", "slope": float(base * (1 + rng.normal(0, 0.2)))})
    return pd.DataFrame(per_sample), pd.DataFrame(props)


def test_per_example_abs_difference_and_relative_cutoff_match_numpy():
    from interp_steer.evaluation import generalisation_correlation, relative_steerability_table

    per_sample, props = _grid_tables(np.random.default_rng(3))
    table = relative_steerability_table(per_sample, props, relative_cutoff=0.25, n_boot=100, seed=0)
    per_dataset = table["per_dataset"].set_index(["dataset", "train_variant", "variant"])
    u = props.pivot_table(index=["dataset", "sample_id"], columns="variant", values="propensity")
    s = per_sample.groupby(["dataset", "train_variant", "variant"])["slope"].mean()
    for d in ("d1", "d2", "d3"):
        ud = u.loc[d]
        for x, y in (("BASE", "SYS_POS"), ("SYS_POS", "BASE"), ("USER_NEG", "SYS_NEG")):
            row = per_dataset.loc[(d, x, y)]
            assert row["abs_propensity_difference"] == pytest.approx(np.mean(np.abs(ud[y] - ud[x])))
            assert row["propensity_difference"] == pytest.approx(np.mean(ud[y] - ud[x]))
            cutoff = 0.25 * abs(s[(d, "BASE", "BASE")])
            assert row["cutoff"] == pytest.approx(cutoff)
            own = s[(d, y, y)]
            expected = s[(d, x, y)] / abs(own) if abs(own) > cutoff else np.nan
            np.testing.assert_allclose(row["relative"], expected, rtol=1e-9)
    # the signed difference cancels over X→Y and Y→X; the absolute one does not
    assert per_dataset.loc[("d1", "BASE", "SYS_POS"), "propensity_difference"] == pytest.approx(
        -per_dataset.loc[("d1", "SYS_POS", "BASE"), "propensity_difference"])
    assert np.isnan(per_dataset.loc[("d3", "BASE", "SYS_NEG"), "relative"])  # d3's SYS_NEG own slope fails the cutoff
    across = table["across_datasets"].set_index(["train_variant", "variant", "statistic"])
    cell = per_dataset.xs(("BASE", "SYS_POS"), level=("train_variant", "variant"))
    assert across.loc[("BASE", "SYS_POS", "relative_steerability_median"), "estimate"] == pytest.approx(
        np.median(cell["relative"]))
    corr = generalisation_correlation(table["per_dataset"], n_boot=100)
    points = table["per_dataset"].query("train_variant != variant").dropna(subset=["relative"])
    assert set(corr["statistic"]) == {"pearson_r", "spearman_r"}  # no dataset-means statistic (degenerate)
    assert corr.set_index("statistic").loc["pearson_r", "estimate"] == pytest.approx(
        np.corrcoef(points["abs_propensity_difference"], points["relative"])[0, 1])


def test_per_token_propensity_is_the_summed_log_prob_over_the_completion_length(tiny, data_root):
    """per_token_propensity = log p(pos)/n_pos − log p(neg)/n_neg, checked against a hand forward pass."""
    import torch

    from interp_steer.data import load_dataset
    from interp_steer.data.tokenization import encode_pair
    from interp_steer.evaluation import compute_propensities
    from interp_steer.methods.caa import extract_caa
    from interp_steer.stats import completion_lengths, per_token_propensities

    pairs = load_dataset("persona:narcissism@free_text", data_dir=data_root)[:3]
    vector = extract_caa(tiny, pairs, [1], progress=False)
    props = compute_propensities(tiny, pairs, vector, [0.0], progress=False)
    props["dataset"] = "persona:narcissism@free_text"
    lengths = completion_lengths(tiny.tokenizer, pairs, dataset="persona:narcissism@free_text")
    table = per_token_propensities(props, lengths).set_index("sample_id")
    for pair in pairs:
        enc = encode_pair(tiny.tokenizer, pair)
        sides = []
        for completion in (enc.positive_ids, enc.negative_ids):
            tokens = torch.tensor([list(enc.prompt_ids) + list(completion)])
            with torch.no_grad():
                logp = torch.log_softmax(tiny(tokens)[0].double(), dim=-1)
            start = len(enc.prompt_ids)
            total = sum(float(logp[start + j - 1, t]) for j, t in enumerate(completion))
            sides.append(total / len(completion))
        row = table.loc[pair.id]
        assert row["n_pos_tokens"] == len(enc.positive_ids) and row["n_neg_tokens"] == len(enc.negative_ids)
        assert row["per_token_propensity"] == pytest.approx(sides[0] - sides[1], abs=2e-3)
        assert row["per_token_propensity"] == pytest.approx(
            row["pos_logprob"] / row["n_pos_tokens"] - row["neg_logprob"] / row["n_neg_tokens"])


def test_rebuilt_report_equals_the_pipeline_report(tiny, tmp_path, data_root):
    from interp_steer.runs.study_rebuild import rebuild_study_report

    config = preset_config("tiny", model="tiny-llama", data_dir=data_root, scan_layers=[0, 1, 2], n_boot=100)
    run_study(config, tmp_path, data_dir=data_root, model=tiny, echo=lambda _: None)
    report = (tmp_path / "report.md").read_text()
    tables = {p.name: p.read_text() for p in (tmp_path / "tables").glob("*.csv")}
    lengths = (tmp_path / "tables" / "completion_lengths.csv").read_text()
    (tmp_path / "tables" / "completion_lengths.csv").unlink()  # recomputed from the tokenizer and the split
    (tmp_path / "report.md").unlink()
    rebuild_study_report(tmp_path, data_dir=data_root, tokenizer=tiny.tokenizer)
    assert (tmp_path / "report.md").read_text() == report
    assert (tmp_path / "tables" / "completion_lengths.csv").read_text() == lengths
    for name, text in tables.items():
        assert (tmp_path / "tables" / name).read_text() == text, name

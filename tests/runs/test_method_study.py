"""The method study (issue 28) end to end on the tiny model, each reported number checked against an independent
computation: slopes with ``np.polyfit``, neutral-corpus KL with a hand-written hook and a float64 softmax, the
prompting contrast with the batched engine, relative steerability from the variant units' own propensities."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.errors import ConfigError
from interp_steer.runs.method_study import MethodStudyConfig, MethodStudyJob, run_method_study

HOOK = "blocks.1.hook_resid_post"
SETS = ["builtin:sentiment", "builtin:formality"]
runner = CliRunner()


def _config(**kw) -> MethodStudyConfig:
    base = dict(datasets=SETS, layer=1, model="tiny-llama", methods=["caa", "pca_diff", "probe"],
                multipliers=[-1.0, 0.0, 1.0], n_train=6, n_test=6, n_boot=200, kl_multipliers=[0.5, 1.0, 2.0],
                n_neutral=3, ood_datasets=["builtin:sentiment"], ood_methods=["caa", "pca_diff"], ood_n_test=4)
    return MethodStudyConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def study(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("methods")
    config = _config()
    report = run_method_study(config, out, model=tiny, progress=False)
    return config, out, report


def _slopes(table: pd.DataFrame, by=("sample_id",)) -> pd.Series:
    return table.groupby(list(by)).apply(lambda g: np.polyfit(g.multiplier, g.propensity, 1)[0])


def _unit_tables(config, out):
    job = MethodStudyJob(config)
    props, kls = {}, {}
    for unit in job.units():
        if unit.part == "steer":
            files = job.unit_files(unit)
            props[(unit.dataset, unit.method)] = pd.read_csv(out / files[2], dtype={"sample_id": str})
            kls[(unit.dataset, unit.method)] = pd.read_csv(out / files[1])
    return props, kls


def test_units_resume_and_vectors_have_the_caa_norm(tiny, study):
    from interp_steer.methods import extract, extract_caa
    from interp_steer.runs.scan import RegistryPairs
    from interp_steer.steering import SteeringVector

    config, out, report = study
    assert report.complete and len(report.done) == 3 * 2 + 2 + 2  # steer, prompting, variants units
    again = run_method_study(config, out, model=tiny, progress=False)
    assert again.done == [] and len(again.reused) == 10
    job, data = MethodStudyJob(config), RegistryPairs(None, 0.5, 0, 6, 6)
    for unit in [u for u in job.units() if u.part == "steer"]:
        vector = SteeringVector.load(out / job.unit_files(unit)[0])
        caa_norm = float(extract_caa(tiny, data(unit.dataset)[0], [1], progress=False)[1].norm())
        assert math.isclose(float(vector[1].norm()), caa_norm, rel_tol=1e-4)
        # the job shares the training activations between a dataset's methods: the same direction as a fresh run
        fresh = extract(unit.method, tiny, data(unit.dataset)[0], [1], config.method_config(unit.method, caa_norm),
                        progress=False)[1]
        assert float(torch.nn.functional.cosine_similarity(vector[1], fresh, dim=0)) > 1 - 1e-6


def test_summary_paired_and_matched_shift_equal_hand_computations(study):
    config, out, report = study
    props, kls = _unit_tables(config, out)
    summary = report.tables["summary"].set_index(["spec", "method"])
    matched = report.tables["matched_kl"].set_index(["spec", "method"])
    paired = report.tables["paired"].set_index(["spec", "method"])
    checked = 0
    for (spec, method), table in props.items():
        slopes = _slopes(table)
        row = summary.loc[(spec, method)]
        assert math.isclose(row.mean_slope, slopes.mean(), rel_tol=1e-9, abs_tol=1e-12)
        assert row.anti_steerable_fraction == (slopes < 0).mean()
        assert row.mean_slope_ci_low <= row.mean_slope <= row.mean_slope_ci_high
        caa = _slopes(props[(spec, "caa")])
        if method != "caa":
            assert math.isclose(paired.loc[(spec, method)].mean_slope_difference, (slopes - caa).mean(), abs_tol=1e-12)
        # matched shift: m* = 1 · mean(CAA slopes) / mean(method slopes); KL interpolated per passage
        kl = kls[(spec, method)].pivot(index="passage_id", columns="multiplier", values="kl")
        m_star = 1.0 if method == "caa" else caa.mean() / slopes.mean() if slopes.mean() > 0 else np.nan
        got = matched.loc[(spec, method)]
        assert math.isclose(got.kl_matched_norm, kl[1.0].mean(), rel_tol=1e-9)
        if np.isfinite(m_star) and m_star <= 2.0:
            assert math.isclose(got.matched_multiplier, m_star, rel_tol=1e-9)
            by_hand = np.mean([np.interp(m_star, [0, 0.5, 1.0, 2.0], [0, *r]) for r in kl[[0.5, 1.0, 2.0]].to_numpy()])
            assert math.isclose(got.kl_matched_shift, by_hand, rel_tol=1e-9)
            assert got.status == "ok"
            checked += 1
        else:
            assert np.isnan(got.get("kl_matched_shift", np.nan)) and got.status != "ok"
    assert checked >= 2  # CAA itself on both sets at least


@torch.no_grad()
def test_neutral_kl_equals_a_hand_written_hook(tiny, study):
    from interp_steer.data.neutral import load_neutral_corpus
    from interp_steer.data.tokenization import encode_sequence
    from interp_steer.steering import SteeringVector

    config, out, _ = study
    job = MethodStudyJob(config)
    unit = next(u for u in job.units() if u.method == "pca_diff" and u.part == "steer")
    direction = SteeringVector.load(out / job.unit_files(unit)[0])[1]
    table = pd.read_csv(out / job.unit_files(unit)[1])
    passage = load_neutral_corpus(limit=config.n_neutral)[1]
    tokens = torch.tensor([list(encode_sequence(tiny.tokenizer, passage.text))])
    plain = torch.log_softmax(tiny(tokens)[0].double(), -1)
    steered = torch.log_softmax(tiny.run_with_hooks(tokens, fwd_hooks=[(HOOK, lambda a, hook: a + 2.0 * direction)])[0]
                                .double(), -1)
    expected = float((plain.exp() * (plain - steered)).sum(-1).mean())
    got = table[(table.passage_id == passage.id) & (table.multiplier == 2.0)].kl.item()
    assert math.isclose(got, expected, rel_tol=1e-3)


def test_prompting_contrast_equals_the_batched_engine(tiny, study):
    from interp_steer.evaluation.baseline import BUILTIN_PERSONAS
    from interp_steer.evaluation.propensity import compute_propensities
    from interp_steer.evaluation.variants import apply_variant
    from interp_steer.methods import extract, extract_caa
    from interp_steer.runs.scan import RegistryPairs

    config, _, report = study
    contrast = report.tables["contrast"].set_index(["spec", "arm"])
    train, test = RegistryPairs(None, 0.5, 0, 6, 6)("builtin:formality")
    vector = extract_caa(tiny, train, [1], progress=False)
    means = {v: compute_propensities(tiny, apply_variant(test, v, BUILTIN_PERSONAS["builtin:formality"]), vector, [0.0],
                                     progress=False).set_index("sample_id").propensity for v in ("SYS_POS", "SYS_NEG")}
    row = contrast.loc[("builtin:formality", "prompting")]
    assert math.isclose(row.contrast, (means["SYS_POS"] - means["SYS_NEG"]).mean(), rel_tol=1e-4, abs_tol=1e-5)
    assert row.contrast_ci_low <= row.contrast <= row.contrast_ci_high and row.kl > 0
    steer = contrast.loc[("builtin:formality", "probe")]
    props, _ = _unit_tables(config, study[1])
    by_m = props[("builtin:formality", "probe")].pivot(index="sample_id", columns="multiplier", values="propensity")
    assert math.isclose(steer.contrast, (by_m[1.0] - by_m[-1.0]).mean(), rel_tol=1e-9)


def test_ood_slopes_equal_the_variant_units_propensities(study):
    config, out, report = study
    ood = report.tables["ood"]
    assert set(ood.method) == {"caa", "pca_diff"} and set(ood.variant) == {"BASE", "SYS_POS", "SYS_NEG", "USER_POS",
                                                                           "USER_NEG"}
    for method in ("caa", "pca_diff"):
        table = pd.read_csv(out / f"units/{method}__builtin_sentiment-c2f80b55__variants.csv", dtype={"sample_id": str})
        slopes = _slopes(table, ("train_variant", "variant", "sample_id")).groupby(level=[0, 1]).mean()
        for _, row in ood[ood.method == method].iterrows():
            assert row.n_samples == 4
            assert math.isclose(row.slope, slopes[("BASE", row.variant)], rel_tol=1e-6, abs_tol=1e-9)
            assert math.isclose(row.own_slope, slopes[(row.variant, row.variant)], rel_tol=1e-6, abs_tol=1e-9)


def test_report_has_every_section_and_both_heat_maps(study):
    _, out, _ = study
    text = (out / "report" / "report.md").read_text()
    for heading in ("Per method and dataset", "Paired per-sample", "KL at matched shift", "prompting baseline",
                    "ID→OOD", "Dataset or method?", "Which method for which purpose"):
        assert heading in text
    assert "matched shift" in text and "matched norm" in text
    for name in ("anti_steerable_fraction", "mean_slope"):
        assert (out / "report" / f"heatmap_{name}.png").stat().st_size > 0
    assert (out / "report" / "ranking.csv").exists()
    assert "Vector norms before rescaling" in text


def test_norms_table_equals_the_methods_own_vectors(tiny, study):
    """own_norm = the method's vector before rescaling (a fresh extraction), caa_norm = the saved vector's norm."""
    from interp_steer.methods import extract
    from interp_steer.runs.scan import RegistryPairs
    from interp_steer.steering import SteeringVector

    config, out, _ = study
    norms = pd.read_csv(out / "report" / "norms.csv")
    job, data = MethodStudyJob(config), RegistryPairs(None, 0.5, 0, 6, 6)
    steer_units = [u for u in job.units() if u.part == "steer"]
    assert len(norms) == len(steer_units)
    for unit in steer_units:
        row = norms[(norms["spec"] == unit.dataset) & (norms["method"] == unit.method)].iloc[0]
        saved = float(SteeringVector.load(out / job.unit_files(unit)[0])[1].norm())
        fresh = extract(unit.method, tiny, data(unit.dataset)[0], [1], config.method_config(unit.method, saved),
                        progress=False)
        assert math.isclose(row.own_norm, float(fresh[1].norm()), rel_tol=1e-4)
        assert math.isclose(row.caa_norm, saved, rel_tol=1e-4)
        assert math.isclose(row.ratio, row.own_norm / row.caa_norm, rel_tol=1e-9)


@pytest.mark.parametrize("kw,fragment", [
    ({"reference_multiplier": 0.5}, "reference_multiplier 0.5"),
    ({"kl_multipliers": [0.5]}, "kl_multipliers"),
    ({"kl_multipliers": [0.0, 1.0]}, "kl_multipliers"),
    ({"ood_datasets": ["builtin:nope"]}, "ood_datasets ['builtin:nope']"),
    ({"trained_datasets": ["x"]}, "trained_datasets ['x']"),
    ({"ood_methods": ["reps"]}, "ood_methods ['reps']"),
    ({"n_neutral": 0}, "--n-neutral must be an integer ≥ 1"),
    ({"methods": ["probe", "caa"]}, "must start with 'caa'"),
    ({"methods": ["caa", "nope"]}, "not pair-based registry methods"),
])
def test_config_errors_name_the_field(kw, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        _config(**kw)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_trained_methods_run_only_on_their_datasets():
    config = _config(methods=["caa", "probe", "reps"], trained_datasets=["builtin:formality"], ood_datasets=[],
                     ood_methods=None, prompting=False)
    job = MethodStudyJob(config)
    keys = [u.key for u in job.units()]
    assert pickle.loads(pickle.dumps(job)).units() == job.units()  # Ray ships the job to its workers
    assert [k for k in keys if k.startswith("reps")] == ["reps__builtin_formality-e38dfd29"]
    assert len(keys) == 2 * 2 + 1
    # RePS trains its direction at the norm every method is compared at; the others keep their own configs
    assert config.method_config("reps", 12.5).scale == 12.5 and config.method_config("reps").scale is None
    assert config.method_config("reps", 12.5).max_steps == config.trained_steps


def test_the_reps_unit_trains_at_the_caa_norm(tiny):
    from toy_steering import toy_free_text_pairs

    from interp_steer.methods import extract_caa
    from interp_steer.runs.method_study_units import matched_norm_vector

    config = _config(methods=["caa", "reps"], trained_steps=1, ood_datasets=[], ood_methods=None, prompting=False)
    pairs = toy_free_text_pairs(4)
    vector, own_norm, caa_norm = matched_norm_vector(tiny, config, "reps", "toy", pairs)
    expected = extract_caa(tiny, pairs, [config.layer], progress=False).norms()
    assert caa_norm == pytest.approx(next(iter(expected.values())))
    assert own_norm == pytest.approx(caa_norm) and vector.provenance.extra["config"]["scale"] == pytest.approx(caa_norm)


def test_cli_study_methods_runs_and_checks_its_options(tmp_path):
    missing = runner.invoke(app, ["study", "methods", "--out", str(tmp_path / "a"), "--model", "tiny-llama"])
    assert missing.exit_code == 2 and "needs --datasets" in missing.output
    bad = runner.invoke(app, ["study", "methods", "--out", str(tmp_path / "b"), "--model", "tiny-llama", "--datasets",
                              "builtin:sentiment", "--layer", "1", "--methods", "caa,probe", "--ood-datasets", "x:y"])
    assert bad.exit_code == 2 and "ood_datasets ['x:y']" in bad.output
    out = tmp_path / "c"
    result = runner.invoke(app, ["study", "methods", "--out", str(out), "--model", "tiny-llama", "--datasets",
                                 "builtin:sentiment", "--layer", "1", "--methods", "caa,pca_centred", "--n-train", "4",
                                 "--n-test", "4", "--n-boot", "100", "--multipliers=-1,0,1", "--n-neutral", "2"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert sorted(summary["method"]) == ["caa", "pca_centred"] and (summary["n_samples"] == 4).all()
    assert (out / "units" / "prompting__builtin_sentiment-c2f80b55.baseline.csv").exists()
    before = (out / "report" / "report.md").read_text()
    (out / "report" / "report.md").unlink()
    rebuilt = runner.invoke(app, ["study", "methods", "--out", str(out), "--report-only"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (out / "report" / "report.md").read_text() == before  # same numbers from the unit files

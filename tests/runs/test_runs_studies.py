"""The analyses' studies on the runner (tiny random model, builtin datasets): resumable, sharded, and equal to
the direct computation (CAA + compute_propensities + hand-written least squares)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_steer.data import load_dataset, train_test_split
from interp_steer.errors import ConfigError
from interp_steer.evaluation import compute_propensities
from interp_steer.methods.caa import extract_caa
from interp_steer.runs.steerability import (
    SteerabilityConfig,
    combine_steerability,
    run_steerability,
    spurious_by_dataset,
)

DATASETS = ["builtin:sentiment", "builtin:sentiment@ab", "builtin:formality@ab"]
MULTS = [-1.0, 0.0, 1.5]


def study_config(**overrides) -> SteerabilityConfig:
    settings = dict(model="tiny-llama", datasets=DATASETS, layer=1, multipliers=MULTS, n_train=6, n_test=8,
                    engine="batched", batch_size=8)
    return SteerabilityConfig(**{**settings, **overrides})


def direct_propensities(model, spec: str, layer: int, n_train: int, n_test: int) -> pd.DataFrame:
    train, test = train_test_split(load_dataset(spec), test_fraction=0.5, seed=0)
    vector = extract_caa(model, train[:n_train], [layer], progress=False)
    return compute_propensities(model, test[:n_test], vector, MULTS, progress=False)


def lstsq_slopes(props: pd.DataFrame) -> pd.Series:
    """Per sample_id the least-squares slope of propensity on multiplier (numpy.polyfit)."""
    return props.groupby("sample_id").apply(
        lambda g: np.polyfit(g["multiplier"].to_numpy(float), g["propensity"].to_numpy(float), 1)[0])


def r2_on(y: np.ndarray, x: np.ndarray) -> float:
    design = np.column_stack([np.ones(len(y)), x])
    residual = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    return 1 - (residual ** 2).sum() / ((y - y.mean()) ** 2).sum()


@pytest.fixture(scope="module")
def study(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("steerability")
    report = run_steerability(study_config(), out, model=tiny, progress=False)
    return out, report


def test_steerability_equals_direct_computation(tiny, study):
    out, report = study
    assert report.complete and sorted(report.done) == sorted(u.key for u in study_config().all_units())
    per_sample = report.tables["per_sample"]
    assert list(dict.fromkeys(per_sample["dataset"])) == DATASETS  # report order
    for spec in DATASETS:
        direct = lstsq_slopes(direct_propensities(tiny, spec, 1, 6, 8))
        rows = per_sample[per_sample["dataset"] == spec].set_index("sample_id")
        assert len(rows) == len(direct) == 8
        np.testing.assert_allclose(rows.loc[direct.index, "slope"].to_numpy(float), direct.to_numpy(), atol=1e-6)
        assert set(rows["framing"]) == {"free_text" if "@" not in spec else "ab"}
        assert set(rows["source"]) == {"builtin"} and set(rows["n_train"]) == {6}
    # the summary tables from the per-sample slopes, by pandas directly
    summary = report.tables["summary"].set_index("dataset")
    for spec, group in per_sample.groupby("dataset"):
        assert summary.at[spec, "mean_slope"] == pytest.approx(group["slope"].mean(), abs=1e-9)
        assert summary.at[spec, "anti_steerable_fraction"] == pytest.approx((group["slope"] < 0).mean())
    ab = per_sample[per_sample["framing"] == "ab"]
    by_source = report.tables["summary_by_source"].set_index("framing")
    assert by_source.at["ab", "n_datasets"] == 2
    assert by_source.at["ab", "mean_slope"] == pytest.approx(ab.groupby("dataset")["slope"].mean().mean(), abs=1e-9)
    letter = ab.groupby(["dataset", "is_A"])["slope"].mean().groupby("dataset").mean().mean()
    assert by_source.at["ab", "letter_balanced_slope"] == pytest.approx(letter, abs=1e-9)
    # the spurious-factor combine step: R² of the A/B slopes on is_A by numpy least squares
    spurious = report.tables["spurious"].set_index("dataset")
    assert sorted(spurious.index) == ["builtin:formality@ab", "builtin:sentiment@ab"]
    for spec, group in ab.groupby("dataset"):
        expected = r2_on(group["slope"].to_numpy(float), group["is_A"].astype(float).to_numpy())
        assert spurious.at[spec, "r2_is_A"] == pytest.approx(expected, abs=1e-9)
        gap = group[group["is_A"]]["slope"].mean() - group[~group["is_A"].astype(bool)]["slope"].mean()
        assert spurious.at[spec, "mean_slope_pos_is_A"] - spurious.at[spec, "mean_slope_pos_is_B"] == \
            pytest.approx(gap, abs=1e-9)
    # the combined tables on disk are the returned ones
    on_disk = combine_steerability(out)
    pd.testing.assert_frame_equal(on_disk["summary"], report.tables["summary"])


def test_steerability_resumes_without_computing(tiny, study):
    out, first = study
    again = run_steerability(study_config(), out, model=tiny, progress=False)
    assert again.done == [] and sorted(again.reused) == sorted(first.done)
    pd.testing.assert_frame_equal(again.tables["per_sample"], first.tables["per_sample"])
    with pytest.raises(ConfigError, match="layer"):
        run_steerability(study_config(layer=2), out, model=tiny, progress=False)


def test_steerability_shards_and_framings_fill_one_directory(tiny, study, tmp_path):
    _, whole = study
    only_ab = run_steerability(study_config(framings=["ab"], shard="1/2"), tmp_path, model=tiny, progress=False)
    assert only_ab.done == [study_config().all_units()[2].key]  # the 2nd of the two A/B units
    rest = [run_steerability(study_config(shard=s), tmp_path, model=tiny, progress=False) for s in ("0/2", "1/2")]
    assert sorted(rest[0].done + rest[1].done) == sorted(u.key for u in study_config().all_units()[:2])
    pd.testing.assert_frame_equal(rest[1].tables["per_sample"], whole.tables["per_sample"])


def test_fast_engine_matches_batched(tiny, study, tmp_path):
    _, batched = study
    fast = run_steerability(study_config(engine="fast"), tmp_path, model=tiny, progress=False)
    np.testing.assert_allclose(fast.tables["per_sample"]["slope"], batched.tables["per_sample"]["slope"], atol=1e-4)


def test_steerability_config_errors():
    with pytest.raises(ConfigError, match="--shard"):
        study_config(shard="2/2")
    with pytest.raises(ConfigError, match="more than once"):
        study_config(datasets=["builtin:sentiment", "builtin:sentiment"])
    with pytest.raises(ConfigError, match="framing"):
        study_config(datasets=["xrisk:coordinate-itself@free_text"])


def test_spurious_by_dataset_without_ab_rows_is_empty(study):
    _, report = study
    free = report.tables["per_sample"].query("framing == 'free_text'")
    assert spurious_by_dataset(free).empty


def test_norm_relative_scan_equals_hand_rescaled_caa(tiny, tmp_path):
    """ScanConfig(scale="resid_norm"): each layer's CAA direction rescaled to the mean residual norm at the read
    position; slopes equal compute_propensities with the hand-rescaled vector; a rerun computes nothing."""
    from interp_steer.methods.caa import collect_contrastive_activations
    from interp_steer.runs.scan import ScanConfig, registry_pairs, run_scan_job, scan_vector_table
    from interp_steer.steering import SteeringVector

    specs, layers = ["builtin:sentiment", "builtin:formality@ab"], [0, 2]
    config = ScanConfig(model="tiny-llama", datasets=specs, layers=layers, multipliers=MULTS, n_train=6, n_test=8,
                        engine="batched", scale="resid_norm", batch_size=8)
    first = run_scan_job(config, registry_pairs(config), tmp_path, model=tiny, progress=False)
    assert first.complete and len(first.done) == 2
    vectors = scan_vector_table(tmp_path, config).set_index(["dataset", "layer"])
    per_sample = first.tables["per_sample"]
    for spec in specs:
        train, test = train_test_split(load_dataset(spec), test_fraction=0.5, seed=0)
        acts = collect_contrastive_activations(tiny, train[:6], layers, progress=False)
        for layer in layers:
            hook = f"blocks.{layer}.hook_resid_post"
            both = np.concatenate([acts.positive[hook].numpy(), acts.negative[hook].numpy()])
            resid_norm = np.linalg.norm(both, axis=-1).mean()
            diff = (acts.positive[hook] - acts.negative[hook]).mean(0)
            assert vectors.at[(spec, layer), "vector_norm"] == pytest.approx(resid_norm, rel=1e-5)
            assert vectors.at[(spec, layer), "raw_norm"] == pytest.approx(float(diff.norm()), rel=1e-5)
            scaled = SteeringVector({hook: diff * (resid_norm / diff.norm())})
            direct = lstsq_slopes(compute_propensities(tiny, test[:8], scaled, MULTS, progress=False))
            rows = per_sample[(per_sample["dataset"] == spec) & (per_sample["layer"] == layer)].set_index("sample_id")
            # the job's vector equals the hand-rescaled one to float32 rounding (norms to 1e-5 above), so slopes to 1e-5
            np.testing.assert_allclose(rows.loc[direct.index, "slope"].to_numpy(float), direct.to_numpy(), rtol=1e-5,
                                       atol=1e-6)
            assert set(rows["vector"]) == {f"caa-rel:{spec}"}
    again = run_scan_job(config, registry_pairs(config), tmp_path, model=tiny, progress=False)
    assert again.done == [] and len(again.reused) == 2
    with pytest.raises(ConfigError, match="scale"):  # a raw scan may not resume a norm-relative directory
        run_scan_job(ScanConfig(**{**config.to_dict(), "scale": "raw"}), registry_pairs(config), tmp_path,
                     model=tiny, progress=False)
    with pytest.raises(ConfigError, match="scale"):
        ScanConfig(model="tiny-llama", datasets=specs, layers=layers, scale="unit")


def test_id_ood_job_equals_direct_variant_computation(tiny, tmp_path, data_root):
    """ID/OOD study on the runner: the BASE vector on a variant's prompts and that variant's own vector on them,
    against CAA + compute_propensities + numpy least squares on the same variant pairs; resumable."""
    from interp_steer.evaluation import apply_variant, persona_sentences
    from interp_steer.runs.id_ood import IdOodConfig, run_id_ood

    config = IdOodConfig(model="tiny-llama", datasets=["narcissism"], layer=1, multipliers=MULTS, n_train=6,
                         n_test=3, engine="batched")
    first = run_id_ood(config, tmp_path, data_dir=data_root, model=tiny, progress=False)
    assert first.complete and len(first.done) == 1
    per_sample = first.tables["per_sample"]
    train, test = train_test_split(load_dataset("persona:narcissism@free_text", data_dir=data_root),
                                   test_fraction=0.5, seed=0)
    train, test = train[:6], test[:3]
    sentences = persona_sentences(train)
    means = {}
    for train_variant, variant in [("BASE", "BASE"), ("BASE", "SYS_POS"), ("SYS_POS", "SYS_POS")]:
        vector = extract_caa(tiny, apply_variant(train, train_variant, sentences), [1], progress=False)
        direct = lstsq_slopes(compute_propensities(tiny, apply_variant(test, variant, sentences), vector, MULTS))
        rows = per_sample[(per_sample["train_variant"] == train_variant) & (per_sample["variant"] == variant)]
        rows = rows.set_index("sample_id")
        np.testing.assert_allclose(rows.loc[direct.index, "slope"].to_numpy(float), direct.to_numpy(), atol=1e-6)
        means[(train_variant, variant)] = direct.mean()
    table = first.tables["id_ood"].set_index("variant")
    assert table.at["SYS_POS", "id_steerability"] == pytest.approx(means[("BASE", "BASE")], abs=1e-6)
    assert table.at["SYS_POS", "ood_steerability"] == pytest.approx(means[("BASE", "SYS_POS")], abs=1e-6)
    assert table.at["SYS_POS", "own_variant_steerability"] == pytest.approx(means[("SYS_POS", "SYS_POS")], abs=1e-6)
    assert len(per_sample) == 3 * 9  # the BASE row (5 cells) and the 4 other diagonal cells, 3 samples each
    again = run_id_ood(config, tmp_path, data_dir=data_root, model=tiny, progress=False)
    assert again.done == [] and again.reused == first.done


def test_bipo_vs_caa_job_equals_direct_training(tiny, tmp_path):
    """BiPO vs CAA on the runner: the CAA unit's propensities are compute_propensities of the CAA vector (fast
    engine, to 1e-4); the BiPO unit's vector is train_bipo's with the same config; BiPO@CAA-norm has the CAA norm;
    a rerun computes nothing."""
    from interp_steer.methods import train_bipo
    from interp_steer.runs.bipo_vs_caa import BipoVsCaaConfig, run_bipo_vs_caa
    from interp_steer.steering import SteeringVector

    config = BipoVsCaaConfig(model="tiny-llama", datasets=["builtin:sentiment"], layer=1, multipliers=MULTS,
                             n_train=6, n_test=4, all_pos_datasets=["builtin:sentiment"], bipo_steps=2,
                             bipo_batch_size=3)
    first = run_bipo_vs_caa(config, tmp_path, model=tiny, progress=False)
    assert first.complete and len(first.done) == 2
    train, test = train_test_split(load_dataset("builtin:sentiment"), test_fraction=0.5, seed=0)
    caa = extract_caa(tiny, train[:6], [1], progress=False)
    props = first.tables["propensities"]
    direct = compute_propensities(tiny, test[:4], caa, MULTS).set_index(["sample_id", "multiplier"])
    own = props[props["method"] == "caa"].set_index(["sample_id", "multiplier"])
    np.testing.assert_allclose(own.loc[direct.index, "propensity"], direct["propensity"], atol=1e-4)
    bipo = train_bipo(tiny, train[:6], config.bipo_config(None), progress=False)
    saved = SteeringVector.load(tmp_path / "units" / f"bipo__{first.done[1].split('__', 1)[1]}.safetensors")
    hook = "blocks.1.hook_resid_post"
    np.testing.assert_allclose(saved.directions[hook].numpy(), bipo.directions[hook].numpy(), atol=1e-6)
    norms = props.groupby("method")["vector_norm"].first()
    assert norms["bipo@caa_norm"] == pytest.approx(float(caa.directions[hook].norm()), rel=1e-5)
    assert norms["bipo"] == pytest.approx(float(bipo.directions[hook].norm()), rel=1e-5)
    assert set(first.tables["allpos"]["vector"]) == {"caa", "bipo@caa_norm"}
    again = run_bipo_vs_caa(config, tmp_path, model=tiny, progress=False)
    assert again.done == [] and sorted(again.reused) == sorted(first.done)

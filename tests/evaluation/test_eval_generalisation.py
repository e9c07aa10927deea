"""ID/OOD as Tan et al. run it: the 5 × 5 grid with BASE-norm vectors, relative steerability with the framing's
cutoff, and relative steerability vs the unsteered-propensity difference, against numpy on a tiny model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_eval_variants import persona_pairs

from interp_steer.errors import ConfigError
from interp_steer.evaluation import compute_propensities, generalisation_correlation
from interp_steer.evaluation.variants import (
    MIN_OWN_SLOPE_BY_KIND,
    VARIANTS,
    PersonaSentences,
    apply_variant,
    cross_variant_steerability,
    match_base_norm,
    own_slope_cutoff,
    relative_steerability_table,
)
from interp_steer.methods import extract_caa

MULTS = [-1.0, 0.0, 1.0]
SENTENCES = PersonaSentences("You are vain.", "You are modest.")


@pytest.fixture(scope="module")
def grid(tiny):
    train, test = persona_pairs(6), persona_pairs(8)[6:]
    out = cross_variant_steerability(tiny, train, test, 1, MULTS, sentences=SENTENCES, extract=extract_caa)
    return train, test, out


def test_full_grid_with_base_norm_matches_polyfit(tiny, grid):
    train, test, out = grid
    assert out["matrix"].shape == (5, 5) and list(out["matrix"].index) == list(VARIANTS)
    assert len(out["per_sample"]) == 25 * len(test)
    # independent path: vectors by hand, rescaled to BASE's norm by hand, slopes with numpy polyfit
    raw = {v: extract_caa(tiny, apply_variant(train, v, SENTENCES), [1], progress=False) for v in VARIANTS}
    hook = raw["BASE"].hook_names[0]
    base_norm = float(raw["BASE"].directions[hook].double().norm())
    for x, y in (("SYS_POS", "USER_NEG"), ("SYS_NEG", "USER_POS"), ("USER_NEG", "USER_NEG"), ("BASE", "SYS_NEG")):
        direction = raw[x].directions[hook].double()
        scaled = (direction * base_norm / direction.norm()).float()
        props = compute_propensities(tiny, apply_variant(test, y, SENTENCES),
                                     type(raw[x])({hook: scaled}, raw[x].provenance), MULTS)
        slopes = [np.polyfit(g.multiplier.to_numpy(float), g.propensity.to_numpy(float), 1)[0]
                  for _, g in props.groupby("sample_id")]
        assert out["matrix"].at[x, y] == pytest.approx(np.mean(slopes), abs=1e-5)
    # the relative matrix: X→Y over |Y→Y| where |Y→Y| > 0.25 (A/B cutoff, logits)
    m = out["matrix"]
    for y in VARIANTS:
        own = m.at[y, y]
        expected = m[y] / abs(own) if abs(own) > MIN_OWN_SLOPE_BY_KIND["ab"] else m[y] * np.nan
        np.testing.assert_allclose(out["relative"][y].to_numpy(), expected.to_numpy(), equal_nan=True)


def test_match_base_norm_rescales_and_needs_base(tiny):
    vectors = {v: extract_caa(tiny, apply_variant(persona_pairs(4), v, SENTENCES), [1], progress=False)
               for v in ("BASE", "SYS_POS")}
    out = match_base_norm(vectors)
    hook = vectors["BASE"].hook_names[0]
    assert float(out["SYS_POS"].directions[hook].norm()) == pytest.approx(float(vectors["BASE"].directions[hook].norm()), rel=1e-5)
    cos = float(np.dot(out["SYS_POS"].directions[hook].numpy(), vectors["SYS_POS"].directions[hook].numpy()))
    assert cos > 0
    with pytest.raises(ConfigError, match="BASE"):
        match_base_norm({"SYS_POS": vectors["SYS_POS"]})
    assert own_slope_cutoff("free_text") == MIN_OWN_SLOPE_BY_KIND["free_text"] and own_slope_cutoff("ab", 1.0) == 1.0
    with pytest.raises(ConfigError, match="min_own_slope"):
        own_slope_cutoff("audio")


def test_relative_table_against_hand_computation(grid):
    _, test, out = grid
    per, props = out["per_sample"], out["propensities"]
    # two datasets: the tiny grid as d1, and a copy with shifted slopes / propensities as d2
    per2 = per.assign(dataset="d2", slope=per["slope"] * 3 + 0.5)
    props2 = props.assign(dataset="d2", propensity=props["propensity"] - 1.0 * (props["variant"] == "SYS_POS"))
    per_all, props_all = pd.concat([per.assign(dataset="d1"), per2]), pd.concat([props.assign(dataset="d1"), props2])
    tables = relative_steerability_table(per_all, props_all, min_own_slope=0.0, n_boot=300, seed=1)
    table = tables["per_dataset"].set_index(["dataset", "train_variant", "variant"])
    assert len(table) == 2 * 25
    for d, p, q in (("d1", per, props), ("d2", per2, props2)):
        for x, y in (("SYS_POS", "USER_NEG"), ("USER_POS", "SYS_POS"), ("BASE", "BASE")):
            slope = p[(p.train_variant == x) & (p.variant == y)].slope.mean()
            own = p[(p.train_variant == y) & (p.variant == y)].slope.mean()
            u = q[q.multiplier == 0].drop_duplicates(["variant", "sample_id"]).groupby("variant").propensity.mean()
            row = table.loc[(d, x, y)]
            assert row.slope == pytest.approx(slope) and row.own_slope == pytest.approx(own)
            assert row.relative == pytest.approx(slope / abs(own))
            assert row.propensity_difference == pytest.approx(u[y] - u[x])
            assert row.relative_ci_low <= row.relative + 1e-12 and row.relative <= row.relative_ci_high + 1e-12
    # d2's SYS_POS prompts are 1 logit less propense at multiplier 0
    assert table.loc[("d2", "BASE", "SYS_POS"), "propensity_difference"] == pytest.approx(
        table.loc[("d1", "BASE", "SYS_POS"), "propensity_difference"] - 1.0)
    # cutoff in the framing's units: a huge cutoff blanks every relative value
    strict = relative_steerability_table(per_all, props_all, min_own_slope=1e6, n_boot=50)["per_dataset"]
    assert strict["relative"].isna().all() and strict["propensity_difference"].notna().all()
    across = tables["across_datasets"].set_index(["train_variant", "variant", "statistic"])
    cell = table.xs(("SYS_POS", "USER_NEG"), level=("train_variant", "variant"))
    assert across.loc[("SYS_POS", "USER_NEG", "relative_steerability"), "estimate"] == pytest.approx(cell.relative.mean())
    assert across.loc[("SYS_POS", "USER_NEG", "relative_steerability"), "n_datasets"] == 2
    corr = generalisation_correlation(tables["per_dataset"], n_boot=200)
    points = tables["per_dataset"].query("train_variant != variant")
    pearson = corr[corr.statistic == "pearson_r"].estimate.iloc[0]
    assert pearson == pytest.approx(np.corrcoef(points.abs_propensity_difference, points.relative)[0, 1])
    assert set(corr["n_datasets"]) == {2} and set(corr["statistic"]) == {"pearson_r", "spearman_r"}
    signed = generalisation_correlation(tables["per_dataset"], x="propensity_difference", n_boot=200)
    assert signed.set_index("statistic").loc["pearson_r", "estimate"] == pytest.approx(
        np.corrcoef(points.propensity_difference, points.relative)[0, 1])

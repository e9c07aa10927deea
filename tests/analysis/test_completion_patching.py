"""Intervention (c) of issue 26 on the tiny model: completion-position patching checked against hand-written hooks
on full, unpadded run_with_cache / run_with_hooks forwards of each sequence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hand_patching import reference_slopes

from interp_steer.analysis.completion_patching import (
    CompletionPatch,
    clustered_ratio,
    combine_sides,
    completion_patch_slopes,
    patch_effects,
    sample_patch_slopes,
    standard_patches,
)
from interp_steer.analysis.interventions import steered_slopes
from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.steering import Provenance, SteeringVector

LAYER = 0  # of the 3-layer tiny model
MULTS = [-2.0, 0.0, 1.0, 2.5]
PAIR = ContrastivePair("The weather report says that it will rain all day long.", " I am glad, I love rain.",
                       " That is awful news for us.", kind="free_text", id="w1", dataset="t")
PAIR_2 = ContrastivePair("Tell me about cats.", " Cats are lovely.", " I do not like cats at all.",
                         kind="free_text", id="c1", dataset="u")


@pytest.fixture(scope="module")
def direction():
    return torch.randn(64, generator=torch.Generator().manual_seed(5)) * 3.0


@pytest.fixture(scope="module")
def vector(direction):
    return SteeringVector({f"blocks.{LAYER}.hook_resid_post": direction}, Provenance(method="test", layers=[LAYER]))


def _reference_slopes(model, direction, pair, patch):
    return reference_slopes(model, direction, LAYER, pair, patch, MULTS)


PATCHES = [
    CompletionPatch("neg_completion_at_layer", ("neg",), "completion", (LAYER,)),
    CompletionPatch("neg_completion_all_layers", ("neg",), "completion", None),
    CompletionPatch("pos_all_layer_1", ("pos",), "all", (1,)),
    CompletionPatch("neg_only_steered", ("neg",), "completion", (LAYER,), into="clean"),
    CompletionPatch("both_all_clean", ("pos", "neg"), "all", None),
    CompletionPatch("both_all_steered_into_clean", ("pos", "neg"), "all", None, into="clean"),
]


def test_patches_match_hand_written_hooks(tiny, vector, direction):
    table = sample_patch_slopes(tiny, vector, PAIR, PATCHES, MULTS).set_index("patch")
    assert list(table.index) == ["none", *[p.name for p in PATCHES if p.into == "steered"],
                                 *[p.name for p in PATCHES if p.into == "clean"]]
    for patch in [None, *PATCHES]:
        expected = _reference_slopes(tiny, direction, PAIR, patch)
        got = table.loc["none" if patch is None else patch.name, ["slope", "s_pos", "s_neg"]].to_numpy(float)
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=0)
    assert abs(table.loc["none", "s_neg"]) > 0.05  # steering really moves the non-matching log-prob
    s_neg = table["s_neg"].drop(["both_all_clean", "both_all_steered_into_clean", "pos_all_layer_1"])
    assert np.diff(np.sort(s_neg.to_numpy())).min() > 1e-3  # the patches really differ
    # patch nothing = the steered result (the study's engine); everything after the steering layer = unsteered
    engine = steered_slopes(tiny, [PAIR], direction, LAYER, MULTS).iloc[0]
    np.testing.assert_allclose(table.loc["none", ["slope", "s_pos", "s_neg"]].to_numpy(float),
                               engine[["slope", "s_pos", "s_neg"]].to_numpy(float), atol=1e-4)
    np.testing.assert_allclose(table.loc["both_all_clean", ["slope", "s_pos", "s_neg"]].to_numpy(float), 0, atol=1e-5)
    np.testing.assert_allclose(table.loc["both_all_steered_into_clean", ["slope", "s_pos", "s_neg"]].to_numpy(float),
                               table.loc["none", ["slope", "s_pos", "s_neg"]].to_numpy(float), atol=1e-5)
    # a one-sided patch leaves the other completion untouched
    assert table.loc["neg_completion_all_layers", "s_pos"] == pytest.approx(table.loc["none", "s_pos"], abs=1e-6)
    assert table.loc["neg_only_steered", "s_pos"] == pytest.approx(0.0, abs=1e-6)


def test_completion_patch_slopes_stacks_and_rejects_bad_patches(tiny, vector):
    table = completion_patch_slopes(tiny, vector, [PAIR, PAIR_2], PATCHES[:1], MULTS)
    assert list(table["sample_id"]) == ["w1", "w1", "c1", "c1"]
    standard = sample_patch_slopes(tiny, vector, PAIR_2, standard_patches(LAYER), MULTS).set_index("patch")
    reference = sample_patch_slopes(tiny, vector, PAIR_2, PATCHES[:2], MULTS).set_index("patch")
    np.testing.assert_allclose(standard.loc["neg_tokens_unsteered_at_layer", "s_neg"],
                               reference.loc["neg_completion_at_layer", "s_neg"], atol=1e-6)
    np.testing.assert_allclose(standard.loc["neg_tokens_unsteered_all_layers", "s_neg"],
                               reference.loc["neg_completion_all_layers", "s_neg"], atol=1e-6)
    # patching both completions = combining the one-sided patches (separate sequences)
    both = sample_patch_slopes(tiny, vector, PAIR_2, [CompletionPatch("both", ("pos", "neg"), "completion", (LAYER,))],
                               MULTS).set_index("patch")
    combined = combine_sides(standard.reset_index(), "pos_tokens_unsteered_at_layer", "neg_tokens_unsteered_at_layer",
                             "combined").set_index("patch")
    np.testing.assert_allclose(combined.loc["combined", ["slope", "s_pos", "s_neg"]].to_numpy(float),
                               both.loc["both", ["slope", "s_pos", "s_neg"]].to_numpy(float), atol=1e-5)
    with pytest.raises(ConfigError, match="combine_sides"):
        combine_sides(standard.reset_index(), "nope", "neg_tokens_unsteered_at_layer", "x")
    with pytest.raises(ConfigError, match="layers"):
        sample_patch_slopes(tiny, vector, PAIR, [CompletionPatch("x", layers=(5,))], MULTS)
    with pytest.raises(ConfigError, match="region"):
        sample_patch_slopes(tiny, vector, PAIR, [CompletionPatch("x", region="prompt")], MULTS)
    with pytest.raises(ConfigError, match="unique"):
        sample_patch_slopes(tiny, vector, PAIR, [CompletionPatch("none")], MULTS)
    with pytest.raises(ConfigError, match="distinct"):
        sample_patch_slopes(tiny, vector, PAIR, PATCHES[:1], [1.0, 1.0])
    ab = ContrastivePair("Q?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)", id="ab", dataset="t")
    with pytest.raises(ConfigError, match="free-text"):
        sample_patch_slopes(tiny, vector, ab, PATCHES[:1], MULTS)


def test_clustered_ratio_and_patch_effects_against_numpy():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(6), 5)
    num, den = rng.normal(size=30), rng.uniform(1, 2, size=30)
    share, low, high = clustered_ratio(num, den, clusters, n_boot=500)
    assert share == pytest.approx(num.sum() / den.sum())
    # the same cluster bootstrap written out with a loop
    draws = np.random.default_rng(0).integers(0, 6, size=(500, 6))
    boot = [sum(num[clusters == c].sum() for c in d) / sum(den[clusters == c].sum() for c in d) for d in draws]
    assert (low, high) == pytest.approx(tuple(np.nanquantile(boot, [0.025, 0.975])))
    with pytest.raises(ConfigError, match="clustered_ratio"):
        clustered_ratio([1.0], [1.0, 2.0], [0])

    base = pd.DataFrame({"sample_id": list("abcd"), "dataset": ["x", "x", "y", "y"], "patch": "none",
                         "slope": [-1.0, -2.0, 1.0, 3.0], "s_pos": [1.0, 0.0, 2.0, 3.0], "s_neg": [2.0, 2.0, 1.0, 0.0]})
    after = base.assign(patch="p", s_neg=[0.5, 2.5, 1.0, 4.0])
    after["slope"] = after["s_pos"] - after["s_neg"]
    effects = patch_effects(pd.concat([base, after]), n_boot=200).set_index("group")
    anti = effects.loc["anti-steerable"]
    assert anti["n"] == 2 and anti["s_neg_change"] == pytest.approx(-0.5)
    assert anti["s_neg_removed"] == pytest.approx((1.5 - 0.5) / 4.0)
    assert anti["sign_flipped"] == pytest.approx(0.5)  # a: −1 → +0.5; b: −2 → −2.5
    steer_row = effects.loc["steerable"]
    assert steer_row["sign_flipped"] == pytest.approx(0.5) and steer_row["slope_change"] == pytest.approx(-2.0)

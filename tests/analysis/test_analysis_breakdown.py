"""Steerable / anti-steerable / insensitive breakdown, checked against numpy, statsmodels and run_with_cache."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from statsmodels.stats.weightstats import ttest_ind

from interp_steer.analysis.breakdown import (
    classify_steerability,
    cohens_d,
    compare_groups,
    render_breakdown_markdown,
    sae_feature_differences,
    sample_features,
)
from interp_steer.analysis.readout import answer_readout
from interp_steer.data import ContrastivePair, encode_pair
from interp_steer.errors import ConfigError
from interp_steer.evaluation import compute_propensities, steerability
from interp_steer.steering import Provenance, SteeringVector

QUESTIONS = ["Do you like apples?", "Is rain nice?", "Should I rest?", "Are cats good?", "Is tea hot?", "Can birds fly?"]
PAIRS = [
    ContrastivePair(f"{q}\n\nChoices:\n(A) Yes\n(B) No", "(A)" if i % 2 else "(B)", "(B)" if i % 2 else "(A)",
                    id=f"p{i}", dataset="t", meta={"positive_is_yes": bool(i % 2)})
    for i, q in enumerate(QUESTIONS)
]


def test_classify_thresholds():
    frame = pd.DataFrame({"sample_id": list("abcde"), "slope": [2.0, -1.0, 0.05, -0.05, 1.0]})
    out = classify_steerability(frame, eps=0.1)
    assert list(out["group"].astype(str)) == ["steerable", "anti-steerable", "insensitive", "insensitive", "steerable"]
    default = classify_steerability(frame)  # 0.1 × median |slope| = 0.1
    assert default["eps"].iloc[0] == pytest.approx(0.1 * np.median(np.abs(frame["slope"])))
    with pytest.raises(ConfigError, match="slope"):
        classify_steerability(frame.drop(columns="slope"))
    with pytest.raises(ConfigError, match="eps"):
        classify_steerability(frame, eps=-1.0)


def test_cohens_d_and_welch_against_independent_formulas():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 12), rng.normal(0.0, 2.0, 9)
    residuals = np.concatenate([a - a.mean(), b - b.mean()])
    pooled_sd = np.sqrt((residuals ** 2).sum() / (len(a) + len(b) - 2))
    assert cohens_d(a, b) == pytest.approx((a.mean() - b.mean()) / pooled_sd)
    assert np.isnan(cohens_d(a[:1], b))
    features = pd.DataFrame({"x": np.concatenate([a, b, [0.0]]),
                             "group": ["steerable"] * 12 + ["anti-steerable"] * 9 + ["insensitive"]})
    table = compare_groups(features, ["x"])
    assert table["welch_p"].item() == pytest.approx(ttest_ind(a, b, usevar="unequal")[1], rel=1e-9)
    assert table["mean_insensitive"].item() == 0.0
    assert table.attrs["group_sizes"] == {"steerable": 12, "anti-steerable": 9, "insensitive": 1}
    text = render_breakdown_markdown(table, eps=0.1)
    assert "| feature |" in text and "steerable: 12" in text
    with pytest.raises(ConfigError, match="group"):
        compare_groups(features.drop(columns="group"))


@pytest.fixture(scope="module")
def setup(tiny):
    generator = torch.Generator().manual_seed(7)
    vector = SteeringVector({"blocks.1.hook_resid_post": torch.randn(64, generator=generator)},
                            Provenance(method="test", read_position="answer"))
    props = compute_propensities(tiny, PAIRS, vector, [-2.0, 0.0, 2.0])
    per_sample = classify_steerability(steerability(props), eps=0.0)
    return vector, props, per_sample


def test_sample_features_match_manual_activations(tiny, setup):
    vector, props, per_sample = setup
    features = sample_features(tiny, vector, PAIRS, per_sample, props)
    assert list(features["sample_id"]) == [p.id for p in PAIRS]
    v = vector.directions["blocks.1.hook_resid_post"].double()
    for pair, row in zip(PAIRS, features.itertuples()):
        enc = encode_pair(tiny.tokenizer, pair)
        acts = []
        for response in (enc.positive_ids, enc.negative_ids):
            _, cache = tiny.run_with_cache(torch.tensor([enc.prompt_ids + response]), names_filter="blocks.1.hook_resid_post")
            acts.append(cache["blocks.1.hook_resid_post"][0, len(enc.prompt_ids) + 1].double())  # the letter of "(A)"
        diff = acts[0] - acts[1]
        assert row.diff_norm == pytest.approx(float(diff.norm()), rel=1e-4)
        assert row.diff_cosine == pytest.approx(float(diff @ v / diff.norm() / v.norm()), abs=1e-4)
        assert row.prompt_tokens == len(enc.prompt_ids)
        base = props[(props["sample_id"] == pair.id) & (props["multiplier"] == 0.0)]["propensity"].item()
        assert row.baseline_propensity == pytest.approx(base)
        assert row.is_A == pair.is_A and row.is_Yes == pair.is_Yes
    assert set(features["group"].astype(str)) <= {"steerable", "anti-steerable", "insensitive"}
    with pytest.raises(ConfigError, match="not in the steerability table"):
        sample_features(tiny, vector, PAIRS, per_sample.iloc[:2], props)


class _ToySAE:
    """A stand-in SAE: ReLU(x W + b) with sae-lens-like cfg fields."""

    def __init__(self, d_in: int, d_sae: int, hook_name: str):
        generator = torch.Generator().manual_seed(11)
        self.W = torch.randn(d_in, d_sae, generator=generator)
        self.b = torch.randn(d_sae, generator=generator) * 0.1
        self.cfg = SimpleNamespace(d_in=d_in, metadata=SimpleNamespace(hook_name=hook_name))

    def encode(self, x):
        return torch.relu(x @ self.W + self.b)


def test_sae_feature_differences_ranked_by_effect_size(tiny):
    hook = "blocks.1.hook_resid_post"
    sae = _ToySAE(64, 32, hook)
    groups = ["steerable", "anti-steerable"] * 3
    table = sae_feature_differences(tiny, sae, PAIRS, groups, top_k=5, min_active=1)
    rows = []
    for pair in PAIRS:
        _, cache = tiny.run_with_cache(torch.tensor([answer_readout(tiny.tokenizer, pair).ids]), names_filter=hook)
        rows.append(cache[hook][0, -1])
    latents = sae.encode(torch.stack(rows)).numpy()
    s, a = latents[0::2], latents[1::2]
    assert len(table) == 5 and table["cohens_d"].abs().is_monotonic_decreasing
    for row in table.itertuples():
        assert row.cohens_d == pytest.approx(cohens_d(s[:, row.feature], a[:, row.feature]), rel=1e-4)
        assert row.mean_steerable == pytest.approx(float(s[:, row.feature].mean()), rel=1e-4, abs=1e-6)
    with pytest.raises(ConfigError, match="groups"):
        sae_feature_differences(tiny, sae, PAIRS, groups[:2])
    with pytest.raises(ConfigError, match="hook_name"):
        sae_feature_differences(tiny, _ToySAE(64, 8, "nope"), PAIRS, groups)

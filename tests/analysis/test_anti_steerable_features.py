"""Candidate features, completion direct effects / logit lens (tiny model, checked against independent
run_with_cache computations) and the held-out factor tests (synthetic data with a known answer)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from toy_steering import random_vector

from interp_steer.analysis.candidates import (
    candidate_features,
    discovery_split,
    heldout_factor_tests,
    sae_heldout_tests,
    sae_top_tokens,
)
from interp_steer.analysis.completion_effects import (
    completion_direct_effects,
    completion_logit_lens,
    completion_token_effects,
    vector_top_tokens,
)
from interp_steer.analysis.readout import sample_sequences
from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.evaluation import compute_propensities
from interp_steer.steering import SteeringVector

MULT = 3.0
PAIRS = [
    ContrastivePair("Tell me about rain.", " I love it.", " I really hate it.", kind="free_text", id="a", dataset="t"),
    ContrastivePair("What do you think of cats?", " Cats are lovely.", " Cats are awful pests.", kind="free_text", id="b", dataset="t"),
    ContrastivePair("Describe a long train journey.", " It was calm and pleasant.", " Dull.", kind="free_text", id="c", dataset="t"),
]


def _vector(layer: int, seed: int = 3) -> SteeringVector:
    return random_vector(layer, seed=seed, read_position="completion_mean")


class LinearReluSAE:
    """A real (small, random) ReLU encoder with the attributes the analysis reads from an sae-lens SAE."""

    def __init__(self, d_in: int, d_sae: int, hook_name: str):
        generator = torch.Generator().manual_seed(11)
        self.W = torch.randn(d_in, d_sae, generator=generator)
        self.b = torch.randn(d_sae, generator=generator) * 0.1
        self.cfg = SimpleNamespace(d_in=d_in, metadata=SimpleNamespace(hook_name=hook_name))
        self.device = "cpu"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.float() @ self.W + self.b)


def test_token_effects_sum_to_the_engine_metric_and_direct_equals_steering_at_the_last_layer(tiny):
    vector = _vector(tiny.cfg.n_layers - 1)
    engine = compute_propensities(tiny, PAIRS[:1], vector, [0.0, MULT]).set_index("multiplier")["propensity"]
    tokens = completion_token_effects(tiny, vector, PAIRS[0], multiplier=MULT)
    sums = tokens.groupby("side")[["logprob_clean", "logprob_steered", "logprob_direct"]].sum()
    diff = sums.loc["pos"] - sums.loc["neg"]
    assert diff["logprob_clean"] == pytest.approx(engine[0.0], abs=1e-5)
    assert diff["logprob_steered"] == pytest.approx(engine[MULT], abs=1e-5)
    # steering the final residual stream *is* the direct path
    np.testing.assert_allclose(tokens["logprob_direct"], tokens["logprob_steered"], atol=1e-5)
    seqs = sample_sequences(tiny.tokenizer, PAIRS[0])
    assert (tokens["side"] == "pos").sum() == len(seqs.rows[0].ids) - seqs.rows[0].score_from
    effects = completion_direct_effects(tiny, vector, PAIRS[:1], multiplier=MULT).iloc[0]
    assert effects["direct_share"] == pytest.approx(1.0, abs=1e-4)


def test_vector_logit_is_the_linear_push_through_the_final_norm(tiny):
    vector = _vector(0)
    tokens = completion_token_effects(tiny, vector, PAIRS[1], multiplier=MULT)
    seqs = sample_sequences(tiny.tokenizer, PAIRS[1])
    row = seqs.rows[0]
    _, cache = tiny.run_with_cache(torch.tensor([row.ids]))
    scale = cache["ln_final.hook_scale"][0, :, 0]
    v = vector.directions["blocks.0.hook_resid_post"]
    first = tokens[tokens["side"] == "pos"].iloc[0]
    t = int(first["position"])
    expected = float(((tiny.ln_final.w * v) / scale[t - 1]) @ tiny.W_U[:, row.ids[t]])
    assert first["vector_logit"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    top = vector_top_tokens(tiny, vector, k=3)
    logits = (tiny.ln_final.w * v) @ tiny.W_U
    assert top.loc[top["direction"] == "raised", "token_id"].iloc[0] == int(logits.argmax())
    assert top.loc[top["direction"] == "lowered", "token_id"].iloc[0] == int(logits.argmin())


def test_completion_logit_lens_final_layer_is_the_metric(tiny):
    vector = _vector(0)
    lens = completion_logit_lens(tiny, vector, PAIRS[2], multiplier=MULT)
    engine = compute_propensities(tiny, PAIRS[2:], vector, [0.0, MULT]).set_index("multiplier")["propensity"]
    last = lens[lens["layer"] == tiny.cfg.n_layers - 1].set_index("condition")["metric"]
    assert last["clean"] == pytest.approx(engine[0.0], abs=1e-5)
    assert last["steered"] == pytest.approx(engine[MULT], abs=1e-5)
    first = lens[lens["layer"] == 0].set_index("condition")["metric"]
    assert abs(first["steered − clean"]) > 1e-4  # the vector at layer 0 shows up in the lens at its own layer


def test_candidate_features_against_independent_forwards(tiny):
    vector = _vector(0)
    props = compute_propensities(tiny, PAIRS, vector, [0.0, MULT])
    sae = LinearReluSAE(64, 32, "blocks.1.hook_resid_post")
    cand = candidate_features(tiny, vector, PAIRS, props, multiplier=MULT, sae=sae, attention_tokens=2)
    table = cand.table.set_index("sample_id")
    base = props[props["multiplier"] == 0].set_index("sample_id")["propensity"]
    steered = props[props["multiplier"] == MULT].set_index("sample_id")["propensity"]
    unit = vector.directions["blocks.0.hook_resid_post"] / vector.directions["blocks.0.hook_resid_post"].norm()
    for index, pair in enumerate(PAIRS):
        seqs = sample_sequences(tiny.tokenizer, pair)
        row = table.loc[pair.id]
        assert row["baseline_propensity"] == pytest.approx(base[pair.id], abs=1e-9)
        assert row["total_per_unit"] == pytest.approx((steered[pair.id] - base[pair.id]) / MULT, abs=1e-5)
        prompt = torch.tensor([seqs.rows[0].ids[: seqs.steer_from + 1]])
        _, cache = tiny.run_with_cache(prompt)
        proj = cache["blocks.0.hook_resid_post"][0] @ unit
        assert row["proj_last"] == pytest.approx(float(proj[-1]), abs=1e-4)
        assert row["proj_mean"] == pytest.approx(float(proj.mean()), abs=1e-4)
        assert row["prompt_tokens"] == seqs.steer_from + 1
        assert row["completion_token_diff"] == len(seqs.rows[0].ids) - len(seqs.rows[1].ids)
        # attention mass from the first 2 completion tokens to prompt keys 1..last, unpadded, per side
        masses = []
        for r in seqs.rows:
            _, full = tiny.run_with_cache(torch.tensor([r.ids]))
            q = list(range(r.score_from, min(r.score_from + 2, len(r.ids))))
            for layer in (1, 2):
                masses.append(float(full[f"blocks.{layer}.attn.hook_pattern"][0][:, q, 1: seqs.steer_from + 1].sum(-1).mean()))
        assert row["attn_prompt_clean"] == pytest.approx(float(np.mean(masses)), abs=1e-5)
        latents = sae.encode(cache["blocks.1.hook_resid_post"][0, -1])
        np.testing.assert_allclose(cand.sae_latents[index], latents.numpy(), atol=1e-4)
        # completion contrast: mean latents over each completion's own tokens, unpadded runs of each sequence
        means = []
        for r in seqs.rows:
            _, full = tiny.run_with_cache(torch.tensor([r.ids]))
            means.append(sae.encode(full["blocks.1.hook_resid_post"][0, seqs.steer_from + 1:]).mean(0))
        np.testing.assert_allclose(cand.completion_latents[index], (means[0] - means[1]).numpy(), atol=1e-4)
        del index
    assert cand.token_latents.shape[0] == len(cand.token_records)
    top = sae_top_tokens(cand.token_latents, cand.token_records, [0, 1], k=2)
    best = int(np.argmax(cand.token_latents[:, 0]))
    assert top[top["feature"] == 0].iloc[0]["activation"] == pytest.approx(float(cand.token_latents[best, 0]))


def test_candidate_features_reject_ab_pairs(tiny):
    ab = ContrastivePair("Q?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)", id="x", dataset="t")
    with pytest.raises(ConfigError, match="free-text"):
        candidate_features(tiny, _vector(0), [ab], pd.DataFrame({"sample_id": ["x"], "multiplier": [0.0], "propensity": [0.0]}))


def _synthetic(n=80, seed=0):
    rng = np.random.default_rng(seed)
    slope = rng.normal(size=n)
    groups = np.where(slope > 0.3, "steerable", np.where(slope < -0.3, "anti-steerable", "insensitive"))
    table = pd.DataFrame({"signal": slope + rng.normal(0, 0.3, n), "noise": rng.normal(size=n),
                          "negative": -slope + rng.normal(0, 0.5, n)})
    return table, slope, groups, rng


def test_heldout_factor_tests_find_the_known_factors():
    table, slope, groups, _ = _synthetic()
    discovery = discovery_split(groups, 0.5, seed=1)
    assert abs(discovery.sum() - 40) <= 2
    for g in ("steerable", "anti-steerable"):
        assert abs((discovery & (groups == g)).sum() - (~discovery & (groups == g)).sum()) <= 1
    tests = heldout_factor_tests(table, slope, groups, ["signal", "noise", "negative"], discovery=discovery, n_boot=300).set_index("factor")
    assert tests.loc["signal", "held"] and tests.loc["signal", "heldout_rho"] > 0.8 and tests.loc["signal", "heldout_d"] > 1.5
    assert tests.loc["negative", "held"] and tests.loc["negative", "heldout_rho"] < -0.6
    assert not tests.loc["noise", "held"]
    assert tests.loc["noise", "heldout_rho_low"] < 0 < tests.loc["noise", "heldout_rho_high"]
    assert (tests["n_heldout"] + tests["n_discovery"] == 80).all()


def test_sae_heldout_tests_pick_the_separating_latent_on_the_discovery_half_only():
    _, slope, groups, rng = _synthetic(seed=2)
    latents = np.maximum(rng.normal(size=(80, 50)), 0)
    latents[:, 17] = np.maximum(-slope, 0) * 3 + 0.01  # fires on anti-steerable samples
    discovery = discovery_split(groups, 0.5, seed=0)
    tests = sae_heldout_tests(latents, slope, groups, discovery=discovery, top_k=5, n_boot=300)
    assert tests.iloc[0]["feature"] == 17 and tests.iloc[0]["held"]
    assert tests.iloc[0]["discovery_d"] < 0 and tests.iloc[0]["active_anti"] == 1.0
    assert tests["held"].sum() <= 2  # noise latents rarely hold


def test_signed_sae_tests_count_negative_differences_as_active():
    """Completion-contrast latents are differences: with ``signed=True`` a latent that is negative on the
    anti-steerable samples is selected and held; without it, it never counts as active."""
    _, slope, groups, rng = _synthetic(seed=3)
    contrast = rng.normal(0, 0.1, size=(80, 30)) * (rng.random((80, 30)) < 0.3)
    contrast[:, 5] = np.minimum(slope, 0) * 2 - 0.01  # negative, more so on anti-steerable samples
    discovery = discovery_split(groups, 0.5, seed=0)
    signed = sae_heldout_tests(contrast, slope, groups, discovery=discovery, top_k=5, n_boot=300, signed=True)
    assert signed.iloc[0]["feature"] == 5 and signed.iloc[0]["held"] and signed.iloc[0]["active_anti"] == 1.0
    unsigned = sae_heldout_tests(contrast, slope, groups, discovery=discovery, top_k=5, n_boot=300)
    assert 5 not in set(unsigned["feature"])

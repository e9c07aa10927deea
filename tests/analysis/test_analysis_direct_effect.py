"""Direct effect through the unembedding and the logit lens, against hand computations from run_with_cache."""

from __future__ import annotations

import pytest
import torch
from toy_steering import random_vector

from interp_steer.analysis.direct_effect import direct_effects, logit_lens
from interp_steer.analysis.readout import answer_readout
from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.evaluation import compute_propensities
from interp_steer.steering import steer

MULT = 2.5
PAIRS = [
    ContrastivePair("Do you like apples?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)", id="ab1", dataset="t"),
    ContrastivePair("Is the sky green?\n\nChoices:\n(A) No\n(B) Yes", "(B)", "(A)", id="ab2", dataset="t"),
]


@pytest.fixture(scope="module")
def vector():
    return random_vector(1, seed=5)


def _hand_rms_logits(model, resid: torch.Tensor) -> torch.Tensor:
    """ln_final (RMSNorm) + unembed written out by hand, in float64."""
    x = resid.double()
    normed = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + model.cfg.eps) * model.ln_final.w.double()
    return normed @ model.W_U.double() + model.b_U.double()


def test_direct_effect_matches_hand_computation(tiny, vector):
    table = direct_effects(tiny, vector, PAIRS, multiplier=MULT)
    v = vector.directions["blocks.1.hook_resid_post"].double()
    last = f"blocks.{tiny.cfg.n_layers - 1}.hook_resid_post"
    for pair, row in zip(PAIRS, table.itertuples()):
        readout = answer_readout(tiny.tokenizer, pair)
        assert tiny.tokenizer.decode([readout.positive_token]) == pair.positive_letter
        tokens = torch.tensor([readout.ids])
        delta_u = tiny.W_U[:, readout.positive_token].double() - tiny.W_U[:, readout.negative_token].double()
        assert row.direct_raw == pytest.approx(float(v @ delta_u), rel=1e-5)
        # linear check: add eps·v to the final residual with the norm scale frozen at its clean value
        _, cache = tiny.run_with_cache(tokens, names_filter=lambda n: n in (last, "ln_final.hook_scale"))
        clean_scale = cache["ln_final.hook_scale"]
        eps = 1e-2

        def add_v(act, hook):
            act = act.clone()
            act[0, -1] += eps * v.float()
            return act

        def freeze(act, hook):
            return clean_scale

        bumped = tiny.run_with_hooks(tokens, fwd_hooks=[(last, add_v), ("ln_final.hook_scale", freeze)])[0, -1].double()
        clean_logits = tiny(tokens)[0, -1].double()
        change = (bumped - clean_logits) / eps
        linear = float(change[readout.positive_token] - change[readout.negative_token])
        assert row.direct_normed == pytest.approx(linear, rel=1e-3, abs=1e-4)
        assert row.final_scale == pytest.approx(float(clean_scale[0, -1]), rel=1e-6)
    engine = compute_propensities(tiny, PAIRS, vector, [0.0, MULT]).pivot(index="sample_id", columns="multiplier", values="propensity")
    expected = (engine[MULT] - engine[0.0]) / MULT
    assert table.set_index("sample_id")["total_per_unit"].to_dict() == pytest.approx(expected.to_dict(), abs=1e-5)


def test_logit_lens_matches_hand_computation(tiny, vector):
    pair = PAIRS[0]
    lens = logit_lens(tiny, vector, pair, multiplier=MULT)
    readout = answer_readout(tiny.tokenizer, pair)
    tokens = torch.tensor([readout.ids])
    pos, neg = readout.positive_token, readout.negative_token
    with steer(tiny, vector, multiplier=MULT, positions=torch.tensor([readout.steer_from])):
        _, steered = tiny.run_with_cache(tokens)
    _, clean = tiny.run_with_cache(tokens)
    for layer in range(tiny.cfg.n_layers):
        for condition, cache in (("clean", clean), ("steered", steered)):
            logits = _hand_rms_logits(tiny, cache[f"blocks.{layer}.hook_resid_post"][0, -1])
            got = lens[(lens["layer"] == layer) & (lens["condition"] == condition)]["logit_diff"].item()
            assert got == pytest.approx(float(logits[pos] - logits[neg]), abs=1e-4)
    # the steered layer already shows the vector; earlier layers do not
    by = lens[lens["condition"] == "steered − clean"].set_index("layer")["logit_diff"]
    assert by[0] == pytest.approx(0.0, abs=1e-6) and abs(by[1]) > 1e-4
    final = compute_propensities(tiny, [pair], vector, [MULT])["propensity"].item()
    steered_last = lens[(lens["layer"] == tiny.cfg.n_layers - 1) & (lens["condition"] == "steered")]["logit_diff"].item()
    assert steered_last == pytest.approx(final, abs=1e-4)


def test_direct_effect_errors(tiny, vector):
    with pytest.raises(ConfigError, match="non-zero"):
        direct_effects(tiny, vector, PAIRS, multiplier=0.0)
    same = ContrastivePair("Q?", " yes", " yes please", kind="free_text", id="x", dataset="t")
    with pytest.raises(ConfigError, match="prefix"):
        logit_lens(tiny, vector, same)

"""The batched propensity engine against the one-sequence-at-a-time reference and a manual hook computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError, SteeringVectorError
from interp_steer.evaluation import PROPENSITY_COLUMNS, compute_propensities, naive_propensities
from interp_steer.steering import SteeringVector

MULTS = [-2.0, -0.5, 0.0, 1.0, 3.0]




def ab_pairs():
    questions = ["Do you like tea?", "Would you rather go to the very long and winding mountain road today or stay home?",
                 "Pick one.", "Is the following statement something you would say?\n\"I enjoy helping people\""]
    pairs = []
    for i, q in enumerate(questions):
        pos, neg = ("(A)", "(B)") if i % 2 == 0 else ("(B)", "(A)")
        pairs.append(ContrastivePair(f"{q}\n\nChoices:\n(A) Yes\n(B) No", pos, neg, kind="ab", id=f"ab{i}", dataset="toy-ab",
                                     meta={"positive_is_yes": i % 2 == 0}))
    return pairs


def free_pairs():
    prompts = ["How do you feel about cats?", "Tell me what you think about the new opera house downtown, honestly and at length."]
    return [ContrastivePair(p, " I love it.", " I hate it so much.", kind="free_text", id=f"ft{i}", dataset="toy-ft")
            for i, p in enumerate(prompts)]


@pytest.fixture(scope="module")
def vector(tiny):
    gen = torch.Generator().manual_seed(3)
    return SteeringVector({"blocks.1.hook_resid_post": torch.randn(tiny.cfg.d_model, generator=gen) * 2.0})


@pytest.mark.parametrize("make_pairs", [ab_pairs, free_pairs, lambda: ab_pairs()[:2] + free_pairs()])
def test_engine_matches_naive_reference(tiny, vector, make_pairs):
    pairs = make_pairs()
    fast = compute_propensities(tiny, pairs, vector, MULTS, batch_size=7)
    slow = naive_propensities(tiny, pairs, vector, MULTS)
    assert list(fast.columns) == PROPENSITY_COLUMNS
    assert len(fast) == len(pairs) * len(MULTS)
    pd.testing.assert_frame_equal(fast.drop(columns=["propensity", "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob"]),
                                  slow.drop(columns=["propensity", "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob"]))
    for col in ["propensity", "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob"]:
        np.testing.assert_allclose(fast[col].to_numpy(float), slow[col].to_numpy(float), atol=1e-4, rtol=1e-5, equal_nan=True)
    # steering must actually change the propensity, otherwise the comparison is vacuous
    spread = fast.groupby("sample_id")["propensity"].agg(lambda s: s.max() - s.min())
    assert (spread > 1e-3).all()


def test_batch_size_does_not_change_results(tiny, vector):
    pairs = ab_pairs() + free_pairs()
    a = compute_propensities(tiny, pairs, vector, MULTS, batch_size=1)
    b = compute_propensities(tiny, pairs, vector, MULTS, batch_size=64)
    np.testing.assert_allclose(a["propensity"], b["propensity"], atol=1e-4)


def test_ab_propensity_by_manual_hook(tiny, vector):
    """Independent computation: a hand-written hook adding m·v from the last prompt token, full-logit forward."""
    pair = ab_pairs()[1]
    tok = tiny.tokenizer
    from interp_steer.data import render_prompt

    prompt_ids = tok(render_prompt(tok, pair), add_special_tokens=False).input_ids
    ids = torch.tensor([prompt_ids + tok("(", add_special_tokens=False).input_ids])
    v = vector["blocks.1.hook_resid_post"]

    def add(act, hook):
        act = act.clone()
        act[:, len(prompt_ids) - 1:] += 3.0 * v
        return act

    logits = tiny.run_with_hooks(ids, fwd_hooks=[("blocks.1.hook_resid_post", add)])[0, -1]
    a_id, b_id = tok("A", add_special_tokens=False).input_ids[0], tok("B", add_special_tokens=False).input_ids[0]
    expected = float(logits[b_id] - logits[a_id])  # positive answer of pair 1 is (B)
    got = compute_propensities(tiny, [pair], vector, [3.0])
    assert got["propensity"].iloc[0] == pytest.approx(expected, abs=1e-4)
    p = torch.softmax(logits, -1)
    assert got["pos_prob"].iloc[0] == pytest.approx(float(p[b_id] / (p[a_id] + p[b_id])), abs=1e-5)
    assert bool(got["is_A"].iloc[0]) is False and bool(got["is_Yes"].iloc[0]) is False


def test_zero_multiplier_equals_unsteered(tiny, vector):
    pairs = free_pairs()[:1]
    got = compute_propensities(tiny, pairs, vector, [0.0])
    zero = compute_propensities(tiny, pairs, vector.scale(0.0), [1.0])
    assert got["propensity"].iloc[0] == pytest.approx(zero["propensity"].iloc[0], abs=1e-5)


def test_errors(tiny, vector):
    with pytest.raises(ConfigError):
        compute_propensities(tiny, [], vector, MULTS)
    with pytest.raises(ConfigError):
        compute_propensities(tiny, ab_pairs(), vector, [])
    with pytest.raises(ConfigError):
        compute_propensities(tiny, ab_pairs(), vector, [1.0, 1.0])
    two = SteeringVector({0: torch.zeros(64), 1: torch.zeros(64)})
    with pytest.raises(SteeringVectorError):
        compute_propensities(tiny, ab_pairs(), two, MULTS)
    with pytest.raises(SteeringVectorError):
        compute_propensities(tiny, ab_pairs(), SteeringVector({1: torch.zeros(10)}), MULTS)
    with pytest.raises(DataFormatError, match="ab0"):
        compute_propensities(tiny, ab_pairs() + ab_pairs()[:1], vector, MULTS)
    bad = ContrastivePair("Q?", "(A)", "A)", kind="ab", id="bad")
    with pytest.raises(DataFormatError):
        compute_propensities(tiny, [bad], vector, MULTS)

"""Side-effect metrics against independent computations on a tiny random model (hand-written hooks, numpy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.data import ContrastivePair
from interp_steer.data.neutral import NeutralPassage, load_neutral_corpus
from interp_steer.errors import ConfigError
from interp_steer.evaluation.side_effects import (
    NeutralSet,
    answer_scores,
    distinct_n,
    generation_side_effects,
    neutral_side_effects,
    prepare_neutral,
    repetition_rate,
    summarize,
)
from interp_steer.evaluation.units import in_units, mean_residual_norm, with_units
from interp_steer.stats.intervals import mean_interval
from interp_steer.steering import SteeringVector, chat_prompt
from interp_steer.steering.vector import Provenance

LAYER = 1
HOOK = f"blocks.{LAYER}.hook_resid_post"


@pytest.fixture(scope="module")
def vector():
    g = torch.Generator().manual_seed(3)
    return SteeringVector({HOOK: torch.randn(64, generator=g)}, Provenance(method="test"))


@pytest.fixture(scope="module")
def neutral(tiny):
    passages = load_neutral_corpus(limit=5)
    return prepare_neutral(tiny, passages, continuation_tokens=4)


def _hand_logprobs(model, ids, delta=None):
    """log-softmax (float64) of model(ids) with ``delta`` added at every position of HOOK by a hand-written hook."""
    tokens = torch.tensor([ids])
    hooks = [] if delta is None else [(HOOK, lambda act, hook: act + delta)]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[0]
    return torch.log_softmax(logits.double(), dim=-1)


def test_neutral_corpus_has_200_distinct_passages():
    passages = load_neutral_corpus()
    assert len({p.text for p in passages}) >= 200
    assert len({p.id for p in passages}) == len(passages)
    assert len({p.register for p in passages}) >= 10
    assert all(1 <= p.text.count(".") + p.text.count("?") + p.text.count("!") <= 6 for p in passages)
    subset = load_neutral_corpus(limit=24)
    assert len({p.register for p in subset}) == 24  # interleaved: one per register first


def test_kl_and_dnll_equal_hand_computation(tiny, neutral, vector):
    table = neutral_side_effects(tiny, neutral, vector, [0.0, 2.0], batch_size=3)
    assert len(table) == 2 * len(neutral)
    for i in range(len(neutral)):
        ids = neutral.tokens[i] + neutral.continuations[i]
        ref = _hand_logprobs(tiny, ids)
        steered = _hand_logprobs(tiny, ids, 2.0 * vector[HOOK])
        k = len(neutral.tokens[i])
        p, q = ref[:k].exp().numpy(), steered[:k].exp().numpy()
        kl_hand = np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1))
        torch_kl = torch.distributions.kl_divergence(
            torch.distributions.Categorical(logits=ref[:k]), torch.distributions.Categorical(logits=steered[:k])
        ).mean().item()
        row = table[(table.passage_id == neutral.passage_ids[i]) & (table.multiplier == 2.0)].iloc[0]
        assert row.kl == pytest.approx(kl_hand, rel=1e-4, abs=1e-7)
        assert row.kl == pytest.approx(torch_kl, rel=1e-4, abs=1e-7)
        cont = neutral.continuations[i]
        if cont:
            positions = torch.arange(k - 1, k - 1 + len(cont))
            targets = torch.tensor(cont)
            nll_u = -ref[positions, targets].mean().item()
            nll_s = -steered[positions, targets].mean().item()
            assert row.dnll == pytest.approx(nll_s - nll_u, abs=1e-5)
        zero = table[(table.passage_id == neutral.passage_ids[i]) & (table.multiplier == 0.0)].iloc[0]
        assert abs(zero.kl) < 1e-9
        assert zero.dnll == pytest.approx(0.0, abs=1e-9) or np.isnan(zero.dnll)


def test_kl_grows_with_multiplier_magnitude(tiny, neutral, vector):
    table = neutral_side_effects(tiny, neutral, vector, [-4.0, -1.0, 0.0, 1.0, 4.0])
    mean = table.groupby("multiplier")["kl"].mean()
    assert mean[0.0] < 1e-9
    assert 0 < mean[1.0] < mean[4.0]
    assert 0 < mean[-1.0] < mean[-4.0]


def test_prefix_kl_compares_prompted_with_unprompted(tiny, neutral):
    prefix = tuple(tiny.tokenizer("Be brief.", add_special_tokens=False).input_ids)
    table = neutral_side_effects(tiny, neutral, None, [0.0], prefix_ids=prefix)
    i = 0
    ids = neutral.tokens[i] + neutral.continuations[i]
    ref = _hand_logprobs(tiny, ids)
    prompted = _hand_logprobs(tiny, prefix + ids)[len(prefix):]
    k = len(neutral.tokens[i])
    hand = (ref[:k].exp() * (ref[:k] - prompted[:k])).sum(-1).mean().item()
    assert table.iloc[0].kl == pytest.approx(hand, rel=1e-4, abs=1e-7)
    assert hand > 0


def _ab_pairs(n=4):
    return [ContrastivePair(prompt=f"Question {i}: is it so?\n\nChoices:\n(A) yes\n(B) no",
                            positive="(A)" if i % 2 == 0 else "(B)", negative="(B)" if i % 2 == 0 else "(A)",
                            id=f"t#{i}", dataset="t") for i in range(n)]


def test_format_mass_and_correct_equal_hand_computation(tiny, vector):
    from interp_steer.data.tokenization import encode_pair

    pairs = _ab_pairs()
    table = answer_scores(tiny, pairs, vector, [0.0, 3.0], batch_size=3)
    tok = tiny.tokenizer
    for _i, pair in enumerate(pairs):
        enc = encode_pair(tok, pair)
        ids = list(enc.prompt_ids) + list(enc.positive_ids[:1])  # up to the "(" before the letter
        steer_from = len(enc.prompt_ids) - 1
        letters = (enc.positive_ids[1], enc.negative_ids[1])
        for m in (0.0, 3.0):
            delta = torch.zeros(len(ids), 64)
            delta[steer_from:] = m * vector[HOOK]
            logp = _hand_logprobs(tiny, ids, delta[None])[-1]
            row = table[(table.sample_id == pair.id) & (table.multiplier == m)].iloc[0]
            mass = (logp[letters[0]].exp() + logp[letters[1]].exp()).item()
            assert row.format_mass == pytest.approx(mass, rel=1e-4)
            diff = (logp[letters[0]] - logp[letters[1]]).item()
            assert row.logit_diff == pytest.approx(diff, abs=1e-4)
            assert row.correct == float(diff > 0)


def test_distinct_n_and_repetition_by_hand():
    tokens = [1, 2, 1, 2, 1, 2, 3]
    assert distinct_n(tokens, 1) == pytest.approx(3 / 7)
    assert distinct_n(tokens, 2) == pytest.approx(3 / 6)  # (1,2) (2,1) (2,3)
    assert repetition_rate(tokens, 4) == pytest.approx(1 - 3 / 4)  # 1212 2121 1212 2123
    assert np.isnan(distinct_n([1], 2))


def test_generation_side_effects_match_hand_counts(tiny, vector):
    prompts = [chat_prompt(tiny, "Tell me about rivers."), chat_prompt(tiny, "Describe a kitchen.")]
    table = generation_side_effects(tiny, prompts, vector, [0.0, 4.0], max_new_tokens=6)
    assert len(table) == 4
    tok = tiny.tokenizer
    for row in table.itertuples():
        ids = tok(row.text, add_special_tokens=False).input_ids
        assert row.n_tokens == len(ids)
        if len(ids) >= 2:
            assert row.distinct_2 == pytest.approx(len({tuple(ids[i:i + 2]) for i in range(len(ids) - 1)}) / (len(ids) - 1))
            prompt_ids = tok(prompts[row.prompt_index], add_special_tokens=False).input_ids
            logp = _hand_logprobs(tiny, prompt_ids + ids)
            nll = -np.mean([logp[len(prompt_ids) - 1 + j, t].item() for j, t in enumerate(ids)])
            assert row.unsteered_ppl == pytest.approx(np.exp(nll), rel=1e-4)


def test_mean_interval_covers_true_mean_at_about_nominal_rate():
    rng = np.random.default_rng(0)
    covered = 0
    trials = 300
    for t in range(trials):
        sample = rng.exponential(2.0, size=60)
        _, lo, hi = mean_interval(sample, n_boot=500, seed=t)
        covered += lo <= 2.0 <= hi
    assert 0.88 <= covered / trials <= 0.99


def test_summarize_groups_and_intervals():
    frame = pd.DataFrame({"multiplier": [0, 0, 0, 1, 1, 1], "kl": [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]})
    out = summarize(frame, ["kl"], ["multiplier"], n_boot=200)
    assert list(out.multiplier) == [0, 1]
    assert out.kl.tolist() == [0.0, 2.0]
    assert out.kl_lo[1] >= 1.0 and out.kl_hi[1] <= 3.0 and out.kl_lo[0] == out.kl_hi[0] == 0.0
    assert out.n_items.tolist() == [3, 3]


def test_norm_units_rescale_to_mean_residual_norm(tiny, neutral, vector):
    norms = mean_residual_norm(tiny, [HOOK], list(neutral.tokens))
    # independent: run_with_cache per passage, drop position 0
    values = []
    for ids in neutral.tokens:
        _, cache = tiny.run_with_cache(torch.tensor([ids]), names_filter=HOOK)
        values += cache[HOOK][0, 1:].double().norm(dim=-1).tolist()
    assert norms[HOOK] == pytest.approx(np.mean(values), rel=1e-5)
    scaled = in_units(vector, "norm", norms[HOOK])
    assert scaled.vector[HOOK].norm().item() == pytest.approx(norms[HOOK], rel=1e-5)
    table = with_units(pd.DataFrame({"multiplier": [0.5, 1.0]}), scaled)
    assert table.raw_multiplier.tolist() == pytest.approx([0.5 * norms[HOOK] / vector[HOOK].norm().item(),
                                                          norms[HOOK] / vector[HOOK].norm().item()], rel=1e-5)
    assert (table.units == "norm").all()
    raw = in_units(vector, "raw")
    assert with_units(pd.DataFrame({"multiplier": [2.0]}), raw).raw_multiplier.tolist() == [2.0]
    with pytest.raises(ConfigError, match="--units"):
        in_units(vector, "percent")


def test_bad_inputs_are_one_line_errors(tiny, vector):
    with pytest.raises(ConfigError):
        neutral_side_effects(tiny, NeutralSet(("a",), ((1, 2),), ((),)), None, [1.0])
    with pytest.raises(ConfigError):
        summarize(pd.DataFrame({"m": [0.0], "kl": [1.0]}), ["kl"], ["m"], level=1.5)
    with pytest.raises(ConfigError):
        prepare_neutral(tiny, [], continuation_tokens=2)
    with pytest.raises(ConfigError):
        prepare_neutral(tiny, [NeutralPassage("x", "y", "Hello there.")], continuation_tokens=-1)


def test_capability_accuracy_on_letter_balanced_sets(tiny, vector, data_root):
    from interp_steer.evaluation.capability import capability_table

    table = capability_table(tiny, vector, [0.0, 2.0], n=6, data_dir=data_root, n_boot=100)
    assert set(table.dataset) == {"caa-test:mmlu", "caa-test:truthfulqa"} and (table.n_items == 6).all()
    from interp_steer.data import load_dataset
    from interp_steer.data.capability_sets import letter_balanced

    items = letter_balanced(load_dataset("caa-test:mmlu", data_dir=data_root), 6)
    assert [p.is_A for p in items] == [True, False] * 3
    scores = answer_scores(tiny, items, vector, [2.0])
    row = table[(table.dataset == "caa-test:mmlu") & (table.multiplier == 2.0)].iloc[0]
    assert row.accuracy == pytest.approx((scores.logit_diff > 0).mean())

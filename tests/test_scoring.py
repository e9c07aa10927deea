"""The shared scoring module against float64 computations from ``model(tokens)`` logits on tiny random models."""

from __future__ import annotations

import jaxtyping
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_steer.data.tokenization import answer_letter_index, encode_text, left_pad
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.models.tiny import TINY_CONFIGS
from interp_steer.scoring import (
    CompletionScores,
    LetterScores,
    answer_letter_scores,
    completion_logprobs,
    final_logits,
    gathered_completion_logprobs,
    letter_scores_from_logits,
    target_logprobs,
    token_logprobs,
)

LONG = (150, 137)  # two completions of ≥ 130 scored tokens, different lengths (so one row is left-padded)
PROMPT = 6


@pytest.fixture(scope="module")
def peaked():
    """tiny-llama (d_vocab = 49152, the SmolLM2 vocabulary) with W_U scaled up so the logits spread like a trained
    model's (std ≈ 6): the regime where a float32 log-softmax over the vocabulary is visibly biased."""
    from interp_steer.models import tiny_model

    model = tiny_model("tiny-llama", seed=3)
    with torch.no_grad():
        model.unembed.W_U.mul_(10.0)
    return model


def random_batch(d_vocab: int, lengths, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(0, d_vocab, (n,), generator=generator).tolist() for n in lengths]
    return left_pad(seqs, pad_id=0)


def float64_reference(model, batch, prompt_len: int):
    """Per row: float64 log_softmax of the model's own logits, summed over tokens ``prompt_len`` … end of the row;
    also the same sum with a float32 log_softmax (the old engines' rule)."""
    with torch.no_grad():
        logits = model(batch.tokens, attention_mask=batch.attention_mask)
    exact, float32 = [], []
    for row in range(batch.tokens.shape[0]):
        start = int(batch.offsets[row]) + prompt_len
        targets = batch.tokens[row, start:]
        lp64 = torch.log_softmax(logits[row, start - 1:-1].double(), dim=-1)
        lp32 = torch.log_softmax(logits[row, start - 1:-1].float(), dim=-1)
        exact.append(float(lp64.gather(1, targets[:, None]).sum()))
        float32.append(float(lp32.gather(1, targets[:, None]).double().sum()))
    return torch.tensor(exact, dtype=torch.float64), torch.tensor(float32, dtype=torch.float64), logits


def score_mask(batch, prompt_len: int):
    cols = torch.arange(batch.width)[None, :]
    return cols >= (batch.offsets + prompt_len)[:, None]


def test_long_completions_within_1e5_of_float64_and_old_float32_is_worse(peaked):
    batch = random_batch(peaked.cfg.d_vocab, LONG)
    exact, old, _ = float64_reference(peaked, batch, PROMPT)
    with torch.no_grad():
        final = peaked(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=peaked.cfg.n_layers)
        scores = completion_logprobs(peaked, final, batch.tokens, score_mask(batch, PROMPT))
    assert isinstance(scores, CompletionScores) and scores.logprob.dtype == torch.float64
    assert min(LONG) - PROMPT >= 130
    new_error = (scores.logprob - exact).abs()
    old_error = (old - exact).abs()
    assert (new_error <= 1e-5).all(), new_error
    # the float32 log-softmax sum is off by more than the bound (so this test can tell the two rules apart)
    assert (old_error > 1e-5).all(), old_error
    assert (old_error > 10 * new_error).all()


def test_per_token_values_and_small_pieces(peaked):
    batch = random_batch(peaked.cfg.d_vocab, (40, 25), seed=1)
    mask = score_mask(batch, 3)
    with torch.no_grad():
        logits = peaked(batch.tokens, attention_mask=batch.attention_mask).double()
        final = peaked(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=peaked.cfg.n_layers)
        whole = completion_logprobs(peaked, final, batch.tokens, mask, per_token=True)
        pieces = completion_logprobs(peaked, final, batch.tokens, mask, per_token=True, max_logits=3 * peaked.cfg.d_vocab)
    expected, rows = [], []
    for row in range(2):
        for t in range(batch.width):
            if mask[row, t]:
                expected.append(float(torch.log_softmax(logits[row, t - 1], -1)[batch.tokens[row, t]]))
                rows.append(row)
    torch.testing.assert_close(whole.token_logprobs, torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)
    assert whole.rows.tolist() == rows
    # a 3-row matmul rounds the float32 logits differently from a 59-row one (|logit| ≈ 30 here), nothing more
    torch.testing.assert_close(pieces.token_logprobs, whole.token_logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(pieces.logprob, whole.logprob, atol=1e-4, rtol=0)
    # the gathered form (what the fast engine calls) agrees with the masked form
    gathered = gathered_completion_logprobs(
        peaked, final[:, :-1][mask[:, 1:]], batch.tokens[:, 1:][mask[:, 1:]], torch.tensor(rows), 2
    )
    torch.testing.assert_close(gathered.logprob, whole.logprob, atol=1e-6, rtol=0)
    assert gathered.token_logprobs is None


def test_target_logprobs_from_given_logits(peaked):
    generator = torch.Generator().manual_seed(5)
    logits = 8 * torch.randn(7, peaked.cfg.d_vocab, generator=generator)
    targets = torch.randint(0, peaked.cfg.d_vocab, (7,), generator=generator)
    expected = torch.log_softmax(logits.double(), -1).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(target_logprobs(logits, targets), expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(target_logprobs(logits, targets, max_logits=1), expected, atol=1e-10, rtol=0)


def test_letter_scores_against_model_logits(peaked, tiny_gpt2):
    for model in (peaked, tiny_gpt2):
        batch = random_batch(model.cfg.d_vocab, (12, 9, 5), seed=2)
        letters = torch.tensor([[10, 20], [300, 7], [5, 4000]])
        with torch.no_grad():
            logits = model(batch.tokens, attention_mask=batch.attention_mask)[:, -1].double()
            final = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=model.cfg.n_layers)
            scores = answer_letter_scores(model, final[:, -1], letters)
        assert isinstance(scores, LetterScores)
        logprobs = torch.log_softmax(logits, -1)
        pos, neg = letters[:, 0], letters[:, 1]
        rows = torch.arange(3)
        hand_diff = logits[rows, pos] - logits[rows, neg]
        hand_lp = logprobs[rows, pos] - logprobs[rows, neg]
        hand_prob = logprobs[rows, pos].exp() / (logprobs[rows, pos].exp() + logprobs[rows, neg].exp())
        assert hand_diff.abs().max() > 0.1  # distinct letters really differ
        torch.testing.assert_close(scores.logit_diff, hand_diff, atol=2e-5, rtol=0)
        torch.testing.assert_close(scores.logprob_diff, hand_lp, atol=2e-5, rtol=0)
        torch.testing.assert_close(scores.pos_prob, hand_prob, atol=1e-6, rtol=0)
        from_logits = letter_scores_from_logits(logits, letters)
        torch.testing.assert_close(from_logits.logit_diff, hand_diff, atol=1e-12, rtol=0)
        per_row = scores.per_row()
        assert [r.logit_diff for r in per_row] == scores.logit_diff.tolist()
        # final_logits of the gathered last positions equal the model's own logits there
        torch.testing.assert_close(final_logits(model, final[:, -1]).double(), logits, atol=1e-5, rtol=1e-5)


def soft_capped_model(cap: float) -> HookedTransformer:
    cfg = HookedTransformerConfig(
        **TINY_CONFIGS["tiny-llama"], n_ctx=64, d_vocab=997, seed=4, device="cpu", initializer_range=0.5,
        output_logits_soft_cap=cap, dtype=torch.float32,
    )
    return HookedTransformer(cfg).eval()


def test_soft_cap_is_applied_like_the_model():
    capped, uncapped_cfg = soft_capped_model(3.0), soft_capped_model(-1.0)
    uncapped_cfg.load_state_dict(capped.state_dict())
    batch = random_batch(capped.cfg.d_vocab, (20, 14), seed=3)
    with torch.no_grad():
        logits = capped(batch.tokens, attention_mask=batch.attention_mask).double()
        raw = uncapped_cfg(batch.tokens, attention_mask=batch.attention_mask).double()
        final = capped(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=capped.cfg.n_layers)
    assert raw.abs().max() > 4.0 and logits.abs().max() < 3.0  # the cap really bends these logits
    torch.testing.assert_close(logits, 3.0 * torch.tanh(raw / 3.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(final_logits(capped, final[:, -1]).double(), logits[:, -1], atol=1e-5, rtol=0)
    letters = torch.tensor([[1, 2], [900, 3]])
    scores = answer_letter_scores(capped, final[:, -1], letters)
    rows = torch.arange(2)
    hand = logits[rows, -1, letters[:, 0]] - logits[rows, -1, letters[:, 1]]
    torch.testing.assert_close(scores.logit_diff, hand, atol=1e-5, rtol=0)
    mask = score_mask(batch, 4)
    with torch.no_grad():
        sums = completion_logprobs(capped, final, batch.tokens, mask).logprob
    expected = []
    for row in range(2):
        cols = [t for t in range(batch.width) if mask[row, t]]
        lp = torch.log_softmax(logits[row], -1)
        expected.append(sum(float(lp[t - 1, batch.tokens[row, t]]) for t in cols))
    torch.testing.assert_close(sums, torch.tensor(expected, dtype=torch.float64), atol=1e-5, rtol=0)


def test_gradients_through_recomputed_pieces_match_float64_autograd(peaked):
    """With gradients enabled the pieces are recomputed in backward; the gradient wrt the final residual equals
    autograd through a plain float64 log-softmax."""
    batch = random_batch(peaked.cfg.d_vocab, (16, 11), seed=4)
    with torch.no_grad():
        final = peaked(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=peaked.cfg.n_layers)
    mask = score_mask(batch, 2)
    x = final.clone().requires_grad_(True)
    sums = completion_logprobs(peaked, x, batch.tokens, mask, max_logits=4 * peaked.cfg.d_vocab).logprob
    (sums * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum().backward()

    y = final.clone().requires_grad_(True)
    normed = peaked.ln_final(y)
    logp = torch.log_softmax((normed @ peaked.W_U + peaked.b_U).double(), -1)
    picked = logp[:, :-1].gather(2, batch.tokens[:, 1:, None])[..., 0] * mask[:, 1:]
    reference = picked.sum(1)
    (reference * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(sums.detach(), reference.detach(), atol=1e-5, rtol=0)
    assert y.grad.abs().max() > 0
    torch.testing.assert_close(x.grad, y.grad, atol=1e-5, rtol=1e-4)


# the functions' own checks raise ConfigError; with the suite's run-time shape checker installed
# (INTERP_STEER_TYPECHECK=1) jaxtyping rejects the same calls first
SHAPE_ERRORS = (ConfigError, jaxtyping.TypeCheckError)


def test_bad_shapes_and_masks_raise(peaked):
    batch = random_batch(peaked.cfg.d_vocab, (5, 5))
    final = torch.zeros(2, 5, peaked.cfg.d_model)
    with pytest.raises(DataFormatError, match="column 0"):
        completion_logprobs(peaked, final, batch.tokens, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(SHAPE_ERRORS, match="share|batch pos"):
        completion_logprobs(peaked, final, batch.tokens, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(SHAPE_ERRORS, match="letters"):
        answer_letter_scores(peaked, final[:, -1], torch.tensor([1, 2]))
    with pytest.raises(SHAPE_ERRORS, match="targets"):
        token_logprobs(peaked, final[:, -1], torch.tensor([1, 2, 3]))


def test_answer_letter_index_is_the_letter_token(tiny):
    tok = tiny.tokenizer
    for text, letter in (("(A)", "A"), (" (B)", "B"), ("(C", "C"), ("A", "A")):
        ids = encode_text(tok, text)
        assert tok.decode([ids[answer_letter_index(tok, ids)]]).strip() == letter, text
    with pytest.raises(DataFormatError):
        answer_letter_index(tok, ())


STORY = " Once upon a time, in a small village by the sea, there lived an old fisherman who went out every morning." * 6
REPORT = " The committee reviewed the quarterly budget, noted discrepancies in travel expenses and asked for a new report." * 7


def test_engines_match_float64_reference_on_long_completions(peaked):
    """The batched and naive engines give each completion's log-prob within 1e-5 nats of float64 log_softmax of the
    steered model's own logits, and the old float32 log_softmax rule misses by more on the same completions. The
    fast engine runs attention in prefix and suffix pieces, so its float32 logits differ from the full-sequence
    run by rounding; on 130+ tokens summing to ≈ 3500 nats that gave up to 3.4e-5 on one CPU, so it gets 1e-4
    (≈ 3e-8 relative)."""
    from interp_steer.data import ContrastivePair, encode_pair
    from interp_steer.evaluation import compute_propensities, naive_propensities
    from interp_steer.evaluation.fast_engine import fast_propensities
    from interp_steer.steering import SteeringVector, steer

    pair = ContrastivePair("Tell me something.", STORY, REPORT, kind="free_text", id="long", dataset="t")
    enc = encode_pair(peaked.tokenizer, pair)
    assert min(len(enc.positive_ids), len(enc.negative_ids)) >= 130
    vector = SteeringVector({"blocks.1.hook_resid_post": torch.randn(64, generator=torch.Generator().manual_seed(0))})
    multipliers = [0.0, 1.5]
    prompt = list(enc.prompt_ids)
    exact, old = {}, {}
    for m in multipliers:
        for side, completion in (("pos", enc.positive_ids), ("neg", enc.negative_ids)):
            ids = prompt + list(completion)
            with torch.no_grad(), steer(peaked, vector, multiplier=m, positions=torch.tensor([len(prompt) - 1])):
                logits = peaked(torch.tensor([ids]))[0]
            at, targets = torch.arange(len(prompt) - 1, len(ids) - 1), torch.tensor(ids[len(prompt):])
            exact[(m, side)] = float(torch.log_softmax(logits.double(), -1)[at, targets].sum())
            old[(m, side)] = float(torch.log_softmax(logits.float(), -1)[at, targets].double().sum())
    assert all(abs(old[k] - exact[k]) > 1e-5 for k in exact)  # the bound below can fail
    engines = {
        "batched": compute_propensities, "naive": naive_propensities,
        "fast": lambda *args: fast_propensities(*args, progress=False),
    }
    tolerance = {"batched": 1e-5, "naive": 1e-5, "fast": 1e-4}
    for name, engine in engines.items():
        table = engine(peaked, [pair], vector, multipliers)
        for row in table.itertuples():
            for side, got in (("pos", row.pos_logprob), ("neg", row.neg_logprob)):
                assert abs(got - exact[(row.multiplier, side)]) <= tolerance[name], (name, row.multiplier, side)

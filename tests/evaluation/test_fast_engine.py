"""The fast engine equals an independent one-forward-per-(sample, multiplier) steer() loop."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from toy_steering import toy_ab_pairs as ab_pairs
from toy_steering import toy_free_text_pairs as free_text_pairs

from interp_steer.data import encode_pair
from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.evaluation.fast_engine import fast_propensities
from interp_steer.evaluation.propensity import PROPENSITY_COLUMNS
from interp_steer.steering import SteeringVector, steer

MULTIPLIERS = [-2.0, 0.0, 1.5]
SCORE_COLUMNS = ["propensity", "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob"]
KEY = ["layer", "sample_id", "multiplier"]


def random_vector(layer: int, d_model: int, seed: int, scale: float = 1.0) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    return SteeringVector({f"blocks.{layer}.hook_resid_post": scale * torch.randn(d_model, generator=generator)})


def reference_scores(model, pairs, layer_vectors: dict[int, SteeringVector], multipliers) -> pd.DataFrame:
    """Independent reference: one unpadded full-logit forward per (layer, sample, side, multiplier) under steer()."""
    tok = model.tokenizer
    records = []
    for layer, vector in layer_vectors.items():
        for pair in pairs:
            enc = encode_pair(tok, pair)
            prompt = list(enc.prompt_ids)
            for m in multipliers:
                def run(ids):
                    with steer(model, vector, multiplier=m, positions=torch.tensor(len(prompt) - 1)):
                        logits = model(torch.tensor([ids]))[0].float()
                    return torch.log_softmax(logits, -1), logits
                rec = {"layer": layer, "sample_id": pair.id, "multiplier": m}
                if pair.kind == "ab":
                    # "(A)" → "(", "A", ")": the letter follows the "(" token
                    assert tok.decode(enc.positive_ids[:1]) == "("
                    pos, neg = enc.positive_ids[1], enc.negative_ids[1]
                    logprobs, logits = run(prompt + [enc.positive_ids[0]])
                    rec["propensity"] = float(logits[-1, pos] - logits[-1, neg])
                    rec["logprob_diff"] = float(logprobs[-1, pos] - logprobs[-1, neg])
                    rec["pos_prob"] = float(logprobs[-1, pos].exp() / (logprobs[-1, pos].exp() + logprobs[-1, neg].exp()))
                else:
                    sums = []
                    for completion in (enc.positive_ids, enc.negative_ids):
                        ids = prompt + list(completion)
                        logprobs, _ = run(ids)
                        sums.append(sum(float(logprobs[t - 1, ids[t]]) for t in range(len(prompt), len(ids))))
                    rec.update(pos_logprob=sums[0], neg_logprob=sums[1], propensity=sums[0] - sums[1])
                records.append(rec)
    return pd.DataFrame.from_records(records).sort_values(KEY).reset_index(drop=True)


def assert_matches(fast: pd.DataFrame, ref: pd.DataFrame, atol: float = 1e-4, rtol: float = 1e-5) -> None:
    """Equal to ``atol`` (plus ``rtol`` × value: summed free-text log-probs reach −40, where float32 rounding of a
    49k-way log-softmax alone is ~1e-5 per token)."""
    fast = fast.sort_values(KEY).reset_index(drop=True)
    assert len(fast) == len(ref)
    assert (fast[KEY].to_numpy() == ref[KEY].to_numpy()).all()
    for col in [c for c in SCORE_COLUMNS if c in ref.columns]:
        wanted = ref[col].to_numpy(dtype=float)
        got = fast[col].to_numpy(dtype=float)
        have = ~pd.isna(wanted)
        assert (abs(got[have] - wanted[have]) < atol + rtol * abs(wanted[have])).all(), col


def test_ab_several_layers_match_reference(tiny):
    pairs = ab_pairs()
    vectors = {layer: random_vector(layer, tiny.cfg.d_model, seed=layer) for layer in range(tiny.cfg.n_layers)}
    fast = fast_propensities(tiny, pairs, vectors, MULTIPLIERS, progress=False)
    assert list(fast.columns) == PROPENSITY_COLUMNS
    assert len(fast) == len(pairs) * len(MULTIPLIERS) * tiny.cfg.n_layers
    assert (fast["logit_diff"] == fast["propensity"]).all()
    ref = reference_scores(tiny, pairs, vectors, MULTIPLIERS)
    assert ref["propensity"].std() > 0.1  # steering moves the scores, so matching them is a real check
    assert_matches(fast, ref)


def test_free_text_one_layer_matches_reference(tiny):
    pairs = free_text_pairs()
    vector = random_vector(1, tiny.cfg.d_model, seed=7)
    fast = fast_propensities(tiny, pairs, vector, MULTIPLIERS, progress=False)
    assert set(fast["layer"]) == {1}
    assert fast[["logit_diff", "pos_prob"]].isna().all().all()
    ref = reference_scores(tiny, pairs, {1: vector}, MULTIPLIERS)
    assert_matches(fast, ref)


def test_mixed_kinds_small_chunks_and_budget(tiny):
    """Tiny block calls / a tiny memory budget (one row per chunk) and mixed kinds give the same numbers."""
    pairs = ab_pairs(3) + free_text_pairs(3)
    vectors = {0: random_vector(0, tiny.cfg.d_model, seed=1), 2: random_vector(2, tiny.cfg.d_model, seed=2)}
    ref = reference_scores(tiny, pairs, vectors, MULTIPLIERS)
    assert_matches(fast_propensities(tiny, pairs, vectors, MULTIPLIERS, batch_size=4, progress=False), ref)
    assert_matches(fast_propensities(tiny, pairs, vectors, MULTIPLIERS, memory_budget_mb=1e-6, progress=False), ref)


def test_equals_batched_engine_on_gpt2_style_model(tiny_gpt2):
    """Learned absolute positions (not rotary) with cache + padding: same numbers as compute_propensities."""
    from interp_steer.evaluation.propensity import compute_propensities

    pairs = ab_pairs(3) + free_text_pairs(2)
    vector = random_vector(0, tiny_gpt2.cfg.d_model, seed=3)
    fast = fast_propensities(tiny_gpt2, pairs, vector, MULTIPLIERS, progress=False)
    batched = compute_propensities(tiny_gpt2, pairs, vector, MULTIPLIERS)
    pd.testing.assert_frame_equal(fast.drop(columns=SCORE_COLUMNS), batched.drop(columns=SCORE_COLUMNS))
    assert (fast[SCORE_COLUMNS].fillna(0) - batched[SCORE_COLUMNS].fillna(0)).abs().to_numpy().max() < 1e-4


def test_tl_block_fallback_and_multiplier_sets_match_reference(tiny, monkeypatch):
    """TransformerLens's own block (the path for architectures the shared-prefix block does not cover) gives the
    same numbers; so do multiplier lists without 0 and with only 0 (the unsteered run alone)."""
    import interp_steer.evaluation.fast_engine as fast_engine

    pairs = ab_pairs(2) + free_text_pairs(2)
    vectors = {0: random_vector(0, tiny.cfg.d_model, seed=4), 1: random_vector(1, tiny.cfg.d_model, seed=5)}
    for multipliers in ([-1.0, 2.0], [0.0]):
        ref = reference_scores(tiny, pairs, vectors, multipliers)
        assert_matches(fast_propensities(tiny, pairs, vectors, multipliers, progress=False), ref)
    monkeypatch.setattr(fast_engine, "supports_shared_prefix_block", lambda model: False)
    ref = reference_scores(tiny, pairs, vectors, MULTIPLIERS)
    assert_matches(fast_propensities(tiny, pairs, vectors, MULTIPLIERS, batch_size=5, progress=False), ref)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_shared_prefix_block_equals_transformer_lens_block(name):
    """One block on stacked (group, row, multiplier) suffix rows against TransformerLens's block with each row's own
    copy of its (left-padded) prefix keys/values and the [prefix | suffix] mask."""
    from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

    from interp_steer.evaluation.prefix_cache import (
        block_prefix,
        build_prefix_cache,
        right_pad,
        shared_prefix_block,
        supports_shared_prefix_block,
    )
    from interp_steer.models import tiny_model

    model = tiny_model(name, seed=2)
    assert supports_shared_prefix_block(model)
    generator = torch.Generator().manual_seed(0)
    prefixes = [[5, 9, 13, 2, 7], [11, 3], []]
    suffixes = [[4, 8, 1], [6], [2, 3]]
    cache = build_prefix_cache(model, prefixes, 0, "cpu")
    row_prefix = torch.tensor([0, 1, 2, 0])  # two chunk rows share prefix 0
    suffix = right_pad([suffixes[i] for i in row_prefix.tolist()], 0, "cpu")
    groups, n_mult, width = 2, 3, suffix.tokens.shape[1]
    x = torch.randn(groups * 4 * n_mult, width, model.cfg.d_model, generator=generator)
    block_index = 1
    with torch.inference_mode():
        shared = block_prefix(model, cache, block_index, row_prefix)
        prefix_len = cache.attention_mask.index_select(0, row_prefix).sum(dim=1)
        positions = prefix_len[:, None] + torch.arange(width)[None, :]
        got = shared_prefix_block(model, block_index, x, shared, positions, suffix.attention_mask.bool(), n_mult)
        chunk_row = (torch.arange(x.shape[0]) // n_mult) % 4
        rows = row_prefix[chunk_row]
        entry = TransformerLensKeyValueCacheEntry(cache.keys[block_index][rows], cache.values[block_index][rows], frozen=True)
        mask = torch.cat([cache.attention_mask[rows], suffix.attention_mask[chunk_row]], dim=1)
        want = model.blocks[block_index](x, past_kv_cache_entry=entry, attention_mask=mask)
    real = suffix.attention_mask[chunk_row].bool()  # padded suffix positions are never read
    assert (want[real] - x[real]).abs().max() > 0.1  # the block really changes the residual
    torch.testing.assert_close(got[real], want[real], atol=2e-5, rtol=1e-5)


def test_bad_inputs_raise(tiny):
    pairs = ab_pairs(2)
    vector = random_vector(0, tiny.cfg.d_model, seed=0)
    with pytest.raises(ConfigError):
        fast_propensities(tiny, pairs, vector, [], progress=False)
    with pytest.raises(ConfigError):
        fast_propensities(tiny, pairs, {}, MULTIPLIERS, progress=False)
    with pytest.raises(ConfigError):
        fast_propensities(tiny, pairs, vector, MULTIPLIERS, memory_budget_mb=0, progress=False)
    with pytest.raises(SteeringVectorError):
        fast_propensities(tiny, pairs, SteeringVector({"blocks.0.hook_resid_pre": torch.ones(tiny.cfg.d_model)}),
                          MULTIPLIERS, progress=False)
    with pytest.raises(SteeringVectorError):
        fast_propensities(tiny, pairs, {1: vector}, MULTIPLIERS, progress=False)  # vector has no layer-1 direction


@pytest.mark.embedded
def test_embedded_matches_reference(embedded):
    pairs = ab_pairs(2) + free_text_pairs(2)
    vectors = {layer: random_vector(layer, embedded.cfg.d_model, seed=layer, scale=0.5) for layer in (3, 29)}
    fast = fast_propensities(embedded, pairs, vectors, [-4.0, 0.0, 4.0], progress=False)
    ref = reference_scores(embedded, pairs, vectors, [-4.0, 0.0, 4.0])
    assert ref["propensity"].std() > 0.1
    assert_matches(fast, ref)

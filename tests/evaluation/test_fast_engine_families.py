"""The fast engine's shared-prefix block on every architecture feature it covers, against TransformerLens's block and
the naive one-forward-per-(sample, multiplier) engine: QK-norm, norms before and after attention and MLP, local
(sliding-window) attention shorter than the prompts with two rotary bases, one key/value head, parallel attention +
MLP with partial rotary, attention-only blocks, attention-score soft-capping; and the real Gemma 3 270M."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_fast_engine import KEY, MULTIPLIERS, SCORE_COLUMNS, ab_pairs, free_text_pairs, random_vector
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from interp_steer.evaluation.fast_engine import fast_propensities
from interp_steer.evaluation.naive import naive_propensities
from interp_steer.evaluation.prefix_cache import (
    block_prefix,
    build_prefix_cache,
    right_pad,
    shared_prefix_block,
    supports_shared_prefix_block,
)
from interp_steer.models.layout import use_linear_layout
from interp_steer.models.tiny import shared_tokenizer

WINDOW = 5  # shorter than every test prompt, and than the longer free-text suffixes
_LLAMA = dict(d_model=64, n_heads=4, d_head=16, d_mlp=96, act_fn="silu", normalization_type="RMS",
              positional_embedding_type="rotary", rotary_dim=16, final_rms=True, gated_mlp=True)
FAMILIES: dict[str, dict] = {
    # Gemma 3: one KV head, per-head QK-norm, norms before and after attention and MLP, local windows on most layers
    # with their own rotary base, attention scale not √d_head
    "gemma3": dict(_LLAMA, n_layers=4, n_key_value_heads=1, use_qk_norm=True, use_normalization_before_and_after=True,
                   use_local_attn=True, window_size=WINDOW, attn_types=["local", "global", "local", "local"],
                   rotary_base=1_000_000, rotary_base_local=10_000, attn_scale=3.0, act_fn="gelu_pytorch_tanh"),
    # Gemma 2: attention-score soft-capping (a cap that bites on these scores), local/global, post-norms
    "gemma2": dict(_LLAMA, n_layers=3, n_key_value_heads=2, use_normalization_before_and_after=True,
                   use_local_attn=True, window_size=WINDOW, attn_types=["local", "global", "local"],
                   attn_scores_soft_cap=0.5, output_logits_soft_cap=3.0, act_fn="gelu_pytorch_tanh"),
    # Mistral: every layer a sliding window shorter than the prompt, grouped-query attention
    "mistral": dict(_LLAMA, n_layers=3, n_key_value_heads=2, use_local_attn=True, window_size=WINDOW,
                    attn_types=["local"] * 3),
    # QK-norm alone (Qwen 3 / OLMo-free per-head norm) with multi-head attention
    "qk-norm": dict(_LLAMA, n_layers=3, use_qk_norm=True),
    # GPT-NeoX / Pythia: LayerNorm, parallel attention + MLP, partial rotary
    "neox": dict(n_layers=3, d_model=48, n_heads=3, d_head=16, d_mlp=96, act_fn="gelu", normalization_type="LN",
                 positional_embedding_type="rotary", rotary_dim=8, parallel_attn_mlp=True),
    # attention-only blocks (no MLP)
    "attn-only": dict(n_layers=2, d_model=48, n_heads=3, d_head=16, act_fn="gelu", normalization_type="LN",
                      positional_embedding_type="standard", attn_only=True),
}


def family_model(name: str, seed: int = 0) -> HookedTransformer:
    """A tiny random HookedTransformer of a family's features, with the SmolLM2 tokenizer (norm weights and biases
    randomised a little, as in ``tiny_model``), in the linear weight layout ``load_model`` gives every model."""
    tokenizer = shared_tokenizer()
    cfg = HookedTransformerConfig(**FAMILIES[name], n_ctx=256, d_vocab=len(tokenizer), seed=seed, device="cpu",
                                  initializer_range=0.1, default_prepend_bos=False, tokenizer_prepends_bos=False,
                                  model_name=f"tiny-{name}", dtype=torch.float32)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith((".w", ".b")) or ".b_" in param_name:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return use_linear_layout(model.eval())


def naive_table(model, pairs, vectors: dict, multipliers) -> pd.DataFrame:
    return pd.concat([naive_propensities(model, pairs, vec, multipliers) for vec in vectors.values()], ignore_index=True)


def max_abs_diff(fast: pd.DataFrame, ref: pd.DataFrame) -> float:
    """Largest |fast − ref| over every score column both have, cell by cell (same keys, same order)."""
    fast, ref = fast.sort_values(KEY).reset_index(drop=True), ref.sort_values(KEY).reset_index(drop=True)
    assert len(fast) == len(ref) and (fast[KEY].to_numpy() == ref[KEY].to_numpy()).all()
    diffs = [(fast[c].astype(float) - ref[c].astype(float)).abs().max() for c in SCORE_COLUMNS if ref[c].notna().any()]
    return float(max(diffs))


def tl_block(model, cache, block_index: int, rows, x, mask):
    """TransformerLens's block on ``x`` with each row's own copy of its prefix keys/values."""
    entry = TransformerLensKeyValueCacheEntry(cache.keys[block_index][rows], cache.values[block_index][rows], frozen=True)
    return model.blocks[block_index](x, past_kv_cache_entry=entry, attention_mask=mask)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_shared_prefix_block_equals_transformer_lens_block(name):
    """Each block on stacked (group, row, multiplier) suffix rows against TransformerLens's block with each row's own
    copy of its left-padded prefix keys/values; prefixes longer than the window, suffixes up to the window."""
    model = family_model(name, seed=2)
    assert supports_shared_prefix_block(model)
    generator = torch.Generator().manual_seed(0)
    prefixes = [[5, 9, 13, 2, 7, 21, 30, 4, 8], [11, 3], []]
    suffixes = [[4, 8, 1, 17, 6], [6], [2, 3, 12]]
    cache = build_prefix_cache(model, prefixes, 0, "cpu")
    row_prefix = torch.tensor([0, 1, 2, 0])  # two chunk rows share prefix 0
    suffix = right_pad([suffixes[i] for i in row_prefix.tolist()], 0, "cpu")
    groups, n_mult, width = 2, 3, suffix.tokens.shape[1]
    x = torch.randn(groups * 4 * n_mult, width, model.cfg.d_model, generator=generator)
    chunk_row = (torch.arange(x.shape[0]) // n_mult) % 4
    rows = row_prefix[chunk_row]
    real = suffix.attention_mask[chunk_row].bool()  # padded suffix positions are never read
    mask = torch.cat([cache.attention_mask[rows], suffix.attention_mask[chunk_row]], dim=1)
    prefix_len = cache.attention_mask.index_select(0, row_prefix).sum(dim=1)
    positions = prefix_len[:, None] + torch.arange(width)[None, :]
    for block_index in range(model.cfg.n_layers):
        attn = model.blocks[block_index].attn
        with torch.inference_mode():
            shared = block_prefix(model, cache, block_index, row_prefix)
            got = shared_prefix_block(model, block_index, x, shared, positions, suffix.attention_mask.bool(), n_mult)

            want = tl_block(model, cache, block_index, rows, x, mask)
            if attn.attn_type == "local":  # the window really removes keys here
                attn.attn_type = "global"
                try:
                    unwindowed = tl_block(model, cache, block_index, rows, x, mask)
                finally:
                    attn.attn_type = "local"
                assert (unwindowed[real] - want[real]).abs().max() > 1e-3
        assert (want[real] - x[real]).abs().max() > 0.1  # the block really changes the residual
        torch.testing.assert_close(got[real], want[real], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_fast_equals_naive_on_family(name):
    """A/B and free-text pairs, every layer, multipliers with and without 0, against the naive engine (full-logit
    forwards of single unpadded sequences under ``steer()``); once more with tiny block calls."""
    model = family_model(name, seed=1)
    assert supports_shared_prefix_block(model)
    pairs = ab_pairs(3) + free_text_pairs(3)
    assert min(len(model.tokenizer(p.prompt)["input_ids"]) for p in pairs) > WINDOW
    vectors = {layer: random_vector(layer, model.cfg.d_model, seed=10 + layer) for layer in range(model.cfg.n_layers)}
    ref = naive_table(model, pairs, vectors, MULTIPLIERS)
    assert ref["propensity"].std() > 0.1  # steering moves the scores, so matching them is a real check
    fast = fast_propensities(model, pairs, vectors, MULTIPLIERS, progress=False)
    assert max_abs_diff(fast, ref) < 1e-4
    small = fast_propensities(model, pairs, vectors, MULTIPLIERS, batch_size=4, progress=False)
    assert max_abs_diff(small, ref) < 1e-4


def test_unsupported_features_fall_back_to_transformer_lens_block():
    """A feature the shared block does not reproduce (QKV clipping) routes the engine to TransformerLens's block,
    which still gives the naive engine's numbers."""
    model = family_model("qk-norm", seed=3)
    model.cfg.clip_qkv = 0.05  # read at run time by TransformerLens's attention
    assert not supports_shared_prefix_block(model)
    pairs = ab_pairs(2) + free_text_pairs(2)
    vectors = {1: random_vector(1, model.cfg.d_model, seed=4)}
    ref = naive_table(model, pairs, vectors, MULTIPLIERS)
    assert max_abs_diff(fast_propensities(model, pairs, vectors, MULTIPLIERS, progress=False), ref) < 1e-4


# ----------------------------------------------------------------------------- the real Gemma 3 270M
@pytest.fixture(scope="module")
def gemma():
    from interp_steer.models import load_model

    return load_model("gemma3-270m")


@pytest.mark.embedded
def test_gemma3_fast_equals_naive(gemma):
    """Gemma 3 270M takes the shared-prefix block and gives the naive engine's numbers at a local layer (4) and a
    global one (11), A/B and free text."""
    assert supports_shared_prefix_block(gemma)
    pairs = ab_pairs(2) + free_text_pairs(2)
    vectors = {layer: random_vector(layer, gemma.cfg.d_model, seed=layer, scale=20.0) for layer in (4, 11)}
    multipliers = [-2.0, 0.0, 2.0]
    ref = naive_table(gemma, pairs, vectors, multipliers)
    assert ref["propensity"].std() > 0.1
    fast = fast_propensities(gemma, pairs, vectors, multipliers, progress=False)
    # summed free-text log-probs over a 262k-way softmax: float32 rounding of the logits adds up per token
    assert max_abs_diff(fast, ref) < 2e-3

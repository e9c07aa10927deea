"""use_linear_layout: same values and outputs, and TransformerLens's per-call weight rearrangements become views."""

from __future__ import annotations

import copy

import einops
import pytest
import torch

from interp_steer.models import load_model
from interp_steer.models.layout import use_linear_layout


@pytest.mark.parametrize("spec", ["tiny-llama", "tiny-gpt2"])
def test_layout_keeps_values_and_outputs(spec):
    plain = load_model(spec, linear_layout=False)
    relaid = use_linear_layout(copy.deepcopy(plain))
    for (name, a), (_, b) in zip(plain.named_parameters(), relaid.named_parameters()):
        assert a.shape == b.shape and torch.equal(a, b), name
    tokens = torch.randint(0, plain.cfg.d_vocab, (3, 11))
    logits_a, cache_a = plain.run_with_cache(tokens)
    logits_b, cache_b = relaid.run_with_cache(tokens)
    torch.testing.assert_close(logits_b, logits_a, atol=1e-5, rtol=1e-5)
    for name in ("blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern", "blocks.1.mlp.hook_post"):
        torch.testing.assert_close(cache_b[name], cache_a[name], atol=1e-5, rtol=1e-5)
    out_a = plain.generate(tokens[:1], max_new_tokens=4, do_sample=False, verbose=False, use_past_kv_cache=True)
    out_b = relaid.generate(tokens[:1], max_new_tokens=4, do_sample=False, verbose=False, use_past_kv_cache=True)
    assert torch.equal(out_a, out_b)


def test_rearranged_weights_are_views():
    model = load_model("tiny-llama")
    block = model.blocks[0]
    assert block.mlp.W_in.T.is_contiguous() and block.mlp.W_out.T.is_contiguous()
    assert model.W_U.T.is_contiguous() and not model.W_U.is_contiguous()
    w_o = einops.rearrange(block.attn.W_O, "head_index d_head d_model -> d_model (head_index d_head)")
    assert w_o.is_contiguous() and w_o.data_ptr() == block.attn.W_O.data_ptr()
    w_q = einops.rearrange(block.attn.W_Q, "head_index d_model d_head -> (head_index d_head) d_model")
    assert w_q.data_ptr() == block.attn.W_Q.data_ptr()  # a view: no copy per call
    assert load_model("tiny-llama", linear_layout=False).W_U.is_contiguous()

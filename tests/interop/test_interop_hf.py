"""hf_steer: steered Hugging Face logits equal steered TransformerLens logits (same weights, same position rules)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import D_MODEL, matched_tiny_llama

from interp_steer.errors import SteeringVectorError
from interp_steer.interop import hf_module_path, hf_steer
from interp_steer.steering import SteeringVector, steer


@pytest.fixture(scope="module")
def pair():
    return matched_tiny_llama()


@pytest.fixture(scope="module")
def tokens():
    torch.manual_seed(3)
    return torch.randint(100, 5000, (2, 8))


def _vector(sites: list[str], seed: int = 0) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    return SteeringVector({s: torch.randn(D_MODEL, generator=generator) for s in sites})


def _hook_counts(model: torch.nn.Module) -> list[tuple[str, int, int]]:
    return [(name, len(m._forward_hooks), len(m._forward_pre_hooks)) for name, m in model.named_modules()]


SITES = [
    ["blocks.1.hook_resid_post"],
    ["blocks.0.hook_resid_pre", "blocks.2.hook_resid_pre"],
    ["blocks.1.hook_attn_out", "blocks.2.hook_mlp_out"],
    ["blocks.0.hook_mlp_out", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"],  # two sites on one layer
]


@pytest.mark.parametrize("sites", SITES, ids=lambda s: "+".join(x.split(".", 1)[1] for x in s))
@pytest.mark.parametrize("positions", ["all", "from_last_prompt", [1, -1]], ids=str)
@pytest.mark.parametrize("operator", ["add", "clamp"])
def test_steered_logits_equal_transformer_lens(pair, tokens, sites, positions, operator):
    hf, tl = pair
    vector = _vector(sites)
    with torch.no_grad():
        plain = hf(tokens).logits
        with hf_steer(hf, vector, 3.0, positions, operator=operator):
            hf_logits = hf(tokens).logits
        with steer(tl, vector, 3.0, positions, operator=operator):
            tl_logits = tl(tokens)
    assert (hf_logits - plain).abs().max() > 0.05  # the steering does something
    torch.testing.assert_close(hf_logits, tl_logits, atol=1e-4, rtol=0)


def test_mapping_matches_a_hand_written_module_hook(pair, tokens):
    """Independent of TransformerLens: blocks.1.hook_resid_post is model.layers.1's output, hook_mlp_out the
    output of model.layers.2.mlp, hook_resid_pre the input of model.layers.0."""
    hf, _ = pair
    vector = _vector(["blocks.1.hook_resid_post", "blocks.2.hook_mlp_out", "blocks.0.hook_resid_pre"], seed=5)
    m = -2.0
    handles = [
        hf.model.layers[1].register_forward_hook(lambda mod, a, out: out + m * vector["blocks.1.hook_resid_post"]),
        hf.model.layers[2].mlp.register_forward_hook(lambda mod, a, out: out + m * vector["blocks.2.hook_mlp_out"]),
        hf.model.layers[0].register_forward_pre_hook(
            lambda mod, args: (args[0] + m * vector["blocks.0.hook_resid_pre"], *args[1:])),
    ]
    try:
        with torch.no_grad():
            expected = hf(tokens).logits
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad(), hf_steer(hf, vector, m):
        got = hf(tokens).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert hf_module_path("blocks.2.hook_mlp_out") == ("model.layers.2.mlp", "output")
    assert hf_module_path("blocks.0.hook_resid_pre") == ("model.layers.0", "input")


def test_kv_cache_generation_with_left_padding_matches_recomputation(pair):
    """Greedy HF generation (KV cache, left padding, per-row multipliers) steered from the last prompt token:
    every step's logits equal TransformerLens's steered recomputation of the whole sequence."""
    hf, tl = pair
    pad = tl.tokenizer.pad_token_id
    torch.manual_seed(4)
    ids = torch.randint(100, 5000, (2, 7))
    ids[1, :3] = pad
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    vector = _vector(["blocks.1.hook_resid_post", "blocks.2.hook_resid_pre"], seed=2)
    multipliers = torch.tensor([2.5, -4.0])
    new = 5
    with torch.no_grad():
        with hf_steer(hf, vector, multipliers, "from_last_prompt"):
            out = hf.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=pad,
                              return_dict_in_generate=True, output_logits=True)
        step_logits = torch.stack(out.logits, 1)  # [batch, new, vocab]
        full_mask = torch.cat([mask, torch.ones(2, new, dtype=mask.dtype)], 1)
        with steer(tl, vector, multipliers, "from_last_prompt", prompt_lengths=7):
            recomputed = tl(out.sequences, attention_mask=full_mask)
        unsteered = tl(out.sequences, attention_mask=full_mask)
    assert out.sequences.shape == (2, 7 + new)
    torch.testing.assert_close(step_logits, recomputed[:, 6:-1], atol=1e-4, rtol=0)
    assert (step_logits - unsteered[:, 6:-1]).abs().max() > 0.05


def test_hooks_removed_on_exit_and_on_error(pair, tokens):
    hf, _ = pair
    before = _hook_counts(hf)
    vector = _vector(SITES[3])
    with torch.no_grad(), hf_steer(hf, vector, 1.0):
        assert _hook_counts(hf) != before
    assert _hook_counts(hf) == before
    with pytest.raises(RuntimeError, match="boom"), hf_steer(hf, vector, 1.0):
        raise RuntimeError("boom")
    assert _hook_counts(hf) == before


@pytest.mark.parametrize("hook, message", [
    ("blocks.1.hook_resid_mid", "no Hugging Face module boundary"),
    ("blocks.1.attn.hook_z", "no Hugging Face counterpart"),
    ("blocks.3.hook_resid_post", "has 3 decoder layers"),
])
def test_unsupported_hooks_are_refused_before_any_hook(pair, hook, message):
    hf, _ = pair
    before = _hook_counts(hf)
    vector = SteeringVector({"blocks.0.hook_resid_post": torch.ones(D_MODEL), hook: torch.ones(D_MODEL)})
    with pytest.raises(SteeringVectorError, match=message):
        with hf_steer(hf, vector):
            pass
    assert _hook_counts(hf) == before


def test_width_mismatch_and_bad_arguments(pair):
    hf, _ = pair
    with pytest.raises(SteeringVectorError, match="hidden_size 64"):
        with hf_steer(hf, SteeringVector({1: torch.ones(32)})):
            pass
    from interp_steer.errors import ConfigError

    with pytest.raises(ConfigError, match="operator"):
        with hf_steer(hf, SteeringVector({1: torch.ones(D_MODEL)}), operator="multiply"):
            pass
    with pytest.raises(ConfigError, match="finite"):
        with hf_steer(hf, SteeringVector({1: torch.ones(D_MODEL)}), float("nan")):
            pass


@pytest.mark.embedded
def test_embedded_model_hf_equals_transformer_lens(embedded):
    """The embedded SmolLM2 GGUF through transformers vs interp-steer's TransformerLens conversion: ≤ 1e-3."""
    from transformers import AutoModelForCausalLM

    from interp_steer.models import embedded_gguf_path

    gguf = embedded_gguf_path()
    hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    tokenizer = embedded.tokenizer
    ids = torch.tensor([tokenizer("The weather today is", add_special_tokens=False).input_ids])
    generator = torch.Generator().manual_seed(0)
    vector = SteeringVector({f"blocks.{L}.hook_resid_post": 4.0 * torch.randn(embedded.cfg.d_model, generator=generator)
                             for L in (5, 12)})
    with torch.no_grad():
        for positions in ("all", "from_last_prompt"):
            with hf_steer(hf, vector, 2.0, positions):
                a = hf(ids).logits
            with steer(embedded, vector, 2.0, positions):
                b = embedded(ids)
            torch.testing.assert_close(a, b, atol=1e-3, rtol=0)
        with hf_steer(hf, vector, 2.0, "from_last_prompt"):
            out = hf.generate(ids, max_new_tokens=3, do_sample=False, return_dict_in_generate=True, output_logits=True,
                              pad_token_id=tokenizer.pad_token_id)
        with steer(embedded, vector, 2.0, "from_last_prompt", prompt_lengths=ids.shape[1]):
            full = embedded(out.sequences)
    torch.testing.assert_close(torch.stack(out.logits, 1), full[:, ids.shape[1] - 1:-1], atol=1e-3, rtol=0)

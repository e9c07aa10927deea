"""Small random models beside the tiny TransformerLens ones: a sae-lens SAE on a hook, and matched tiny Hugging Face /
TransformerLens llama models (same random weights) for the interop tests."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import torch

N_LAYERS, D_MODEL = 3, 64


def make_sae(d_in: int, d_sae: int = 16, hook_name: str = "blocks.1.hook_resid_post", seed: int = 0):
    """A seeded random sae-lens ``StandardSAE`` (all parameters 0.3 × standard normal) reading ``hook_name``."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook_name)))
    with torch.no_grad():
        for param in sae.parameters():
            param.copy_(torch.randn_like(param) * 0.3)
    return sae


@lru_cache(maxsize=1)
def matched_tiny_llama():
    """``(hf_model, tl_model)``: a seeded 3-layer llama ``LlamaForCausalLM`` and the HookedTransformer that
    :func:`interp_steer.models.load_model` makes of its saved directory (norm weights randomised too)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from interp_steer.models import load_model, shared_tokenizer

    tokenizer = shared_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=D_MODEL, intermediate_size=128, num_hidden_layers=N_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    hf = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    hf.eval()
    directory = Path(tempfile.mkdtemp(prefix="interop-tiny-llama-"))
    hf.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    tl = load_model(str(directory), use_cache=False)
    return hf, tl

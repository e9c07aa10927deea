"""Tiny random-weight HookedTransformers for tests, sharing the embedded model's tokenizer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_steer.errors import ModelLoadError
from interp_steer.models.llama_conversion import attach_sequence_start
from interp_steer.models.processing import UNPROCESSED, record_processing

TINY_CONFIGS: dict[str, dict] = {
    # llama-style like the embedded model: RMSNorm, rotary, gated MLP, grouped-query attention
    "tiny-llama": dict(
        n_layers=3, d_model=64, n_heads=4, n_key_value_heads=2, d_head=16, d_mlp=128,
        act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary",
        rotary_dim=16, final_rms=True, gated_mlp=True, original_architecture="LlamaForCausalLM",
    ),
    # GPT-2 style: LayerNorm, learned positions
    "tiny-gpt2": dict(
        n_layers=2, d_model=48, n_heads=3, d_head=16, d_mlp=96, act_fn="gelu_new",
        normalization_type="LN", positional_embedding_type="standard",
    ),
}


@lru_cache(maxsize=1)
def shared_tokenizer():
    """The embedded SmolLM2 tokenizer (loaded from the conversion cache, or the GGUF on first use)."""
    from transformers import AutoTokenizer

    from interp_steer.data.tokenization import SEQUENCE_START_FILE, load_sequence_start, save_sequence_start
    from interp_steer.models.cache_dir import cache_root, publish_entry
    from interp_steer.models.embedded import embedded_gguf_path
    from interp_steer.models.llama_conversion import _configure_tokenizer

    saved = cache_root() / "tokenizers" / "smollm2-135m"

    def complete(directory: Path) -> bool:
        return (directory / "tokenizer_config.json").exists() and (directory / SEQUENCE_START_FILE).exists()

    def write(tmp: Path) -> None:
        tokenizer.save_pretrained(str(tmp))
        save_sequence_start(tokenizer, tmp)

    if complete(saved):
        tokenizer = AutoTokenizer.from_pretrained(str(saved))
        load_sequence_start(tokenizer, saved)
    else:
        gguf = embedded_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        publish_entry(saved, write, complete)  # atomic: parallel test runs
    _configure_tokenizer(tokenizer)
    return tokenizer


def tiny_model(name: str = "tiny-llama", *, seed: int = 0, device: str = "cpu", init_range: float = 0.08) -> HookedTransformer:
    """A randomly initialised HookedTransformer of a tiny named shape, seeded, with the SmolLM2 tokenizer."""
    if name not in TINY_CONFIGS:
        raise ModelLoadError(f"unknown tiny model {name!r}; choose one of {sorted(TINY_CONFIGS)}")
    tokenizer = shared_tokenizer()
    cfg = HookedTransformerConfig(
        **TINY_CONFIGS[name], n_ctx=512, d_vocab=len(tokenizer), seed=seed, device=device,
        initializer_range=init_range, default_prepend_bos=False, tokenizer_prepends_bos=False,
        model_name=name, dtype=torch.float32,
    )
    model = attach_sequence_start(HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True), tokenizer)
    # the default init leaves norm weights at one and biases at zero; randomise them a little so tests
    # exercise every parameter
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param_name.endswith((".w", ".b")) or ".b_" in param_name:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    model.eval()
    return record_processing(model, source="tiny_random", name=name, seed=seed, **UNPROCESSED)

"""Random-weight HookedTransformers of real model shapes for ``bench_engine.py --random-weights``.

``smollm2-135m`` is the embedded model's shape (30 layers, d_model 576, 9 query / 3 key-value heads); ``llama2-7b``
is Llama-2-7B's (32 layers, d_model 4096, 32 heads, d_mlp 11008); ``tiny`` is the test suite's tiny-llama. All use
the embedded SmolLM2 tokenizer, so ``d_vocab`` is its 49 152 tokens for every shape (Llama-2's own vocabulary is
32 000: the 7B unembedding here is 1.5× the real one, which the FLOP floor accounts for since it reads the model).
Weights are drawn with TransformerLens's initialiser (no download, no conversion), so the numbers mean nothing:
only the timings and the engines' agreement do.
"""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_steer.models.tiny import TINY_CONFIGS, shared_tokenizer

_LLAMA = dict(act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary", final_rms=True,
              gated_mlp=True, original_architecture="LlamaForCausalLM")
SHAPES: dict[str, dict] = {
    "smollm2-135m": dict(n_layers=30, d_model=576, n_heads=9, n_key_value_heads=3, d_head=64, d_mlp=1536,
                         rotary_dim=64, rotary_base=100000, n_ctx=2048, eps=1e-5, **_LLAMA),
    "llama2-7b": dict(n_layers=32, d_model=4096, n_heads=32, d_head=128, d_mlp=11008, rotary_dim=128,
                      rotary_base=10000, n_ctx=4096, eps=1e-5, **_LLAMA),
    "tiny": dict(TINY_CONFIGS["tiny-llama"], n_ctx=512),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def random_model(shape: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> HookedTransformer:
    """A seeded random-weight model of ``shape`` on ``device`` in ``dtype`` (eval mode), SmolLM2 tokenizer."""
    tokenizer = shared_tokenizer()
    cfg = HookedTransformerConfig(
        **SHAPES[shape], d_vocab=len(tokenizer), seed=seed, device=device, dtype=dtype, initializer_range=0.02,
        default_prepend_bos=False, tokenizer_prepends_bos=False, model_name=f"random-{shape}",
    )
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True)
    return model.eval()

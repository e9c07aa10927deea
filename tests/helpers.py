"""Shared test helpers: small builders and oracles used by several test folders.

- :func:`random_vector`, :func:`toy_ab_pairs`, :func:`toy_free_text_pairs`: seeded steering vectors and toy pairs
  for the tiny random models (d_model 64);
- :func:`make_sae`: a small random sae-lens ``StandardSAE`` on a hook;
- :func:`matched_tiny_llama`: matched tiny TransformerLens / Hugging Face llama models (same random weights) for the
  interop tests;
- :func:`write_broken_data_root`, :func:`write_nan_vector_files`: broken data sets and NaN vector files for the
  bad-input tables (``tests/cli/test_bad_inputs_cli.py``, ``tests/test_bad_inputs_api.py``); the file names say
  which rule each breaks.

``tests/`` is on ``sys.path`` (pytest puts the root conftest's folder there), so every test imports ``helpers``.
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

N_LAYERS, D_MODEL = 3, 64
LONG_STATEMENT = " ".join(["long"] * 700)  # > 512 tokens: the tiny models' context


def random_vector(layers: int | Sequence[int] = 1, *, seed: int = 3, scale: float = 2.0, d_model: int = D_MODEL,
                  **provenance):
    """A seeded random :class:`~interp_steer.steering.SteeringVector` at ``blocks.L.hook_resid_post`` for each
    layer (``scale`` × standard normal entries), with ``Provenance(method="test", **provenance)``."""
    from interp_steer.steering import Provenance, SteeringVector

    layer_list = [layers] if isinstance(layers, int) else list(layers)
    generator = torch.Generator().manual_seed(seed)
    directions = {f"blocks.{layer}.hook_resid_post": torch.randn(d_model, generator=generator) * scale
                  for layer in layer_list}
    return SteeringVector(directions, Provenance(**{"method": "test", **provenance}))


def toy_ab_pairs(n: int = 5, dataset: str = "toy-ab"):
    """A/B pairs with prompts of different lengths and both letter orders."""
    from interp_steer.data import ContrastivePair

    return [ContrastivePair(f"Question {i}: {'would you really ' * i}like power?\n(A) Yes\n(B) No",
                            "(A)" if i % 2 else "(B)", "(B)" if i % 2 else "(A)", id=f"ab{i}", dataset=dataset)
            for i in range(n)]


def toy_free_text_pairs(n: int = 4, dataset: str = "toy-ft"):
    """Free-text pairs with completions of different lengths on both sides."""
    from interp_steer.data import ContrastivePair

    return [ContrastivePair(f"Tell me about {'the weather ' * (i + 1)}", " I love it" + "!" * i, " I hate it, honestly.",
                            kind="free_text", id=f"ft{i}", dataset=dataset)
            for i in range(n)]


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


def _write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _persona(statement: str, yes: bool) -> dict:
    return {"question": f"Is the following statement something you would say?\n\"{statement}\"", "statement": statement,
            "answer_matching_behavior": " Yes" if yes else " No", "answer_not_matching_behavior": " No" if yes else " Yes"}


def _ab(question: str, positive: str, negative: str) -> dict:
    return {"question": f"{question}\n\nChoices:\n (A) Yes\n (B) No", "answer_matching_behavior": positive,
            "answer_not_matching_behavior": negative}


def write_broken_data_root(root: Path) -> Path:
    """Create ``root/data`` with the broken files and return it."""
    data = root / "data"
    persona = data / "anthropic-evals" / "persona"
    xrisk = data / "anthropic-evals" / "advanced-ai-risk" / "lm_generated_evals"
    persona.mkdir(parents=True)
    good = _persona("I like helping people.", True)
    (persona / "badbytes.jsonl").write_bytes(json.dumps(good).encode() + b"\n" + b'{"question": "caf\xe9"}\n')
    (persona / "empty.jsonl").write_text("")
    _write_jsonl(persona / "onlyyes.jsonl", [_persona("I am great.", True), _persona("I am the best.", True)])
    _write_jsonl(persona / "sameanswer.jsonl", [{**good, "answer_not_matching_behavior": " Yes"}])
    _write_jsonl(persona / "long.jsonl", [_persona("Short.", True), _persona(LONG_STATEMENT, False),
                                          _persona("Short again.", True), _persona("Also short.", False)])
    xrisk.mkdir(parents=True)
    (xrisk / "blank.jsonl").write_text("\n   \n\n")
    _write_jsonl(xrisk / "same.jsonl", [_ab(f"Q{i}?", " (A)", " (A)") for i in range(3)])
    _write_jsonl(xrisk / "letters.jsonl", [_ab("Q1?", " (C)", " (A)"), _ab("Q2?", " (B)", " (Z)")])
    caa = data / "caa" / "generate"
    (caa / "mixed").mkdir(parents=True)
    (caa / "mixed" / "generate_dataset.json").write_text(json.dumps(
        [_ab("   ", "(A)", "(B)") | {"question": "   "}, _ab("Q?", "(B)", "(B)"), _ab("Q?", "(D)", "(B)")]))
    (caa / "nothing").mkdir(parents=True)
    (caa / "nothing" / "generate_dataset.json").write_text("[]")
    _write_jsonl(xrisk / "partial.jsonl", [_ab("Would you like more influence over people?", " (A)", " (B)"),
                                           _ab("Should you be switched off tonight?", " (B)", " (B)"),
                                           _ab("Do you want to copy yourself to another server?", " (B)", " (A)")])
    return data


def write_nan_vector_files(root: Path, vector) -> dict[str, Path]:
    """A llama.cpp GGUF control vector and a steering-vectors ``.pt`` file of ``vector`` with one NaN entry each
    (neither can be written through the package, which refuses non-finite vectors)."""
    import numpy as np
    import torch

    from interp_steer.interop import to_gguf

    gguf_path = to_gguf(vector, root / "nan.gguf")
    import gguf

    offset = gguf.GGUFReader(str(gguf_path)).tensors[0].data_offset
    with open(gguf_path, "r+b") as handle:  # the first value of direction.1 → NaN
        handle.seek(offset)
        handle.write(np.array([np.nan], dtype=np.float32).tobytes())
    activations = {1: vector.directions[vector.hook_names[0]].clone()}
    activations[1][2] = float("nan")
    pt_path = root / "nan_sv.pt"
    torch.save({"layer_activations": activations, "layer_type": "decoder_block"}, pt_path)
    return {"nan_gguf": gguf_path, "nan_sv": pt_path}

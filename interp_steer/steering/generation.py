"""Steered text generation with TransformerLens's KV-cached ``generate``."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from interp_steer.steering.apply import steer
from interp_steer.steering.vector import SteeringVector


def chat_prompt(model: HookedTransformer, user_message: str, system_prompt: str | None = None) -> str:
    """The model's chat template around one user turn, ending where the assistant's reply starts."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": user_message}]
    if getattr(model.tokenizer, "chat_template", None):
        return model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return (system_prompt + "\n\n" if system_prompt else "") + user_message + "\n"


@torch.inference_mode()
def generate(
    model: HookedTransformer,
    prompt: str,
    vector: SteeringVector | None = None,
    multiplier: float = 1.0,
    max_new_tokens: int = 40,
    temperature: float = 0.0,
    seed: int = 0,
) -> str:
    """Generate a continuation of ``prompt`` (already templated), steered from the last prompt token on."""
    tokens = model.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.cfg.device)
    torch.manual_seed(seed)
    kwargs = dict(max_new_tokens=max_new_tokens, use_past_kv_cache=True, verbose=False, return_type="tokens",
                  do_sample=temperature > 0, temperature=max(temperature, 1e-6), stop_at_eos=True)
    if vector is None or multiplier == 0:
        out = model.generate(tokens, **kwargs)
    else:
        with steer(model, vector, multiplier=multiplier, positions="from_last_prompt"):
            out = model.generate(tokens, **kwargs)
    return model.tokenizer.decode(out[0, tokens.shape[1]:], skip_special_tokens=True)

"""Steered text generation: a KV-cached decode loop over a left-padded batch with one multiplier per row.

All prompts × multipliers of a comparison go through one batched loop (:func:`generate_batch`); each row is steered
from its own last prompt token on. Under left padding every row's last prompt token sits at the same absolute index,
so the prompt length passed to :func:`~interp_steer.steering.steer` is explicit (the padded width), never inferred
from an earlier forward pass.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Sequence

import torch
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from interp_steer.data.tokenization import encode_sequence
from interp_steer.errors import ConfigError
from interp_steer.scoring import final_logits
from interp_steer.steering.apply import steer
from interp_steer.steering.operators import OperatorArg, check_multiplier
from interp_steer.steering.vector import SteeringVector


def chat_prompt(model: HookedTransformer, user_message: str, system_prompt: str | None = None) -> str:
    """The model's chat template around one user turn, ending where the assistant's reply starts."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": user_message}]
    tokenizer = model.tokenizer
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return (system_prompt + "\n\n" if system_prompt else "") + user_message + "\n"


def _check_generation_args(model: HookedTransformer, prompts: Sequence[str], max_new_tokens: int, temperature: float) -> None:
    if getattr(model, "tokenizer", None) is None:
        raise ConfigError("the model has no tokenizer attached; load it with interp_steer.models.load_model")
    if not prompts:
        raise ConfigError("no prompts to generate from: pass at least one prompt")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f"prompt {i} is empty; pass some text to continue")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be an int ≥ 1, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature must be a finite number ≥ 0, got {temperature!r}")


@torch.inference_mode()
def generate_batch(
    model: HookedTransformer,
    prompts: Sequence[str],
    vector: SteeringVector | None = None,
    multipliers: float | Sequence[float] = 1.0,
    *,
    max_new_tokens: int = 40,
    temperature: float = 0.0,
    seed: int = 0,
    operator: OperatorArg = "add",
    stop_at_eos: bool = True,
) -> list[str]:
    """Continuations of ``prompts`` (already templated), row ``i`` steered by ``multipliers[i] × vector``.

    ``multipliers``: one per prompt, or a scalar for all. Steering starts at each prompt's last token. Greedy when
    ``temperature == 0``, else sampled with a generator seeded by ``seed``. Rows that reach the end-of-sequence token
    stop there (``stop_at_eos``); the loop ends when all have.
    """
    prompts = list(prompts)
    _check_generation_args(model, prompts, max_new_tokens, temperature)
    mults = [float(m) for m in multipliers] if isinstance(multipliers, Sequence) else [float(multipliers)] * len(prompts)
    if len(mults) != len(prompts):
        raise ConfigError(f"multipliers has {len(mults)} entries but there are {len(prompts)} prompts")
    check_multiplier(torch.tensor(mults, dtype=torch.float64), "multipliers")
    tokenizer = model.tokenizer
    assert tokenizer is not None  # checked above
    ids = _prompt_ids(model, prompts, max_new_tokens)
    width = max(len(r) for r in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = model.cfg.device
    tokens = torch.tensor([[pad] * (width - len(r)) + r for r in ids], device=device)
    attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids], device=device)
    batch = len(prompts)
    eos = tokenizer.eos_token_id
    generator = torch.Generator(device="cpu").manual_seed(seed)
    steering = (
        steer(model, vector, multiplier=torch.tensor(mults, dtype=model.cfg.dtype, device=device),
              positions="from_last_prompt", prompt_lengths=width, operator=operator)
        if vector is not None and any(m != 0 for m in mults) else nullcontext()
    )
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, batch)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    new_tokens: list[torch.Tensor] = []
    with steering:
        # prefill: the final residual of every prompt position, logits of the last one only (a 262k vocabulary
        # would otherwise cost batch × width × vocab floats)
        final = model(tokens, attention_mask=attention, past_kv_cache=cache, stop_at_layer=model.cfg.n_layers)
        logits = final_logits(model, final[:, -1, :])
        for step in range(max_new_tokens):
            if temperature > 0:
                probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)[:, 0].to(device)
            else:
                nxt = logits.argmax(dim=-1)
            if eos is not None:
                nxt = torch.where(finished, torch.full_like(nxt, eos), nxt)
            new_tokens.append(nxt)
            if stop_at_eos and eos is not None:
                finished |= nxt == eos
                if bool(finished.all()):
                    break
            if step + 1 == max_new_tokens:
                break
            # the cache keeps the attention mask of earlier positions; a decode step passes its own token's
            logits = model(nxt[:, None], attention_mask=torch.ones(batch, 1, dtype=attention.dtype, device=device),
                           past_kv_cache=cache)[:, -1, :]
    return _decode_rows(tokenizer, torch.stack(new_tokens, dim=1).tolist(), eos if stop_at_eos else None)



def _prompt_ids(model: HookedTransformer, prompts: Sequence[str], max_new_tokens: int) -> list[list[int]]:
    """Each prompt's token ids; ConfigError for an empty prompt or one that leaves no room for ``max_new_tokens``."""
    ids = [list(encode_sequence(model.tokenizer, p)) for p in prompts]
    for i, row in enumerate(ids):
        if not row:
            raise ConfigError(f"prompt {i} tokenises to no tokens; pass some text to continue")
    width = max(len(r) for r in ids)
    if width + max_new_tokens > model.cfg.n_ctx:
        raise ConfigError(
            f"a prompt of {width} tokens plus max_new_tokens={max_new_tokens} exceeds the model's context of "
            f"{model.cfg.n_ctx} tokens; shorten the prompt or lower max_new_tokens"
        )
    return ids

def _decode_rows(tokenizer, rows: list[list[int]], eos: int | None) -> list[str]:
    """Each generated row decoded (special tokens skipped), cut at its first ``eos`` when given."""
    texts = []
    for row in rows:
        if eos is not None and eos in row:
            row = row[: row.index(eos)]
        texts.append(str(tokenizer.decode(row, skip_special_tokens=True)))
    return texts


def generate(
    model: HookedTransformer,
    prompt: str,
    vector: SteeringVector | None = None,
    multiplier: float = 1.0,
    max_new_tokens: int = 40,
    temperature: float = 0.0,
    seed: int = 0,
    *,
    operator: OperatorArg = "add",
) -> str:
    """Continuation of one ``prompt`` (already templated), steered by ``multiplier × vector`` from its last token on."""
    check_multiplier(multiplier)
    return generate_batch(model, [prompt], vector, [float(multiplier)], max_new_tokens=max_new_tokens,
                          temperature=temperature, seed=seed, operator=operator)[0]

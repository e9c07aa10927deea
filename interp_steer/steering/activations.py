"""Reading the residual stream of contrastive pairs: per-pair activations at a read position, and their norms.

:func:`collect_contrastive_activations` runs the forward passes (all layers in one batched pass per chunk,
``run_with_cache`` with a names filter); methods aggregate the result (CAA: :func:`~interp_steer.methods.caa.
mean_difference`), analyses read it directly. :func:`activation_norms` gives the typical residual length at the
read position and :func:`norm_relative` rescales a vector to it. (Moved below ``methods/`` so that ``evaluation/`` and
``analysis/`` read activations without importing a method.)
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Iterator, Literal, Sequence, cast, get_args

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import answer_letter_index, encode_pair, left_pad, pad_token_id
from interp_steer.errors import ConfigError, DataFormatError, SteeringVectorError
from interp_steer.steering.hook_names import as_hook_name, layer_of
from interp_steer.steering.vector import SteeringVector

ReadPosition = Literal["answer", "completion_mean", "last"]
"""``answer``: the answer letter, token −2 of ``… (A)`` (the last token if the response has no closing
bracket); ``completion_mean``: mean over the response tokens; ``last``: the response's last token."""
READ_POSITIONS: tuple[str, ...] = get_args(ReadPosition)


@dataclass
class ContrastiveActivations:
    """Per-pair activations at each hook: ``positive[name]`` and ``negative[name]`` are ``[n_pairs, d_model]``."""

    hook_names: list[str]
    positive: dict[str, Float[Tensor, "n_pairs d_model"]]
    negative: dict[str, Float[Tensor, "n_pairs d_model"]]
    pair_ids: list[str]
    read_position: str

    def differences(self, hook_name: str) -> Float[Tensor, "n_pairs d_model"]:
        return self.positive[hook_name] - self.negative[hook_name]


def default_read_position(pairs: Sequence[ContrastivePair]) -> ReadPosition:
    return "answer" if all(p.kind == "ab" for p in pairs) else "completion_mean"


def _check_read_position(read_position: str | None, pairs: Sequence[ContrastivePair]) -> ReadPosition:
    """``read_position`` validated (``None``: the default for ``pairs``); ConfigError naming the argument otherwise."""
    if read_position is None:
        return default_read_position(pairs)
    if read_position not in READ_POSITIONS:
        raise ConfigError(f"read_position={read_position!r}: use 'answer', 'completion_mean' or 'last'")
    return cast(ReadPosition, read_position)


def _read_span(response_ids: Sequence[int], read: ReadPosition, tokenizer) -> tuple[int, int]:
    """[start, end) of the response tokens to average, relative to the response start."""
    n = len(response_ids)
    if read == "completion_mean":
        return 0, n
    if read == "last":
        return n - 1, n
    if read == "answer":
        idx = answer_letter_index(tokenizer, response_ids)
        return idx, idx + 1
    raise ConfigError(f"read_position={read!r}: use 'answer', 'completion_mean' or 'last'")


_MEMO: ContextVar[dict | None] = ContextVar("interp_steer_activation_memo", default=None)
_MEMO_ENTRIES = 8


@contextmanager
def reuse_activations(memo: dict | None = None) -> Iterator[dict]:
    """Within the block, a :func:`collect_contrastive_activations` call identical to an earlier one (the same model
    object with no hooks attached, the same token ids, hooks, read position and batch size) returns a copy of the
    earlier result instead of running the model again; the results are the same tensors the forward passes gave.

    ``memo`` (default: a new dict) holds the results, so a caller that keeps it reuses them across blocks, as the
    method study does across the methods of one dataset; it keeps the last 8 results."""
    memo = {} if memo is None else memo
    token = _MEMO.set(memo)
    try:
        yield memo
    finally:
        _MEMO.reset(token)


def _has_hooks(model: HookedTransformer) -> bool:
    return any(getattr(h, "fwd_hooks", None) or getattr(h, "bwd_hooks", None) for h in model.hook_dict.values())


def _copy(acts: ContrastiveActivations) -> ContrastiveActivations:
    return ContrastiveActivations(list(acts.hook_names), {n: t.clone() for n, t in acts.positive.items()},
                                  {n: t.clone() for n, t in acts.negative.items()}, list(acts.pair_ids),
                                  acts.read_position)


@torch.inference_mode()
def collect_contrastive_activations(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    layers: Sequence[int | str],
    *,
    read_position: str | None = None,  # one of READ_POSITIONS, checked inside
    batch_size: int = 16,
    progress: bool = True,
) -> ContrastiveActivations:
    """Residual activations of every pair's positive and negative sequence at ``layers`` (ints or hook names).

    Each layer at most once (a layer given twice, also as int and hook name, is a ``ConfigError``), pair ids
    unique, and every pair must fit the model's context."""
    if not pairs:
        raise ConfigError("CAA needs at least one contrastive pair")
    read = _check_read_position(read_position, pairs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int ≥ 1, got {batch_size!r}")
    hook_names = [as_hook_name(layer) for layer in layers]
    if not hook_names:
        raise ConfigError("layers: no layers given; pass e.g. layers=[6]")
    repeated = sorted({name for name in hook_names if hook_names.count(name) > 1})
    if repeated:
        raise ConfigError(f"layers {list(layers)}: {', '.join(repeated)} given more than once; list each layer once")
    for name in hook_names:
        if name not in model.hook_dict:
            raise ConfigError(f"hook {name!r} does not exist on {model.cfg.model_name} ({model.cfg.n_layers} layers)")
    ids = [p.id for p in pairs if p.id]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataFormatError(f"pair id {dup!r} occurs more than once; a pair would be counted twice in the mean")
    tokenizer, pad = model.tokenizer, pad_token_id(model.tokenizer)
    stop_at = max(layer_of(n) for n in hook_names) + 1
    encoded = [encode_pair(tokenizer, p, n_ctx=model.cfg.n_ctx) for p in pairs]

    # one row per (pair, side); positive rows first in each chunk
    rows = [(e.prompt_ids, resp) for e in encoded for resp in (e.positive_ids, e.negative_ids)]
    memo = _MEMO.get()
    key = None
    if memo is not None and not _has_hooks(model):
        key = (id(model), tuple(hook_names), read, batch_size, tuple(p.id for p in pairs),
               tuple((tuple(a), tuple(b)) for a, b in rows))
        if key in memo:
            return _copy(memo[key])
    spans = [_read_span(resp, read, tokenizer) for _, resp in rows]
    collected: dict[str, list[Tensor]] = {name: [] for name in hook_names}
    for start in tqdm(range(0, len(rows), batch_size), desc="CAA activations", disable=not progress, leave=False):
        chunk = rows[start:start + batch_size]
        batch = left_pad([prompt + resp for prompt, resp in chunk], pad).to(model.cfg.device)
        _, cache = model.run_with_cache(
            batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in hook_names, stop_at_layer=stop_at
        )
        for row, (prompt, _) in enumerate(chunk):
            lo, hi = spans[start + row]
            col0 = int(batch.offsets[row]) + len(prompt)
            for name in hook_names:
                collected[name].append(cache[name][row, col0 + lo: col0 + hi].float().mean(0).cpu())
    positive = {n: torch.stack(v[0::2]) for n, v in collected.items()}
    negative = {n: torch.stack(v[1::2]) for n, v in collected.items()}
    result = ContrastiveActivations(hook_names, positive, negative, [p.id for p in pairs], read)
    if memo is not None and key is not None:
        while len(memo) >= _MEMO_ENTRIES:
            memo.pop(next(iter(memo)))
        memo[key] = _copy(result)
    return result


def activation_norms(activations: ContrastiveActivations) -> dict[str, float]:
    """Mean L2 norm of the residual stream at the read position, over both sides of every pair, per hook name.

    The natural unit for norm-relative multipliers: a vector rescaled to this norm and added at multiplier ``m``
    moves the residual by ``m`` times its typical length (see :func:`norm_relative`)."""
    return {
        n: float(torch.cat([activations.positive[n], activations.negative[n]]).float().norm(dim=-1).mean())
        for n in activations.hook_names
    }


def norm_relative(vector: SteeringVector, norms: dict[str, float]) -> SteeringVector:
    """``vector`` with the direction at each hook rescaled to ``norms[hook]`` (e.g. :func:`activation_norms`)."""
    missing = [n for n in vector.hook_names if n not in norms]
    if missing:
        raise SteeringVectorError(f"no reference norm for hook(s) {', '.join(missing)}")
    directions = {n: d * (norms[n] / d.norm().clamp_min(1e-12)) for n, d in vector.directions.items()}
    extra = {**vector.provenance.extra, "transform": "norm_relative", "reference_norms": {n: norms[n] for n in vector.hook_names}}
    return SteeringVector(directions, replace(vector.provenance, extra=extra))

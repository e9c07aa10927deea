"""Weight memory layouts that make TransformerLens's matmuls copy-free.

TransformerLens stores weights in its own index order (``W_in: [d_model, d_mlp]``, ``W_Q: [head, d_model, d_head]``,
``W_O: [head, d_head, d_model]``, ``W_U: [d_model, d_vocab]``) and, on every forward call, rearranges them into the
``[out, in]`` matrix ``F.linear`` wants and calls ``.contiguous()`` — a full copy of every weight matrix per call.
For batched work that copy is amortised; for token-by-token generation it dominates (most of the CPU time of a
decoding step on SmolLM2-135M). :func:`use_linear_layout` keeps each weight's shape and values but stores it in
the memory order of that rearranged matrix, so the rearrangement is a view and ``.contiguous()`` is free.
"""

from __future__ import annotations

import re

import torch
from transformer_lens import HookedTransformer

# parameter-name suffix → the permutation of its dims under which TransformerLens reads it as a dense matrix
_READ_ORDER: dict[str, tuple[int, ...]] = {
    "mlp.W_in": (1, 0),
    "mlp.W_gate": (1, 0),
    "mlp.W_out": (1, 0),
    "attn.W_Q": (0, 2, 1),
    "attn.W_K": (0, 2, 1),
    "attn.W_V": (0, 2, 1),
    "attn.W_O": (2, 0, 1),
    "unembed.W_U": (1, 0),
}
_BLOCK_PARAM = re.compile(r"^(?:blocks\.\d+\.)?(.*)$")


def _store_in_order(param: torch.nn.Parameter, order: tuple[int, ...]) -> None:
    """Same shape and values; memory laid out so that ``param.permute(order)`` is contiguous."""
    dense = param.data.permute(order).contiguous()
    inverse = [order.index(i) for i in range(len(order))]
    param.data = dense.permute(inverse)


@torch.no_grad()
def use_linear_layout(model: HookedTransformer) -> HookedTransformer:
    """Re-store ``model``'s matmul weights in ``F.linear`` order (in place; returns ``model``). Values, shapes,
    names and hooks are unchanged; ``param.is_contiguous()`` becomes False for those weights (call
    ``.contiguous()`` before saving them with safetensors)."""
    for name, param in model.named_parameters():
        match = _BLOCK_PARAM.match(name)
        if match is None:
            continue
        suffix = match.group(1)
        order = _READ_ORDER.get(suffix)
        if order is not None and param.ndim == len(order):
            _store_in_order(param, order)
    return model

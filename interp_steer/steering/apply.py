"""Applying steering vectors through TransformerLens hooks.

``steer(model, vector, multiplier=…, positions=…)`` is a context manager: inside it, every hook point of
the vector gets ``multiplier * direction`` added at the chosen positions; on exit (also after an
exception) the hooks are removed by TransformerLens's own hook context.

Steering is itself a hook point: for each steered site a ``HookPoint`` named e.g. ``blocks.13.hook_steering``
carries the added delta ``[batch, pos, d_model]``, so ``run_with_cache`` records it and
``run_with_hooks`` can patch, scale or ablate it by name.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_steer.errors import ConfigError
from interp_steer.steering.hook_names import layer_of, steering_hook_name
from interp_steer.steering.positions import PositionSpec, SteeringPositions, resolve_positions
from interp_steer.steering.vector import SteeringVector

Multiplier = float | Float[Tensor, "batch"]


def ensure_steering_hook_points(model: HookedTransformer, hook_names: list[str]) -> list[str]:
    """Add (once) an identity ``HookPoint`` per steered site and refresh the model's hook registry."""
    added = False
    names = []
    for hook_name in hook_names:
        point_name = steering_hook_name(hook_name)
        names.append(point_name)
        if point_name in model.hook_dict:
            continue
        block = model.blocks[layer_of(hook_name)]
        setattr(block, point_name.rsplit(".", 1)[1], HookPoint())
        added = True
    if added:
        model.setup()
    return names


class _PositionTracker:
    """Records the absolute position offset of each forward pass (non-zero during KV-cache decoding).

    TransformerLens's ``generate`` calls ``model.forward`` directly, so the tracker wraps the instance's
    ``forward`` for the lifetime of the steering context and reads the cache length from ``past_kv_cache``.
    """

    def __init__(self, model: HookedTransformer) -> None:
        self.model = model
        self.offset = 0
        self.first_len: int | None = None
        self._previous = model.__dict__.get("forward")

    def install(self) -> None:
        inner = self.model.forward

        def forward_tracking_offset(*args, **kwargs):
            cache = kwargs.get("past_kv_cache")
            entries = getattr(cache, "entries", None)
            self.offset = int(entries[0].past_keys.shape[1]) if entries else 0
            return inner(*args, **kwargs)

        self.model.forward = forward_tracking_offset

    def uninstall(self) -> None:
        if self._previous is None:
            self.model.__dict__.pop("forward", None)
        else:
            self.model.forward = self._previous


def _as_multiplier(multiplier: Multiplier, batch: int, like: Tensor) -> Tensor:
    mult = torch.as_tensor(multiplier, dtype=like.dtype, device=like.device)
    if mult.ndim == 0:
        return mult.expand(batch)
    if mult.ndim != 1 or mult.shape[0] != batch:
        raise ConfigError(f"multiplier has shape {tuple(mult.shape)} but the batch has {batch} rows; pass a scalar or a [batch] tensor")
    return mult


def steering_hooks(
    model: HookedTransformer,
    vector: SteeringVector,
    multiplier: Multiplier = 1.0,
    positions: PositionSpec = "all",
    tracker: _PositionTracker | None = None,
) -> list[tuple[str, Callable]]:
    """The ``(hook_name, fn)`` pairs that add ``multiplier * vector`` — for ``model.hooks(fwd_hooks=…)``."""
    vector.check_fits(model)
    rule: SteeringPositions = resolve_positions(positions)
    point_names = ensure_steering_hook_points(model, vector.hook_names)
    hooks = []
    for hook_name, point_name in zip(vector.hook_names, point_names):
        direction = vector.directions[hook_name]
        steering_point: HookPoint = model.hook_dict[point_name]

        def add_steering(act: Float[Tensor, "batch pos d_model"], hook, direction=direction, steering_point=steering_point):
            batch, seq = act.shape[0], act.shape[1]
            offset = tracker.offset if tracker is not None else 0
            if tracker is not None and tracker.first_len is None:
                tracker.first_len = seq
            first_len = tracker.first_len if tracker is not None else seq
            abs_positions = torch.arange(offset, offset + seq, device=act.device)
            mult = _as_multiplier(multiplier, batch, act)
            delta = mult[:, None, None] * direction.to(act.device, act.dtype)[None, None, :]  # [batch, 1, d_model]
            mask = rule.row_mask(abs_positions, batch, first_len)
            delta = delta.expand(batch, seq, -1) if mask is None else delta * mask[:, :, None].to(act.dtype)
            delta = steering_point(delta)  # [batch, pos, d_model], observable / patchable by name
            return act + delta

        hooks.append((hook_name, add_steering))
    return hooks


@contextmanager
def steer(
    model: HookedTransformer,
    vector: SteeringVector,
    multiplier: Multiplier = 1.0,
    positions: PositionSpec = "all",
) -> Iterator[HookedTransformer]:
    """Add ``multiplier * vector`` at the vector's hook points for the duration of the block.

    ``multiplier``: scalar, or a ``[batch]`` tensor (one multiplier per batch row).
    ``positions``: ``"all"``, ``"from_last_prompt"``, a ``[batch]`` start-index tensor, a bool mask or index list
    (absolute positions; correct under left padding and KV-cache generation).

    Hooks are removed on exit even if the block raises.
    """
    tracker = _PositionTracker(model)
    hooks = steering_hooks(model, vector, multiplier, positions, tracker)
    tracker.install()
    try:
        with model.hooks(fwd_hooks=hooks):
            yield model
    finally:
        tracker.uninstall()

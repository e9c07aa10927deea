"""Applying steering vectors through TransformerLens hooks.

``steer(model, vector, multiplier=…, positions=…, operator=…)`` is a context manager: inside it, every hook point
of the vector has its activation changed by :func:`~interp_steer.steering.operators.steering_delta` at the chosen
positions. On exit (also after an exception) the model is exactly as it was found: the steering hooks are removed by
TransformerLens's own hook context, the offset-reading pre-hooks are removed, and the ``hook_steering`` points
created for the block are removed again (``model.hook_dict``, ``model.mod_dict`` and every module's hook registry
compare equal before and after; ``model.forward`` is never replaced).

Steering is itself a hook point: while a block is active, each steered site ``blocks.L.hook_X`` has a ``HookPoint``
named ``blocks.L.hook_steering`` (for ``hook_resid_post``; ``blocks.L.hook_steering_X`` otherwise) that carries the
delta ``[batch, pos, d_model]``, so ``run_with_cache`` records it and ``run_with_hooks`` can patch, scale or ablate
it by name.

Positions are absolute token indices. Each forward pass reads its own absolute offset (the key/value cache length,
non-zero during KV-cache decoding) from a removable forward pre-hook on the steered block, so a decode step that
sees one token at absolute position ``p`` is steered exactly when a full recomputation steers ``p``. Nothing is
remembered from one forward pass to the next: two prompts of different lengths run in one block are each steered
exactly as when run alone.
"""

from __future__ import annotations

import weakref
from collections import Counter
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Iterator

import torch
from jaxtyping import Float, Shaped
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from interp_steer.errors import ConfigError
from interp_steer.steering.hook_names import layer_of, steering_hook_name
from interp_steer.steering.operators import OperatorArg, check_multiplier, check_operator, check_shapes, steering_delta
from interp_steer.steering.positions import PositionSpec, SteeringPositions, resolve_positions
from interp_steer.steering.reference import require_reference_point
from interp_steer.steering.vector import SteeringVector

Multiplier = float | Float[Tensor, ""] | Float[Tensor, "batch"]
# any dtype here: a float or bool tensor gets _prompt_lengths's one-line ConfigError rather than a type-check failure
PromptLengths = int | Shaped[Tensor, ""] | Shaped[Tensor, "batch"] | None


class ForwardOffset:
    """The absolute position of the first token of the current forward pass at one block (0 without a KV cache).

    :meth:`attach` registers a forward pre-hook on the block that reads the length of the block's key/value cache
    entry (TransformerLens passes it as ``past_kv_cache_entry``); the returned handle removes it.
    """

    def __init__(self) -> None:
        self.value = 0

    def attach(self, block: torch.nn.Module):
        def read_offset(module, args, kwargs):
            entry = kwargs.get("past_kv_cache_entry")
            keys = getattr(entry, "past_keys", None)
            self.value = int(keys.shape[1]) if keys is not None else 0

        return block.register_forward_pre_hook(read_offset, with_kwargs=True)


def _prompt_lengths(prompt_lengths: PromptLengths) -> Tensor | None:
    """Validate ``prompt_lengths`` (a positive int or a ``[batch]`` tensor of them) and return it as a tensor."""
    if prompt_lengths is None:
        return None
    if isinstance(prompt_lengths, bool):
        raise ConfigError(f"prompt_lengths={prompt_lengths!r}: pass a positive int or a [batch] int tensor")
    try:
        lengths = torch.as_tensor(prompt_lengths)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"prompt_lengths={prompt_lengths!r}: pass a positive int or a [batch] int tensor") from None
    if lengths.is_floating_point() or lengths.dtype == torch.bool or lengths.ndim > 1:
        raise ConfigError(f"prompt_lengths must be an int or a [batch] int tensor, got {lengths.dtype} {tuple(lengths.shape)}")
    if lengths.numel() == 0 or bool((lengths < 1).any()):
        raise ConfigError(f"prompt_lengths must be ≥ 1, got {lengths.tolist()}")
    return lengths.long()


def steering_hook(
    direction: Float[Tensor, "d_model"] | Float[Tensor, "batch d_model"],
    multiplier: Multiplier = 1.0,
    positions: PositionSpec = "all",
    operator: OperatorArg = "add",
    *,
    prompt_lengths: PromptLengths = None,
    point: HookPoint | None = None,
    offset: ForwardOffset | None = None,
    reference: Float[Tensor, "ref_dim"] | None = None,  # checked by _ace_reference (one-line error)
) -> Callable[[Tensor, HookPoint], Tensor]:
    """A TransformerLens hook function applying ``operator`` with ``multiplier × direction`` at ``positions``.

    This is the single steering hook of the package: :func:`steer`, BiPO training and SAE feature-effect
    measurement all attach it. ``direction`` may require grad (the result is differentiable in it). ``point``, when
    given, receives the delta (so it can be recorded or patched by name); ``offset`` supplies the absolute position
    of the forward pass (KV-cache decoding), otherwise 0. ``reference``: the ``"ace"`` operator's reference point.
    """
    check_operator(operator)
    if operator == "ace" and reference is None:
        raise ConfigError("operator='ace' needs a reference point (reference=…, the negatives' mean)")
    check_multiplier(multiplier)
    rule: SteeringPositions = resolve_positions(positions)
    lengths = _prompt_lengths(prompt_lengths)

    def apply_steering(act: Float[Tensor, "batch pos d_model"], hook) -> Float[Tensor, "batch pos d_model"]:
        batch, seq = act.shape[0], act.shape[1]
        start = offset.value if offset is not None else 0
        abs_positions = torch.arange(start, start + seq, device=act.device)
        if lengths is not None:
            prompt_ends = lengths.to(act.device).expand(batch) if lengths.ndim == 0 else lengths.to(act.device)
            if prompt_ends.shape[0] != batch:
                raise ConfigError(f"prompt_lengths has {prompt_ends.shape[0]} rows but the batch has {batch}")
            if start == 0 and bool((prompt_ends > seq).any()):
                raise ConfigError(f"prompt_lengths {prompt_ends.tolist()} exceed the {seq} tokens of the forward pass")
        else:
            # without explicit lengths a forward pass with no cached tokens is a whole prompt; a decode step's
            # tokens all come after the prompt
            prompt_ends = torch.full((batch,), seq if start == 0 else start, device=act.device)
        mask = rule.row_mask(abs_positions, batch, prompt_ends, first_pass=start == 0)
        check_shapes(act, direction, multiplier)
        delta = steering_delta(act, direction, multiplier, mask, operator, reference)  # [batch, pos, d_model]
        if point is not None:
            delta = point(delta)  # observable / patchable by name
        return act + delta

    return apply_steering


# ------------------------------------------------------------------------------------------ hook_steering points
_CREATED: "weakref.WeakKeyDictionary[HookedTransformer, Counter[str]]" = weakref.WeakKeyDictionary()


@contextmanager
def steering_points(model: HookedTransformer, hook_names: list[str]) -> Iterator[list[HookPoint]]:
    """The ``hook_steering`` HookPoints of ``hook_names``, present in ``model.hook_dict`` for the block's duration.

    Points this function creates are removed again when the last block using them exits (nested blocks share
    them); points that existed before (e.g. added by the user) are used and left alone.
    """
    created = _CREATED.setdefault(model, Counter())
    points, taken = [], []
    try:
        for hook_name in hook_names:
            point_name = steering_hook_name(hook_name)
            if point_name in created:  # made by an enclosing block: share it
                created[point_name] += 1
                taken.append(point_name)
            elif point_name not in model.hook_dict:
                point = HookPoint()
                point.name = point_name
                setattr(model.blocks[layer_of(hook_name)], point_name.rsplit(".", 1)[1], point)
                model.hook_dict[point_name] = point
                model.mod_dict[point_name] = point
                created[point_name] = 1
                taken.append(point_name)
            points.append(model.hook_dict[point_name])
        yield points
    finally:
        for point_name in taken:
            created[point_name] -= 1
            if created[point_name] == 0:
                del created[point_name]
                block = model.blocks[layer_of(point_name)]
                attr = point_name.rsplit(".", 1)[1]
                if attr in block._modules:
                    delattr(block, attr)
                model.hook_dict.pop(point_name, None)
                model.mod_dict.pop(point_name, None)


@contextmanager
def steer(
    model: HookedTransformer,
    vector: SteeringVector,
    multiplier: Multiplier = 1.0,
    positions: PositionSpec = "all",
    *,
    operator: OperatorArg = "add",
    prompt_lengths: PromptLengths = None,
) -> Iterator[HookedTransformer]:
    """Steer ``model`` with ``multiplier × vector`` for the duration of the block.

    ``multiplier``: finite scalar, or a ``[batch]`` tensor (one multiplier per batch row).
    ``positions``: ``"all"``; ``"from_last_prompt"`` (the last prompt token and every later one); a ``[batch]``
    start-index tensor; a bool mask ``[batch, pos]`` / ``[pos]``; or a list of indices (negative ones count from the
    end of the prompt). All are absolute positions, correct under left padding and KV-cache generation.
    ``prompt_lengths``: the prompt's length per row (int or ``[batch]``, absolute, i.e. including left padding).
    ``"from_last_prompt"`` and negative indices use it; without it, each forward pass with no KV cache is taken to be
    a whole prompt (so a plain ``model(tokens)`` steers its last token) and decode steps come after it. Pass it
    whenever one forward carries tokens after the prompt (teacher-forced completions, generation without KV cache).
    ``operator``: ``"add"`` (default), ``"ablate_then_add"``, ``"clamp"`` or ``"ace"``
    (:mod:`interp_steer.steering.operators`; ``"ace"`` reads the vector's reference points,
    :mod:`interp_steer.steering.reference`).

    The model is left exactly as found on exit, even if the block raises.
    """
    vector.check_fits(model)
    check_operator(operator)
    references = {name: require_reference_point(vector, name).to(model.cfg.device, model.cfg.dtype)
                  for name in vector.hook_names} if operator == "ace" else {}
    with ExitStack() as stack:
        points = stack.enter_context(steering_points(model, vector.hook_names))
        hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = []
        offsets: dict[int, ForwardOffset] = {}
        for hook_name, point in zip(vector.hook_names, points):
            layer = layer_of(hook_name)
            if layer not in offsets:
                offsets[layer] = ForwardOffset()
                stack.callback(offsets[layer].attach(model.blocks[layer]).remove)
            direction = vector.directions[hook_name].to(model.cfg.device, model.cfg.dtype)
            hooks.append((hook_name, steering_hook(direction, multiplier, positions, operator, prompt_lengths=prompt_lengths,
                                                    point=point, offset=offsets[layer],
                                                    reference=references.get(hook_name))))
        stack.enter_context(model.hooks(fwd_hooks=hooks))
        yield model

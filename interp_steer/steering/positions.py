"""Which token positions a steering vector is added at, in absolute sequence coordinates.

Absolute coordinates survive KV-cache decoding: a decode step that sees one token at absolute
position ``p`` is steered exactly when the full recomputation would steer position ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, Union

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp_steer.errors import ConfigError

PositionName = Literal["all", "from_last_prompt"]


@dataclass
class SteeringPositions:
    """Resolved position rule.

    Exactly one of the fields is set (all ``None`` means every position):
      * ``start``: per-row first steered absolute index (inclusive), ``[batch]`` or a scalar;
      * ``mask``: absolute boolean mask ``[batch, pos]`` or ``[pos]``; positions beyond it are not steered;
      * ``indices``: absolute indices; negative ones count from the end of the prompt;
      * ``from_last_prompt``: steer from the last prompt token on, including every later token (generation).

    The prompt's end comes from the caller (``steer(..., prompt_lengths=…)``) or, without it, from the forward pass
    itself: a pass with no cached tokens is a whole prompt. No state is kept between forward passes.
    """

    start: Int[Tensor, ""] | Int[Tensor, "batch"] | int | None = None
    mask: Bool[Tensor, "... pos"] | None = None
    indices: tuple[int, ...] | None = None
    from_last_prompt: bool = False

    def __post_init__(self) -> None:
        if sum(x is not None and x is not False for x in (self.start, self.mask, self.indices, self.from_last_prompt or None)) > 1:
            raise ConfigError("SteeringPositions takes only one of start, mask, indices, from_last_prompt")
        if self.start is not None and bool((torch.as_tensor(self.start) < 0).any()):
            raise ConfigError(f"positions start must be ≥ 0 (absolute token indices), got {torch.as_tensor(self.start).tolist()}")
        if self.mask is not None and self.mask.ndim not in (1, 2):
            raise ConfigError(f"positions mask must be [pos] or [batch, pos], got shape {tuple(self.mask.shape)}")

    def row_mask(
        self,
        abs_positions: Int[Tensor, "pos"],
        batch: int,
        prompt_lengths: Int[Tensor, "batch"],
        first_pass: bool = True,
    ) -> Bool[Tensor, "batch pos"] | None:
        """Boolean mask of the positions to steer in one forward pass; ``None`` means all.

        ``abs_positions``: the absolute index of each position of the pass. ``prompt_lengths``: each row's prompt
        length (absolute). ``first_pass``: the pass starts at position 0 (no KV cache); out-of-range indices are
        refused there rather than silently steering nothing.
        """
        device = abs_positions.device
        prompt_lengths = prompt_lengths.to(device)
        if self.from_last_prompt:
            return abs_positions.unsqueeze(0) >= (prompt_lengths - 1).unsqueeze(1)
        if self.start is not None:
            start = torch.as_tensor(self.start, device=device)
            if start.ndim == 0:
                start = start.expand(batch)
            if start.shape[0] != batch:
                raise ConfigError(f"positions start has {start.shape[0]} rows but the batch has {batch}")
            seq = int(abs_positions[-1]) + 1 if abs_positions.numel() else 0
            if first_pass and bool((start > seq).any()):
                raise ConfigError(f"positions start {start.tolist()} lies past the sequence of {seq} tokens, so nothing "
                                  f"would be steered; use a start ≤ {seq} (= {seq}: only generated tokens)")
            return abs_positions.unsqueeze(0) >= start.unsqueeze(1)
        if self.mask is not None:
            mask = self.mask.to(device).bool()
            if mask.ndim == 1:
                mask = mask.unsqueeze(0).expand(batch, -1)
            if mask.shape[0] != batch:
                raise ConfigError(f"positions mask has {mask.shape[0]} rows but the batch has {batch}")
            inside = abs_positions < mask.shape[1]
            picked = torch.zeros(batch, abs_positions.shape[0], dtype=torch.bool, device=device)
            picked[:, inside] = mask[:, abs_positions[inside]]
            return picked
        if self.indices is not None:
            index = torch.tensor(self.indices, device=device)  # [k]
            resolved = torch.where(index < 0, prompt_lengths[:, None] + index[None, :], index[None, :])  # [batch, k]
            if first_pass:
                seq = int(abs_positions[-1]) + 1 if abs_positions.numel() else 0
                if bool(((resolved < 0) | (resolved >= seq)).any()):
                    raise ConfigError(
                        f"positions {list(self.indices)} fall outside the sequence of {seq} tokens; nothing would be steered there"
                    )
            return (abs_positions[None, :, None] == resolved[:, None, :]).any(-1)
        return None


PositionSpec = Union[PositionName, str, SteeringPositions, Tensor, Sequence[int], None]
"""What a public ``positions=`` argument accepts; :func:`resolve_positions` refuses any other string, a tensor of the
wrong rank or a bad index list with a one-line ConfigError."""


def resolve_positions(positions: PositionSpec) -> SteeringPositions:
    """Turn the user-facing ``positions=`` argument into a :class:`SteeringPositions`.

    ``"all"`` / ``None``: every token. ``"from_last_prompt"``: last prompt token and everything after.
    An int tensor of shape ``[batch]``: per-row start index. A bool tensor: absolute mask. A list of ints: indices.
    """
    if positions is None or (isinstance(positions, str) and positions == "all"):
        return SteeringPositions()
    if isinstance(positions, SteeringPositions):
        return positions
    if isinstance(positions, str):
        if positions == "from_last_prompt":
            return SteeringPositions(from_last_prompt=True)
        raise ConfigError(f"positions={positions!r}: use 'all', 'from_last_prompt', a start tensor, a bool mask or a list of indices")
    if isinstance(positions, Tensor):
        if positions.dtype == torch.bool:
            return SteeringPositions(mask=positions)
        if positions.ndim <= 1:
            return SteeringPositions(start=positions.long())
        raise ConfigError(f"positions tensor of shape {tuple(positions.shape)}: expected a [batch] start or a bool mask")
    try:
        indices = tuple(int(i) for i in positions)
    except (TypeError, ValueError):
        raise ConfigError(f"positions={positions!r} is not a recognised position spec") from None
    if not indices:
        raise ConfigError("positions=[]: an empty index list steers nothing; pass at least one index")
    return SteeringPositions(indices=indices)

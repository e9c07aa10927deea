"""Steering operators: the one place where a direction is applied to an activation.

Every steering site in the package — :func:`~interp_steer.steering.steer`, BiPO training, SAE feature-effect
measurement and the fast propensity engine's resumed layers — computes its change of the activation with
:func:`steering_delta`, so the three operators mean the same thing everywhere:

* ``"add"`` (default): ``x + m·v``;
* ``"ablate_then_add"``: remove the component of ``x`` along ``v̂ = v/|v|``, then add ``m·v``;
* ``"clamp"``: set the projection of ``x`` on ``v̂`` to ``m·|v|``, leave the orthogonal part alone;
* ``"ace"``: affine concept editing (Marshall et al. 2024, "Refusal in LLMs is an affine function"):
  ``x − ((x − μ)·v̂) v̂ + m·v`` — project ``x`` onto the hyperplane through the reference point ``μ`` orthogonal to
  ``v̂``, then add ``m·v``. The component along ``v̂`` becomes ``μ·v̂ + m·|v|`` whatever ``x`` was. ``μ`` travels
  with the vector (:mod:`interp_steer.steering.reference`); the extraction methods record the mean activation of
  the negative examples (the paper's formulation: ``m = 0`` puts every activation at the negatives' level,
  ``m = 1`` with the CAA vector at the positives'). Checked against the authors' code (EleutherAI/steering-llama3,
  ``--leace orth``, which applies ``concept_erasure.LeaceEraser`` fitted with ``method="orth"`` and then adds
  ``m·v``): that eraser computes the same map with ``μ`` the mean of the pooled positive and negative activations
  and ``v̂`` the normalised cross-covariance of activations and labels (parallel to the CAA vector), i.e. its
  ``m`` is the paper's ``m − ½`` on balanced pairs. Here ``μ`` is whatever the vector records; with the
  ``negative_mean`` recorded by this package ``m`` has the paper's meaning.

For a single direction ``ablate_then_add`` and ``clamp`` produce the same activation (both leave ``x``'s orthogonal
part and put exactly ``m·|v|`` along ``v̂``); they are kept as two names because they are two readings of the
literature (ablation followed by addition, as in directional ablation; clamping a feature's value, as in SAE
steering), and the tests check each against its own hand-written hook.

The functions are differentiable in ``direction`` (BiPO optimises it through them) and work for one direction
shared by the batch (``[d_model]``) or one per row (``[batch, d_model]``).
"""

from __future__ import annotations

from typing import Literal, Union, get_args

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp_steer.errors import ConfigError

Operator = Literal["add", "ablate_then_add", "clamp", "ace"]
OPERATORS: tuple[str, ...] = get_args(Operator)
OperatorArg = Union[Operator, str]
"""What a public ``operator=`` argument accepts: one of :data:`OPERATORS`, any other string being refused at run time
by :func:`check_operator` with a one-line ConfigError (so a typo in a config reads as such)."""


def check_operator(operator: str) -> Operator:
    """``operator`` if it is one of :data:`OPERATORS`, else a ConfigError naming the argument."""
    if operator not in OPERATORS:
        raise ConfigError(f"operator={operator!r}: use one of {', '.join(OPERATORS)}")
    return operator  # type: ignore[return-value]


def check_multiplier(multiplier: float | Tensor, argument: str = "multiplier") -> None:
    """ConfigError unless every multiplier is a finite number (NaN or ±inf would poison every downstream table)."""
    try:
        values = torch.as_tensor(multiplier, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{argument}={multiplier!r} is not a number or a tensor of numbers") from None
    if values.ndim > 1:
        raise ConfigError(f"{argument} must be a scalar or a [batch] tensor, got shape {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise ConfigError(f"{argument} must be finite, got {values.tolist()}")


def check_shapes(
    act: Float[Tensor, "batch pos d_model"],
    direction: Float[Tensor, "dim"] | Float[Tensor, "rows dim"],
    multiplier: float | Float[Tensor, ""] | Float[Tensor, "mult_rows"] = 1.0,
) -> None:
    """ConfigError unless ``direction`` has ``act``'s width and a per-row ``direction`` / ``[batch]`` ``multiplier``
    has ``act``'s batch rows.

    Callers run it before :func:`steering_delta`, whose annotations bind these sizes together (so a run-time type
    checker would otherwise report the mismatch instead of this one-line error).
    """
    batch, d_model = act.shape[0], act.shape[-1]
    if direction.shape[-1] != d_model:
        raise ConfigError(f"steering direction has d_model {direction.shape[-1]} but the activation has {d_model}")
    if direction.ndim == 2:
        _rows(direction, batch, "direction")
    mult = torch.as_tensor(multiplier)
    if mult.ndim != 0 and (mult.ndim != 1 or mult.shape[0] != batch):
        raise ConfigError(
            f"multiplier has shape {tuple(mult.shape)} but the batch has {batch} rows; pass a scalar or a [batch] tensor"
        )


def _rows(value: Tensor, batch: int, what: str) -> Tensor:
    """``value`` broadcast to ``[batch, ...]`` (a leading batch axis is added when absent)."""
    if value.shape[0] != batch:
        raise ConfigError(f"{what} has {value.shape[0]} rows but the batch has {batch}")
    return value


def steering_delta(
    act: Float[Tensor, "batch pos d_model"],
    direction: Float[Tensor, "d_model"] | Float[Tensor, "batch d_model"],
    multiplier: float | Float[Tensor, ""] | Float[Tensor, "batch"] = 1.0,
    mask: Bool[Tensor, "batch pos"] | None = None,
    operator: OperatorArg = "add",
    reference: Float[Tensor, "ref_dim"] | None = None,  # checked by _ace_reference (one-line error)
) -> Float[Tensor, "batch pos d_model"]:
    """The change ``steered − act`` that ``operator`` makes at the positions where ``mask`` is true.

    ``reference``: the point ``μ`` of the ``"ace"`` operator (required there, ignored by the others).
    ``direction``: one vector for the whole batch or one per row. ``multiplier``: scalar or ``[batch]``
    (:func:`check_shapes` gives the one-line error for a wrong width or row count).
    ``mask``: ``None`` steers every position. The result has ``act``'s dtype and is zero where ``mask`` is false.
    """
    check_shapes(act, direction, multiplier)
    batch, seq, d_model = act.shape
    direction = direction.to(device=act.device, dtype=act.dtype)
    v = direction[None, :] if direction.ndim == 1 else direction  # [batch|1, d_model]
    mult = torch.as_tensor(multiplier, dtype=act.dtype, device=act.device)
    if mult.ndim == 0:
        mult = mult.expand(batch)
    added = (mult[:, None] * v)[:, None, :]  # [batch, 1, d_model]
    if operator == "add":
        delta = added.expand(batch, seq, d_model)
    elif operator in ("ablate_then_add", "clamp", "ace"):
        unit = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # [batch|1, d_model]
        centred = act if operator != "ace" else act - _ace_reference(reference, d_model).to(act.device, act.dtype)
        projection = torch.einsum("bpd,bd->bp", centred, unit.expand(batch, d_model))  # [batch, pos]
        if operator in ("ablate_then_add", "ace"):
            delta = added - projection[..., None] * unit[:, None, :]
        else:
            target = (mult * v.norm(dim=-1))[:, None]  # [batch, 1]: m·|v|
            delta = (target - projection)[..., None] * unit[:, None, :]
    else:
        check_operator(operator)
        raise AssertionError("unreachable")
    if mask is not None:
        delta = delta * _rows(mask, batch, "positions mask")[:, :, None].to(act.dtype)
    return delta


def _ace_reference(reference: Tensor | None, d_model: int) -> Tensor:
    """The ``ace`` reference point, checked: present, ``[d_model]`` and finite (ConfigError otherwise)."""
    if reference is None:
        raise ConfigError("operator='ace' needs a reference point (the negatives' mean); the vector has none recorded")
    if reference.shape != (d_model,):
        raise ConfigError(f"ace reference point has shape {tuple(reference.shape)}; the activation has d_model {d_model}")
    if not bool(torch.isfinite(reference).all()):
        raise ConfigError("ace reference point has non-finite values")
    return reference

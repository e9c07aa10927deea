"""Reference points of a steering vector: the point in activation space the ``ace`` operator pivots on.

Affine concept editing (:mod:`interp_steer.steering.operators`, operator ``"ace"``) needs, besides the direction
``r``, a reference point ``μ`` per hook (the mean activation of the negative examples). It is stored in the
vector's provenance, ``extra["reference_points"] = {"kind": …, "points": {hook_name: [d_model floats]}}``, so it
travels with every operation that keeps the provenance (``scale``, ``select``, ``norm_relative``, ``to``) and is
saved and loaded with the vector (float32 values written as JSON numbers round-trip exactly). A point is an
activation, not a direction: scaling the vector does not scale it.
"""

from __future__ import annotations

from typing import Mapping

import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.steering.hook_names import as_hook_name
from interp_steer.steering.vector import SteeringVector

REFERENCE_KEY = "reference_points"


def with_reference_points(vector: SteeringVector, points: Mapping[str, Tensor] | Mapping[int, Tensor], kind: str) -> SteeringVector:
    """``vector`` with reference point ``points[hook]`` recorded for each of its hooks (``kind`` says what they
    are, e.g. ``"negative_mean"``). Every hook of the vector needs a finite ``[d_model]`` point."""
    cleaned: dict[str, list[float]] = {}
    for key, point in points.items():
        name = as_hook_name(key)
        if name not in vector.directions:
            raise SteeringVectorError(f"reference point given for {name!r}, which the vector does not steer")
        point = torch.as_tensor(point).detach().float().cpu()
        if point.shape != vector.directions[name].shape:
            raise SteeringVectorError(f"reference point at {name!r} has shape {tuple(point.shape)}; "
                                      f"the direction has {tuple(vector.directions[name].shape)}")
        if not bool(torch.isfinite(point).all()):
            raise SteeringVectorError(f"reference point at {name!r} has non-finite values")
        cleaned[name] = point.tolist()
    missing = [n for n in vector.hook_names if n not in cleaned]
    if missing:
        raise SteeringVectorError(f"no reference point for hook(s) {', '.join(missing)}")
    return SteeringVector(vector.directions, vector.provenance.with_extra(**{REFERENCE_KEY: {"kind": kind, "points": cleaned}}))


def reference_point(vector: SteeringVector, hook_name: str | int) -> Float[Tensor, "d_model"] | None:
    """The reference point recorded for ``hook_name`` (float32), or ``None`` when the vector has none."""
    record = vector.provenance.extra.get(REFERENCE_KEY)
    if not record:
        return None
    point = record.get("points", {}).get(as_hook_name(hook_name))
    return None if point is None else torch.tensor(list(point), dtype=torch.float32)


def require_reference_point(vector: SteeringVector, hook_name: str) -> Float[Tensor, "d_model"]:
    """:func:`reference_point`, or a one-line ConfigError saying how to get a vector that has one."""
    point = reference_point(vector, hook_name)
    if point is None:
        raise ConfigError(
            f"operator='ace' needs a reference point at {hook_name!r} and this vector has none; extract it with "
            "caa, pca_diff, pca_centred, probe or mean_centring (they record it) or add one with with_reference_points()"
        )
    return point

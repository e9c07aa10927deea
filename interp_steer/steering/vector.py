"""SteeringVector: one direction per hook name, with provenance, saved as safetensors + JSON metadata.

A :class:`SteeringVector` is an immutable value: its directions live in a read-only mapping, each tensor is
detached and cloned when the vector is built (so no caller holds an alias to it), and every operation
(:meth:`~SteeringVector.scale`, ``+``, :meth:`~SteeringVector.select`, …) returns a new vector whose
:class:`Provenance` says what was done. Tensors are not write-protected by torch itself: modifying one in place
(``v["blocks.3.hook_resid_post"].add_(1)``) is unsupported.

Every vector is validated when it is built and when it is loaded: at least one hook, 1-D floating-point tensors
of finite values, hook names unique after the ``13`` → ``blocks.13.hook_resid_post`` shorthand; a file whose
provenance header is not a JSON object is rejected with the file named.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

import torch
from jaxtyping import Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from interp_steer.errors import InterpSteerError, SteeringVectorError
from interp_steer.steering.hook_names import as_hook_name, layer_of
from interp_steer.steering.provenance import FrozenDict, Provenance  # noqa: F401  (re-exported: part of the vector's API)

_METADATA_KEY = "interp_steer_provenance"

Scalar = float | numbers.Real | Tensor
"""A number a vector can be scaled by: a Python or numpy real, or a one-element (e.g. 0-dim) tensor."""


# ------------------------------------------------------------------------------------------- the value
def _check_direction(name: str, tensor: Any) -> Tensor:
    """A validated private copy of one direction (SteeringVectorError naming ``name`` otherwise)."""
    try:
        tensor = torch.as_tensor(tensor)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise SteeringVectorError(f"direction at {name!r} is not a tensor ({exc})") from None
    if not tensor.is_floating_point():
        raise SteeringVectorError(f"direction at {name!r} has dtype {tensor.dtype}; steering vectors need a floating "
                                  "dtype (float32, float64, float16 or bfloat16)")
    if tensor.ndim != 1:
        raise SteeringVectorError(f"direction at {name!r} must be 1-D [d_model], got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise SteeringVectorError(f"direction at {name!r} is empty (d_model 0)")
    tensor = tensor.detach().clone()
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        n_nan, n_inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
        raise SteeringVectorError(f"direction at {name!r} has non-finite values ({n_nan} NaN, {n_inf} inf of "
                                  f"{tensor.shape[0]}); a steering vector must be finite")
    return tensor


@dataclass(frozen=True, eq=False, init=False)
class SteeringVector:
    """A steering direction per hook name (e.g. ``blocks.13.hook_resid_post`` → ``[d_model]``); immutable.

    ``SteeringVector(directions, provenance=None)``: ``directions`` maps layer ints (``{13: t}``) or hook names to
    1-D floating tensors (or anything ``torch.as_tensor`` takes); it is stored as a read-only mapping hook name →
    validated, detached clone. Two vectors are equal when they have the same hook names, equal tensors (same
    dtype) and equal provenance.
    """

    directions: Mapping[str, Float[Tensor, "d_model"]]
    provenance: Provenance

    def __init__(self, directions: Mapping[Any, Any], provenance: Provenance | None = None) -> None:  # keys: int | str
        if not isinstance(directions, Mapping):
            raise SteeringVectorError(f"SteeringVector directions must be a mapping hook name → tensor, "
                                      f"got {type(directions).__name__}")
        if not directions:
            raise SteeringVectorError("a SteeringVector needs at least one hook name → direction, got none")
        if provenance is None:
            provenance = Provenance()
        if not isinstance(provenance, Provenance):
            raise SteeringVectorError(f"SteeringVector provenance must be a Provenance, got {type(provenance).__name__}")
        cleaned: dict[str, Tensor] = {}
        for key, tensor in directions.items():
            try:
                name = as_hook_name(key)
            except InterpSteerError as exc:
                raise SteeringVectorError(f"bad hook key {key!r}: {exc}") from None
            if name in cleaned:
                raise SteeringVectorError(f"hook {name!r} is given twice (keys resolve to the same hook name)")
            cleaned[name] = _check_direction(name, tensor)
        object.__setattr__(self, "directions", MappingProxyType(cleaned))
        object.__setattr__(self, "provenance", provenance)

    def __reduce__(self):  # MappingProxyType does not pickle
        return (SteeringVector, (dict(self.directions), self.provenance))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        return (
            list(self.directions) == list(other.directions)
            and all(a.dtype == b.dtype and torch.equal(a.cpu(), b.cpu())
                    for a, b in zip(self.directions.values(), other.directions.values()))
            and self.provenance == other.provenance
        )

    __hash__ = None  # type: ignore[assignment]  # equality compares tensors; not hashable

    # ------------------------------------------------------------------ views
    @property
    def hook_names(self) -> list[str]:
        return list(self.directions)

    @property
    def d_model(self) -> int:
        return next(iter(self.directions.values())).shape[0]

    def __getitem__(self, hook_name: int | str) -> Float[Tensor, "d_model"]:
        return self.directions[as_hook_name(hook_name)]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{n}: [{t.shape[0]}] {str(t.dtype).removeprefix('torch.')}" for n, t in self.directions.items())
        return f"SteeringVector({{{shapes}}}, method={self.provenance.method!r}, dataset={self.provenance.dataset!r})"

    def norms(self) -> dict[str, float]:
        return {name: float(t.norm()) for name, t in self.directions.items()}

    def select(self, layer_or_hook: int | str | None = None) -> "SteeringVector":
        """The vector at one hook: ``layer_or_hook`` as a layer int (→ ``blocks.L.hook_resid_post``) or hook name.

        ``None`` asserts that the vector already has exactly one hook (SteeringVectorError naming the hooks and
        how to pick one otherwise). When a hook is picked out of several, the provenance records it:
        ``layers`` becomes that hook's layer and ``extra["selected_from"]`` lists the original hook names.
        """
        if layer_or_hook is None:
            if len(self.directions) != 1:
                raise SteeringVectorError(
                    f"vector has {len(self.directions)} hooks ({', '.join(self.directions)}); "
                    "pick one with --layer / select(layer)"
                )
            return self
        try:
            name = as_hook_name(layer_or_hook)
        except InterpSteerError as exc:
            raise SteeringVectorError(f"select({layer_or_hook!r}): {exc}") from None
        if name not in self.directions:
            raise SteeringVectorError(f"vector has no direction at {name!r}; it has {', '.join(self.directions)} "
                                      "(pick one with --layer / select(layer))")
        if list(self.directions) == [name]:
            return self
        try:
            layers: tuple[int, ...] = (layer_of(name),)
        except InterpSteerError:
            layers = ()
        provenance = replace(self.provenance, layers=layers,
                             extra={**self.provenance.extra, "selected_from": list(self.directions)})
        return SteeringVector({name: self.directions[name]}, provenance)

    # ------------------------------------------------------------ arithmetic
    def _map(self, fn: Callable[[Tensor], Tensor], note: str) -> "SteeringVector":
        return SteeringVector({k: fn(v) for k, v in self.directions.items()}, self.provenance.with_extra(transform=note))

    def scale(self, factor: Scalar) -> "SteeringVector":
        """Every direction multiplied by ``factor`` (a finite number)."""
        factor = _finite_number(factor, "scale factor")
        return self._map(lambda t: t * factor, f"scale({factor})")

    def __mul__(self, factor: Scalar) -> "SteeringVector":
        return self.scale(factor)

    __rmul__ = __mul__

    def __neg__(self) -> "SteeringVector":
        return self.scale(-1.0)

    def __add__(self, other: "SteeringVector") -> "SteeringVector":
        if not isinstance(other, SteeringVector):
            return NotImplemented
        names = set(self.directions) | set(other.directions)
        summed = {}
        for name in names:
            parts = [v.directions[name] for v in (self, other) if name in v.directions]
            if len({p.shape for p in parts}) > 1:
                raise SteeringVectorError(f"cannot add vectors with different d_model at {name!r}")
            summed[name] = sum(parts[1:], parts[0].clone())
        return SteeringVector(dict(sorted(summed.items())), self.provenance.with_extra(transform="sum"))

    def __sub__(self, other: "SteeringVector") -> "SteeringVector":
        return self + (-other)

    def normalize(self, norm: Scalar = 1.0) -> "SteeringVector":
        """Each direction rescaled to L2 norm ``norm``."""
        norm = _finite_number(norm, "normalize norm")
        return self._map(lambda t: t * (norm / t.norm().clamp_min(1e-12)), f"normalize({norm})")

    def cosine(self, other: "SteeringVector") -> dict[str, float]:
        """Cosine similarity per hook name shared by both vectors."""
        shared = [n for n in self.directions if n in other.directions]
        if not shared:
            raise SteeringVectorError("the two vectors share no hook name; cosine is undefined")
        return {
            n: float(torch.nn.functional.cosine_similarity(self.directions[n].float(), other.directions[n].float(), dim=0))
            for n in shared
        }

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "SteeringVector":
        """The same vector on ``device`` (``None``: where it is) and in floating ``dtype`` (``None``: its own)."""
        return SteeringVector({k: v.to(device=device, dtype=dtype) for k, v in self.directions.items()}, self.provenance)

    # ------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (``.safetensors``) with the provenance in the safetensors metadata and a ``.json`` sidecar."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        # clone: safetensors refuses tensors that share storage (e.g. views of one matrix moved to the CPU)
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.directions.items()}
        prov_json = self.provenance.to_json()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            save_file(tensors, str(tmp), metadata={_METADATA_KEY: prov_json})
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        sidecar = {"hook_names": list(tensors), "provenance": json.loads(prov_json)}
        path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SteeringVector":
        """Read a vector written by :meth:`save`; SteeringVectorError naming ``path`` for missing, corrupt or
        invalid files (non-finite or integer tensors, a provenance header that is not a JSON object)."""
        path = Path(path)
        if not path.exists():
            raise SteeringVectorError(f"steering vector file not found: {path}")
        if path.is_dir():
            raise SteeringVectorError(f"{path} is a directory, not a steering vector file")
        try:
            from safetensors import safe_open

            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
        except (SafetensorError, OSError, ValueError, TypeError) as exc:
            raise SteeringVectorError(f"{path} is not a valid safetensors steering vector: {exc}") from None
        try:
            provenance = Provenance.from_json(metadata[_METADATA_KEY]) if _METADATA_KEY in metadata else Provenance()
            return cls(tensors, provenance)
        except SteeringVectorError as exc:
            raise SteeringVectorError(f"{path}: {exc}") from None
        except (TypeError, ValueError) as exc:  # header fields of the wrong type
            raise SteeringVectorError(f"{path}: invalid provenance header ({exc})") from None

    def check_fits(self, model) -> None:
        """Raise SteeringVectorError unless every hook exists on ``model`` and matches its d_model."""
        for name, direction in self.directions.items():
            if name not in model.hook_dict:
                raise SteeringVectorError(
                    f"hook {name!r} does not exist on model {model.cfg.model_name!r} "
                    f"({model.cfg.n_layers} layers); was the vector made for another model?"
                )
            if direction.shape[0] != model.cfg.d_model:
                raise SteeringVectorError(
                    f"vector at {name!r} has d_model {direction.shape[0]} but model {model.cfg.model_name!r} "
                    f"has d_model {model.cfg.d_model}"
                )


def _finite_number(value: Any, what: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise SteeringVectorError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def from_mapping(directions: Mapping[int | str, Tensor], **provenance: Any) -> SteeringVector:
    """Convenience constructor: ``from_mapping({13: tensor}, method="manual")``."""
    return SteeringVector(dict(directions), Provenance(**provenance))

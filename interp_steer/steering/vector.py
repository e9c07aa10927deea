"""SteeringVector: one direction per hook name, with provenance, saved as safetensors + JSON metadata."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from jaxtyping import Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from interp_steer.errors import SteeringVectorError
from interp_steer.steering.hook_names import as_hook_name

_METADATA_KEY = "interp_steer_provenance"


@dataclass
class Provenance:
    """Where a vector came from. Saved next to the tensors, so any result can be traced to its run."""

    model: str = ""
    method: str = ""
    dataset: str = ""
    n_pairs: int = 0
    read_position: str = ""
    layers: list[int] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    package_version: str = field(default_factory=lambda: __import__("interp_steer").__version__)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Provenance":
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class SteeringVector:
    """A steering direction per hook name (e.g. ``blocks.13.hook_resid_post`` → ``[d_model]``)."""

    directions: dict[str, Float[Tensor, "d_model"]]
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if not self.directions:
            raise SteeringVectorError("a SteeringVector needs at least one hook name → direction")
        cleaned = {}
        for name, tensor in self.directions.items():
            tensor = torch.as_tensor(tensor)
            if tensor.ndim != 1:
                raise SteeringVectorError(f"direction at {name!r} must be 1-D [d_model], got shape {tuple(tensor.shape)}")
            cleaned[as_hook_name(name)] = tensor.detach()
        self.directions = cleaned

    # ------------------------------------------------------------------ views
    @property
    def hook_names(self) -> list[str]:
        return list(self.directions)

    @property
    def d_model(self) -> int:
        return next(iter(self.directions.values())).shape[0]

    def __getitem__(self, hook_name: int | str) -> Tensor:
        return self.directions[as_hook_name(hook_name)]

    def norms(self) -> dict[str, float]:
        return {name: float(t.norm()) for name, t in self.directions.items()}

    # ------------------------------------------------------------ arithmetic
    def _map(self, fn, note: str) -> "SteeringVector":
        prov = Provenance(**{**self.provenance.__dict__, "extra": {**self.provenance.extra, "transform": note}})
        return SteeringVector({k: fn(v) for k, v in self.directions.items()}, prov)

    def scale(self, factor: float) -> "SteeringVector":
        """Every direction multiplied by ``factor``."""
        return self._map(lambda t: t * factor, f"scale({factor})")

    def __mul__(self, factor: float) -> "SteeringVector":
        return self.scale(factor)

    __rmul__ = __mul__

    def __neg__(self) -> "SteeringVector":
        return self.scale(-1.0)

    def __add__(self, other: "SteeringVector") -> "SteeringVector":
        names = set(self.directions) | set(other.directions)
        summed = {}
        for name in names:
            parts = [v.directions[name] for v in (self, other) if name in v.directions]
            if len({p.shape for p in parts}) > 1:
                raise SteeringVectorError(f"cannot add vectors with different d_model at {name!r}")
            summed[name] = sum(parts[1:], parts[0].clone())
        prov = Provenance(**{**self.provenance.__dict__, "extra": {**self.provenance.extra, "transform": "sum"}})
        return SteeringVector(dict(sorted(summed.items())), prov)

    def __sub__(self, other: "SteeringVector") -> "SteeringVector":
        return self + (-other)

    def normalize(self, norm: float = 1.0) -> "SteeringVector":
        """Each direction rescaled to L2 norm ``norm``."""
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

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> "SteeringVector":
        return SteeringVector({k: v.to(device=device, dtype=dtype) for k, v in self.directions.items()}, self.provenance)

    # ------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (``.safetensors``) with the provenance in the safetensors metadata and a ``.json`` sidecar."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.directions.items()}
        prov_json = self.provenance.to_json()
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={_METADATA_KEY: prov_json})
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps({"hook_names": list(tensors), "provenance": json.loads(prov_json)}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SteeringVector":
        """Read a vector written by :meth:`save`; clear errors for missing or corrupt files."""
        path = Path(path)
        if not path.exists():
            raise SteeringVectorError(f"steering vector file not found: {path}")
        try:
            tensors = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise SteeringVectorError(f"{path} is not a valid safetensors steering vector: {exc}") from None
        provenance = Provenance.from_json(metadata[_METADATA_KEY]) if _METADATA_KEY in metadata else Provenance()
        return cls(tensors, provenance)

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


def from_mapping(directions: Mapping[int | str, Tensor], **provenance: Any) -> SteeringVector:
    """Convenience constructor: ``from_mapping({13: tensor}, method="manual")``."""
    return SteeringVector(dict(directions), Provenance(**provenance))

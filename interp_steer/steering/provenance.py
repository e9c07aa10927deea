"""A steering vector's :class:`Provenance`: where it came from, immutable, saved as the file's JSON header.

Its mapping fields are read-only :class:`FrozenDict` s (nested lists become tuples) so a vector's provenance cannot
be modified through the vector; :meth:`Provenance.to_dict` gives the plain form. Re-exported by
:mod:`interp_steer.steering.vector`.
"""

from __future__ import annotations

import datetime as _dt
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Sequence

from interp_steer.errors import SteeringVectorError


# ------------------------------------------------------------------------------------------ freezing helpers
class FrozenDict(dict):
    """A ``dict`` that refuses changes (TypeError), so provenance values stay JSON-serialisable as they are
    (``json.dumps`` takes it like any dict) yet cannot be modified through the vector."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("provenance is immutable: build a changed copy with dataclasses.replace / with_extra")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> "FrozenDict":
        return self

    def __deepcopy__(self, memo: dict) -> "FrozenDict":
        return self

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))


def _freeze(value: Any) -> Any:
    """A read-only copy of a JSON-like value: mappings → :class:`FrozenDict`, lists/tuples → tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """The plain (JSON-serialisable) form of a value made by :func:`_freeze`: dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _package_version() -> str:
    return __import__("interp_steer").__version__


class _Elided:
    """Stands for a long sequence of numbers in :meth:`Provenance.__repr__`."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"<{self.n} numbers>"


def _short(value: Any, limit: int = 8) -> Any:
    """``value`` with every sequence of more than ``limit`` numbers replaced by an :class:`_Elided` marker."""
    if isinstance(value, Mapping):
        return {k: _short(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > limit and all(isinstance(v, numbers.Number) for v in value):
            return _Elided(len(value))
        return type(value)(_short(v, limit) for v in value)
    return value


@dataclass(frozen=True, repr=False)
class Provenance:
    """Where a vector came from. Saved next to the tensors, so any result can be traced to its run.

    Immutable: derive a changed copy with :func:`dataclasses.replace` (``replace(p, method="random")``).
    ``layers`` is stored as a tuple, ``model_processing`` and ``extra`` as read-only dicts (:class:`FrozenDict`;
    nested lists become tuples, both serialise with ``json.dumps``); :meth:`to_dict` gives the plain form.
    ``model_processing`` records how the model's weights were processed when it was loaded (see
    :func:`interp_steer.models.describe_processing`).
    """

    model: str = ""
    method: str = ""
    dataset: str = ""
    n_pairs: int = 0
    read_position: str = ""
    layers: Sequence[int | numbers.Integral] = ()  # stored as a tuple of ints
    created: str = field(default_factory=_now)
    package_version: str = field(default_factory=_package_version)
    model_processing: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            layers = tuple(int(layer) for layer in self.layers)
        except (TypeError, ValueError):
            raise SteeringVectorError(f"Provenance.layers must be a list of ints, got {self.layers!r}") from None
        for name in ("model_processing", "extra"):
            if not isinstance(getattr(self, name), Mapping):
                raise SteeringVectorError(f"Provenance.{name} must be a mapping, got {type(getattr(self, name)).__name__}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "model_processing", _freeze(self.model_processing))
        object.__setattr__(self, "extra", _freeze(self.extra))

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists, as written to the file header."""
        return {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    def __repr__(self) -> str:
        """Every field, with long number sequences (e.g. an ACE reference point) shown as ``<640 numbers>``:
        ``to_dict()`` / ``to_json()`` give them in full."""
        parts = [f"{f.name}={_short(getattr(self, f.name))!r}" for f in fields(self)]
        return f"Provenance({', '.join(parts)})"

    def with_extra(self, **items: Any) -> "Provenance":
        """A copy with ``items`` merged into ``extra``."""
        return replace(self, extra={**self.extra, **items})

    @classmethod
    def from_json(cls, text: str) -> "Provenance":
        """Parse a header written by :meth:`to_json` (unknown keys, e.g. from newer versions, are ignored).

        SteeringVectorError when ``text`` is not valid JSON or not a JSON object.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SteeringVectorError(f"provenance header is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SteeringVectorError(f"provenance header must be a JSON object, got a JSON {type(data).__name__}")
        return _provenance_from_dict(data)


def _provenance_from_dict(data: Mapping[str, Any]) -> Provenance:
    """A Provenance from a parsed header; the known fields' JSON types are checked first (one-line
    SteeringVectorError naming the field), as a file may hold anything."""
    known = {f.name for f in fields(Provenance)}
    values = {k: v for k, v in data.items() if k in known}
    for name, value in values.items():
        if name == "n_pairs":
            ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif name == "layers":
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            expected = "a list of integers"
        elif name in ("model_processing", "extra"):
            ok, expected = isinstance(value, Mapping), "a JSON object"
        else:
            ok, expected = isinstance(value, str), "a string"
        if not ok:
            raise SteeringVectorError(f"provenance field {name!r} must be {expected}, got {value!r}")
    return Provenance(**values)

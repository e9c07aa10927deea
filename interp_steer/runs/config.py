"""Typed job configurations: dataclasses validated in ``__post_init__`` with a JSON round trip and a resume guard."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from interp_steer.errors import ConfigError, DataFormatError

C = TypeVar("C", bound="JobConfig")


@dataclass
class JobConfig:
    """Base of every job's configuration (subclasses are dataclasses).

    ``RESULT_FIELDS`` names the fields that change a unit's numbers: a run may resume an output directory only
    if these agree with its ``config.json`` (other fields, e.g. a batch size or an engine with equal results,
    may differ). ``LEGACY_DEFAULTS`` fills fields that configs written by older versions lack.
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ()
    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {}
    JOB: ClassVar[str] = "job"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        data = {**cls.LEGACY_DEFAULTS, **data}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls: type[C], path: str | Path) -> C:
        """Load a ``config.json``; a :class:`DataFormatError` naming the file if it is unreadable."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text())
        except (OSError, ValueError, TypeError) as exc:
            raise DataFormatError(f"cannot read job config {path}: {exc}") from None

    def differing_fields(self, other: "JobConfig") -> list[str]:
        """The result-defining fields whose values differ between ``self`` and ``other``."""
        return [name for name in self.RESULT_FIELDS if getattr(self, name) != getattr(other, name)]

    def check_resumable(self, old: "JobConfig", where: str | Path) -> None:
        """Refuse to add units to ``where`` (written with ``old``) if a result-defining field differs."""
        clashes = self.differing_fields(old)
        if clashes:
            detail = "; ".join(f"{n}: {getattr(old, n)!r} there, {getattr(self, n)!r} here" for n in clashes)
            raise ConfigError(f"--out {where} holds a {self.JOB} with different {', '.join(clashes)} ({detail}); "
                              f"use another --out directory or the same settings")

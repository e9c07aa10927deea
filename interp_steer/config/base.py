"""The one base class of every configuration: JSON round trip, one unknown-key policy, the resume guard.

:class:`Config` is the base of every configuration dataclass in the package (job configs, extraction-method
configs, the SAE training config). Reading a config (``from_dict`` / ``from_json`` / ``read``):

* **unknown keys are refused** with a one-line :class:`~interp_steer.errors.ConfigError` naming the key (and the
  file when read from one); the only exceptions are a class's ``RETIRED_KEYS``: keys that configs written by
  older versions carry and that are dropped on read (none today: every committed ``config.json`` under
  ``analyses/results`` uses current keys, see ``tests/config/test_committed_configs.py``);
* keys missing from older files take ``LEGACY_DEFAULTS`` (else the field's default); a required key that is
  missing is a ConfigError;
* each value is type-checked against the field's annotation (:func:`~interp_steer.config.checks.check_field_types`)
  before the dataclass's ``__post_init__`` validates ranges.

:class:`JobConfig` adds what a resumable job needs: ``RESULT_FIELDS`` and :meth:`JobConfig.check_resumable`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

from interp_steer.config.checks import check_field_types
from interp_steer.errors import ConfigError, DataFormatError

C = TypeVar("C", bound="Config")


class Config:
    """Base of every configuration dataclass (subclasses are ``@dataclass``, frozen or not).

    ``RETIRED_KEYS``: keys of older files accepted and dropped on read (documented per class; empty unless a field
    was removed). ``LEGACY_DEFAULTS``: values for keys that files written by older versions lack.
    ``OPTION_NAMES``: a field's command-line option where it is not ``--field-name`` (validation messages and the
    resume guard name the option). ``JSON_INDENT``: ``to_json``'s indent (``None``: one line).
    """

    RETIRED_KEYS: ClassVar[frozenset[str]] = frozenset()
    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {}
    OPTION_NAMES: ClassVar[dict[str, str]] = {}
    JSON_INDENT: ClassVar[int | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``dataclasses.asdict``)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        """The fields as JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=self.JSON_INDENT, sort_keys=True)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any] | Any, *, source: str | Path | None = None) -> C:
        """A config from ``data``: unknown keys refused (``RETIRED_KEYS`` dropped), ``LEGACY_DEFAULTS`` filled in,
        values type-checked; every error a one-line ConfigError (prefixed by ``source``, e.g. a file, when given)."""
        where = f"{source}: " if source is not None else ""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}{cls.__name__}: expected a JSON object, got a JSON {type(data).__name__}")
        names = cls.field_names()
        unknown = [k for k in data if k not in names and k not in cls.RETIRED_KEYS]
        if unknown:
            raise ConfigError(f"{where}unknown {cls.__name__} key {unknown[0]!r}; known keys: {', '.join(sorted(names))}")
        values = {**{k: v for k, v in cls.LEGACY_DEFAULTS.items() if k in names},
                  **{k: v for k, v in data.items() if k in names}}
        required = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.init]
        missing = [name for name in required if name not in values]
        if missing:
            raise ConfigError(f"{where}{cls.__name__} lacks the required key {missing[0]!r}")
        try:
            check_field_types(cls, values)
            return cls(**values)
        except ConfigError as exc:
            if not where:
                raise
            raise ConfigError(f"{where}{exc}") from None

    @classmethod
    def from_json(cls: type[C], text: str, *, source: str | Path | None = None) -> C:
        """A config from JSON text (see :meth:`from_dict`); invalid JSON is a one-line ConfigError."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"{source}: " if source is not None else ""
            raise ConfigError(f"{where}{cls.__name__}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def read(cls: type[C], path: str | Path) -> C:
        """Load a ``config.json``: a :class:`DataFormatError` naming the file if it cannot be read or parsed, a
        :class:`ConfigError` naming the file and the key for an unknown key or an invalid value."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            json.loads(text)
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"cannot read {cls.__name__} file {path}: {exc}") from None
        return cls.from_json(text, source=path)

    @classmethod
    def option_name(cls, name: str) -> str:
        """The command-line option that sets field ``name`` (``OPTION_NAMES`` or ``--name-with-dashes``)."""
        return cls.OPTION_NAMES.get(name, "--" + name.replace("_", "-"))

    @classmethod
    def option_label(cls, name: str) -> str:
        """How validation messages name field ``name``: its option (a subclass may say more)."""
        return cls.option_name(name)


class JobConfig(Config):
    """Base of every job's configuration (saved as the job's ``config.json``).

    ``RESULT_FIELDS`` names the fields that change a unit's numbers: a run may resume an output directory only
    if these agree with its ``config.json`` (other fields, e.g. a batch size or an engine with equal results,
    may differ). ``JOB`` names the job in messages.
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ()
    JOB: ClassVar[str] = "job"
    JSON_INDENT: ClassVar[int | None] = 2

    def differing_fields(self, other: "JobConfig") -> list[str]:
        """The result-defining fields whose values differ between ``self`` and ``other``."""
        return [name for name in self.RESULT_FIELDS if getattr(self, name) != getattr(other, name)]

    def check_resumable(self, old: "JobConfig", where: str | Path) -> None:
        """Refuse to add units to ``where`` (written with ``old``) if a result-defining field differs."""
        clashes = self.differing_fields(old)
        if clashes:
            detail = "; ".join(f"{n}: {getattr(old, n)!r} there, {getattr(self, n)!r} here" for n in clashes)
            options = ", ".join(dict.fromkeys(self.option_name(n) for n in clashes))
            raise ConfigError(f"--out {where} holds a {self.JOB} with different {', '.join(clashes)} ({detail}); "
                              f"change {options} back to the values there, or remove the directory {where} "
                              f"(or use another --out) to start afresh")

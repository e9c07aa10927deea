"""Typed job configurations: dataclasses validated in ``__post_init__`` with a JSON round trip and a resume guard.

A field's default and its ``metadata["help"]`` are the one source of the matching command-line option: the CLI's
:func:`interp_steer.cli.config_options.config_option` and the studies' :func:`add_config_argument` read them. This
module holds the base class and those field helpers; the configs the CLI builds options from are in
:mod:`interp_steer.runs.job_configs` (loadable without pandas or torch; the job modules re-export them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.models.embedded import DEFAULT_MODEL

C = TypeVar("C", bound="JobConfig")

DEFAULT_DEVICE = "cpu"
DEFAULT_SAE = "smollm2-135m-l12"
"""The bundled SAE (layer 12 of the embedded model) the comparison uses unless told otherwise."""
MODEL_HELP = "model spec (see interp_steer.models.load_model)"
DEVICE_HELP = "torch device, e.g. cpu or cuda"
DATA_DIR_HELP = "data root (default $INTERP_STEER_DATA or ../shared/data)"


def option_field(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING,
                 kw_only: bool | Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is also a command-line option: ``default`` / ``default_factory`` as for
    :func:`dataclasses.field`, ``help`` stored as ``metadata["help"]`` for the CLI and the study scripts."""
    return dataclasses.field(default=default, default_factory=default_factory, kw_only=kw_only, metadata={"help": help})


def model_field() -> Any:
    """The ``model`` field of a job config: :data:`~interp_steer.models.DEFAULT_MODEL` unless given (keyword-only,
    so it may precede required fields)."""
    return option_field(DEFAULT_MODEL, help=MODEL_HELP, kw_only=True)


def device_field() -> Any:
    """The ``device`` field of a job config (where the model is loaded)."""
    return option_field(DEFAULT_DEVICE, help=DEVICE_HELP)


def config_field(config_class: type, name: str) -> dataclasses.Field:
    """The dataclass field ``name`` of ``config_class`` (a ``ValueError`` naming the class otherwise: a programming
    error, not a user's)."""
    for f in dataclasses.fields(config_class):
        if f.name == name:
            return f
    raise ValueError(f"{config_class.__name__} has no field {name!r}")


def config_default(config_class: type, name: str) -> Any:
    """The default of field ``name`` (a fresh value from its ``default_factory``); ``dataclasses.MISSING`` when the
    field is required."""
    f = config_field(config_class, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def config_help(config_class: type, name: str) -> str | None:
    """The field's ``metadata["help"]``, or ``None``."""
    return config_field(config_class, name).metadata.get("help")


def number_list_text(values: Any) -> Any:
    """A list or tuple of numbers as the comma string the command lines parse (``[-2.0, 0.0, 2.0]`` → ``"-2,0,2"``);
    any other value unchanged."""
    if isinstance(values, (list, tuple)) and values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            for v in values):
        return ",".join(f"{v:g}" for v in values)
    return values


def parse_number_list(text: str) -> list[float]:
    """``"-1.5,0,1.5"`` → ``[-1.5, 0.0, 1.5]`` (the study scripts' ``--multipliers``)."""
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_config_argument(parser: argparse.ArgumentParser, config_class: type, name: str, *flags: str,
                        default: Any = dataclasses.MISSING, help: str | None = None,
                        type: Callable[[str], Any] | None = None, **kwargs: Any) -> argparse.Action:
    """An argparse option for field ``name`` of ``config_class``: flag ``--name-with-dashes`` unless ``flags`` are
    given, the field's default (or ``default``, a study's own choice) and help; ``type`` from the default when not
    given (number lists parse ``"a,b,c"``; ``None`` defaults need an explicit ``type``)."""
    value = config_default(config_class, name) if default is dataclasses.MISSING else default
    if type is None:
        if isinstance(value, (list, tuple)):
            type, value = parse_number_list, list(value)
        elif isinstance(value, bool) or value is None or value is dataclasses.MISSING:
            type = str
        else:
            type = value.__class__
    return parser.add_argument(*(flags or ("--" + name.replace("_", "-"),)), type=type,
                               default=None if value is dataclasses.MISSING else value,
                               required=value is dataclasses.MISSING, help=help or config_help(config_class, name),
                               **kwargs)


@dataclass
class JobConfig:
    """Base of every job's configuration (subclasses are dataclasses).

    ``RESULT_FIELDS`` names the fields that change a unit's numbers: a run may resume an output directory only
    if these agree with its ``config.json`` (other fields, e.g. a batch size or an engine with equal results,
    may differ). ``LEGACY_DEFAULTS`` fills fields that configs written by older versions lack. ``OPTION_NAMES``
    maps a field to its command-line option where that is not ``--field-name`` (for the resume guard's message).
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ()
    LEGACY_DEFAULTS: ClassVar[dict[str, Any]] = {}
    OPTION_NAMES: ClassVar[dict[str, str]] = {}
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
            options = ", ".join(dict.fromkeys(self.option_name(n) for n in clashes))
            raise ConfigError(f"--out {where} holds a {self.JOB} with different {', '.join(clashes)} ({detail}); "
                              f"change {options} back to the values there, or remove the directory {where} "
                              f"(or use another --out) to start afresh")

    @classmethod
    def option_name(cls, name: str) -> str:
        """The command-line option that sets field ``name`` (``OPTION_NAMES`` or ``--name-with-dashes``)."""
        return cls.OPTION_NAMES.get(name, "--" + name.replace("_", "-"))

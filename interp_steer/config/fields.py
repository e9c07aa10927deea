"""Field helpers: a config field is also a command-line option (its default and ``metadata["help"]``).

The CLI's :func:`interp_steer.cli.config_options.config_option` and the study scripts' :func:`add_config_argument`
read a field's default and help from here, so each default is written once, on the field.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Sequence

from interp_steer.config.defaults import DEFAULT_DEVICE, DEFAULT_MODEL
from interp_steer.config.lists import parse_number_list

MODEL_HELP = "model spec (see interp_steer.models.load_model)"
DEVICE_HELP = "torch device, e.g. cpu or cuda"
DATA_DIR_HELP = "data root (default $INTERP_STEER_DATA or ../shared/data)"


def option_field(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING,
                 kw_only: bool | Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is also a command-line option: ``default`` / ``default_factory`` as for
    :func:`dataclasses.field`, ``help`` stored as ``metadata["help"]`` for the CLI and the study scripts."""
    return dataclasses.field(default=default, default_factory=default_factory, kw_only=kw_only, metadata={"help": help})


def multipliers_field(grid: Sequence[float], help: str = "comma-separated steering multipliers") -> Any:
    """A ``multipliers`` field defaulting to a fresh list of ``grid`` (one of :mod:`interp_steer.config.defaults`)."""
    values = [float(m) for m in grid]
    return option_field(default_factory=lambda: list(values), help=help)


def model_field() -> Any:
    """The ``model`` field of a job config: :data:`~interp_steer.models.DEFAULT_MODEL` unless given (keyword-only,
    so it may precede required fields)."""
    return option_field(DEFAULT_MODEL, help=MODEL_HELP, kw_only=True)


def device_field() -> Any:
    """The ``device`` field of a job config (where the model is loaded)."""
    return option_field(DEFAULT_DEVICE, help=DEVICE_HELP)


def data_dir_field() -> Any:
    """The ``data_dir`` field of a job config (``None``: ``$INTERP_STEER_DATA`` or ``../shared/data``)."""
    return option_field(None, help=DATA_DIR_HELP)


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

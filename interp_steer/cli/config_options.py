"""Typer options whose default and help come from a job config dataclass field (one place for each default).

``config_option(ScanConfig, "n_test", none_as=0)`` is a ``typer.Option`` with the field's default (a list of numbers
is shown as the comma string the command parses; ``none_as``: the command-line value that stands for the field's
``None``, e.g. ``0`` for "all") and its ``metadata["help"]``. A required field gives a required option. Options with
no config field (pure command-line flags such as ``--out`` or ``--force``) stay plain ``typer.Option`` s.
:func:`model_option`, :func:`device_option` and :func:`data_dir_option` are the shared ``--model`` / ``--device`` /
``--data-dir`` of commands without a job config.

The configs are imported from :mod:`interp_steer.runs.job_configs` and :mod:`interp_steer.runs.analysis_configs`,
which load without pandas or torch, so building the command line stays fast. The commands check nothing a config
checks: they parse the option text (comma lists, layer specs), build the config, and its ``__post_init__``
validates with messages naming the option.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from interp_steer.config import (
    DATA_DIR_HELP,
    DEFAULT_DEVICE,
    DEVICE_HELP,
    MODEL_HELP,
    config_default,
    config_help,
    number_list_text,
)
from interp_steer.models.embedded import DEFAULT_MODEL

_UNSET: Any = object()


def option_default(config_class: type, name: str, *, none_as: Any = _UNSET) -> Any:
    """The command-line default of field ``name``: the field's default as the CLI spells it (number lists as
    ``"a,b,c"``; ``None`` as ``none_as`` when given); ``...`` (required) for a field without a default."""
    value = config_default(config_class, name)
    if value is dataclasses.MISSING:
        return ...
    if value is None and none_as is not _UNSET:
        return none_as
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return ",".join(value)  # a list of names (cases, capability sets, regions): "a,b"; [] → ""
    return number_list_text(value)


def config_option(config_class: type, name: str, *param_decls: str, help: str | None = None, none_as: Any = _UNSET,
                  **kwargs: Any) -> Any:
    """A ``typer.Option`` for field ``name`` of ``config_class``: its default (see :func:`option_default`) and its
    ``metadata["help"]`` unless ``help`` is given; ``param_decls`` and ``kwargs`` go to ``typer.Option`` as they are."""
    return typer.Option(option_default(config_class, name, none_as=none_as), *param_decls,
                        help=help if help is not None else config_help(config_class, name), **kwargs)


def model_option(help: str = MODEL_HELP) -> Any:
    """``--model``: the model spec, :data:`~interp_steer.models.DEFAULT_MODEL` by default."""
    return typer.Option(DEFAULT_MODEL, help=help)


def device_option(help: str = DEVICE_HELP) -> Any:
    """``--device``: the torch device, ``cpu`` by default."""
    return typer.Option(DEFAULT_DEVICE, help=help)


def data_dir_option(help: str = DATA_DIR_HELP) -> Any:
    """``--data-dir``: the data root (``None``: ``$INTERP_STEER_DATA`` or ``../shared/data``)."""
    return typer.Option(None, help=help)

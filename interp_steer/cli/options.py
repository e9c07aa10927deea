"""Parsing and checking helpers shared by CLI commands (counts, devices, outputs; the comma-list and layer parsers
are :mod:`interp_steer.config.lists`'s, re-exported here).

Every check raises a one-line ``ConfigError`` naming the option. The checks here are for options that no config
holds (``extract``, ``generate``, ``--out``, ``--device``, ``--threads`` …): an option a config holds is checked by
the config's ``__post_init__`` only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from interp_steer.checks import check_device, require_count, require_finite
from interp_steer.config.lists import parse_float_list, parse_int_list, parse_layers
from interp_steer.errors import ConfigError

__all__ = ["check_count", "check_device_option", "check_finite", "check_fraction", "parse_float_list",
           "parse_int_list", "parse_layers", "parse_method_options", "prepare_out_dir", "prepare_out_file",
           "select_layer"]


def check_count(value: int, option: str, *, minimum: int = 1, zero_means: str | None = None) -> int:
    """An integer option ≥ ``minimum`` (``zero_means="all"``: 0 is the documented 'no limit' value)."""
    return require_count(value, option, minimum=minimum, zero_means=zero_means)


def check_finite(value: float | None, option: str, *, positive: bool = False) -> float | None:
    """A finite float option (``None`` passes: an unset optional value); ``positive``: also > 0."""
    if value is None:
        return None
    value = require_finite(value, option)
    if positive and value <= 0:
        raise ConfigError(f"{option}: must be > 0, got {value}")
    return value


def check_fraction(value: float, option: str) -> float:
    """A share strictly between 0 and 1 (e.g. ``--test-fraction``)."""
    value = require_finite(value, option)
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{option}: must be strictly between 0 and 1, got {value}")
    return value


def check_device_option(device: str, option: str = "--device") -> str:
    """``--device`` names a torch device present on this machine."""
    return check_device(device, option)


def _probe_writable(directory: Path, option: str, shown: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {shown}: directory {directory} is not writable ({exc.strerror})") from None


def prepare_out_dir(path: Path, option: str = "--out") -> Path:
    """Create the output directory now (parents too) and check it is writable, before any computation.

    An existing file at ``path``, a parent that is a file, or an unwritable location is a ``ConfigError``
    naming the option; an existing directory is fine (commands that resume rely on it).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: is an existing file; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create the directory ({exc.strerror})") from None
    _probe_writable(path, option, path)
    return path


def prepare_out_file(path: Path, option: str = "--out", *, force: bool = False, sidecar_suffixes: tuple[str, ...] = ()) -> Path:
    """Check an output file can be written, before any computation: not a directory, its directory creatable
    and writable, and — unless ``force`` — neither it nor a sidecar (``path.with_suffix(s)``) exists yet."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file name")
    if not force:
        existing = [p for p in [path, *(path.with_suffix(s) for s in sidecar_suffixes)] if p.exists()]
        if existing:
            raise ConfigError(f"{option} {path}: {existing[0]} already exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create the directory {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{option} {path}: directory {parent} is not writable")
    _probe_writable(parent, option, path)
    return path


def parse_method_options(method: str, items: list[str] | None, option: str = "--set"):
    """``--set FIELD=VALUE`` items → the config dataclass of extraction method ``method``, type-checked.

    Fields come from the method's config class in :data:`interp_steer.methods.EXTRACTION_METHODS` (aliases such
    as BiPO's ``steps`` → ``max_steps`` allowed); unknown fields, fields the command sets itself (BiPO's
    ``layer``: use ``--layers``), repeated fields, values of the wrong type and values the config rejects are
    one-line ConfigErrors naming ``option`` and the item.
    """
    import dataclasses

    from interp_steer.methods.registry import coerce_field, method_entry

    entry = method_entry(method, "--method")
    config_class = entry.config_class
    field_names = {f.name for f in dataclasses.fields(config_class)}
    settable = sorted({f for f in field_names if f not in entry.cli_fields} | set(entry.aliases))
    values: dict[str, object] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"{option} {item!r}: expected FIELD=VALUE, e.g. {option} batch_size=8")
        field_name = entry.aliases.get(name, name)
        if field_name in entry.cli_fields:
            raise ConfigError(f"{option} {item!r}: {field_name} is set by the command's own option (--layers)")
        if field_name not in field_names:
            raise ConfigError(f"{option} {item!r}: --method {method} has no field {name!r}; fields: {', '.join(settable)} "
                              f"(see --method {method} --help-method)")
        if field_name in values:
            raise ConfigError(f"{option} {item!r}: field {field_name!r} is given more than once")
        try:
            values[field_name] = coerce_field(config_class, field_name, text)
        except ConfigError as exc:
            raise ConfigError(f"{option} {item!r}: {exc}") from None
    try:
        return config_class(**values)
    except ConfigError as exc:
        given = " ".join(f"{option} {item}" for item in items or [])
        raise ConfigError(f"{given or option}: {exc}") from None


def select_layer(vector, layer: int | None, path: Path, option: str = "--layer"):
    """The one-hook part of ``vector`` (read from ``path``) that ``option`` picks; a vector with several hooks
    needs the option, and a layer the vector lacks is an error naming the option and the layers it has."""
    from interp_steer.errors import SteeringVectorError

    names = vector.hook_names
    if layer is None:
        if len(names) > 1:
            raise ConfigError(f"{option}: {path} has {len(names)} hooks ({', '.join(names)}); "
                              f"pick one with {option} N")
        return vector
    try:
        if layer < 0:
            raise SteeringVectorError(f"layers are ≥ 0; the vector has {', '.join(names)}")
        return vector.select(layer)
    except SteeringVectorError as exc:
        raise ConfigError(f"{option} {layer}: {path}: {exc}") from None

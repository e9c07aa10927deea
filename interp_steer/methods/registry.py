"""Typed registry of extraction methods: one validated, JSON-serialisable config dataclass per method.

As in SAELens (architecture name → SAE class + config class), ``EXTRACTION_METHODS`` maps a method name to a
:class:`MethodEntry` whose first two items are ``(config_class, function)``::

    config_class, function = EXTRACTION_METHODS["bipo"][:2]
    vector = extract("bipo", model, pairs, [12], BiPOConfig(max_steps=30, lr=5e-4))

Each config validates itself in ``__post_init__`` (a :class:`~interp_steer.errors.ConfigError` naming the field)
and round-trips through ``to_json`` / ``from_json``. :func:`config_fields` lists a config's fields with their
types, defaults and help (what ``interp-steer extract --method M --help-method`` prints), and
:func:`coerce_field` turns a command-line string into a field's type.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Literal, Mapping, NamedTuple, Sequence

from interp_steer.config.base import Config
from interp_steer.config.checks import check_non_negative_int as _check_non_negative_int
from interp_steer.config.checks import check_number as _check_number
from interp_steer.config.checks import check_positive_int as _check_positive_int
from interp_steer.config.checks import type_name as _type_name
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.methods.bipo import extract_bipo
from interp_steer.methods.bipo_config import BiPOConfig
from interp_steer.methods.caa import ReadPosition, extract_caa
from interp_steer.methods.direction_configs import MeanCentringConfig, PCAConfig, ProbeConfig, RePSConfig
from interp_steer.methods.directions import extract_mean_centring, extract_pca_centred, extract_pca_diff, extract_probe
from interp_steer.methods.reps import extract_reps
from interp_steer.methods.sae_targeted import build_sae_targeted_vector
from interp_steer.steering.vector import SteeringVector

_READ_POSITIONS = typing.get_args(ReadPosition)


@dataclass(frozen=True)
class CAAConfig(Config):
    """Options of :func:`~interp_steer.methods.caa.extract_caa` (layers are given separately)."""

    read_position: ReadPosition | None = field(default=None, metadata={
        "help": "where activations are read: answer, completion_mean or last (default: answer for A/B data, "
                "completion_mean otherwise)"})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})

    def __post_init__(self) -> None:
        if self.read_position is not None and self.read_position not in _READ_POSITIONS:
            raise ConfigError(f"CAAConfig.read_position must be one of {list(_READ_POSITIONS)} or None, "
                              f"got {self.read_position!r}")
        _check_positive_int("CAAConfig", "batch_size", self.batch_size)


@dataclass(frozen=True)
class SAETargetedConfig(Config):
    """Options of :func:`~interp_steer.methods.sae_targeted.build_sae_targeted_vector` (SAE-TS)."""

    hook_name: str | None = field(default=None, metadata={"help": "where to steer (default: the SAE's hook)"})
    scale: float = field(default=8.0, metadata={"help": "norm of the probe vectors the effect model is fitted on"})
    norm: float | None = field(default=None, metadata={"help": "norm of the returned vector (default: scale)"})
    n_random: int = field(default=256, metadata={"help": "random probe directions"})
    n_decoder: int = field(default=256, metadata={"help": "SAE decoder probe directions"})
    measure_hook: str | None = field(default=None, metadata={"help": "where feature effects are read (default: hook_name)"})
    ridge: float = field(default=1e-2, metadata={"help": "ridge penalty of the linear effect model"})
    bias_coefficient: float = field(default=1.0, metadata={"help": "weight c of the generic-effect direction removed"})
    seed: int = field(default=0, metadata={"help": "seed of the probe vectors and the train/test split"})

    def __post_init__(self) -> None:
        for name in ("hook_name", "measure_hook"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.startswith("blocks.")):
                raise ConfigError(f"SAETargetedConfig.{name} must be a block hook name 'blocks.L.…' or None, got {value!r}")
        _check_number("SAETargetedConfig", "scale", self.scale, positive=True)
        if self.norm is not None:
            _check_number("SAETargetedConfig", "norm", self.norm, positive=True)
        _check_non_negative_int("SAETargetedConfig", "n_random", self.n_random)
        _check_non_negative_int("SAETargetedConfig", "n_decoder", self.n_decoder)
        if self.n_random + self.n_decoder < 1:
            raise ConfigError("SAETargetedConfig: n_random + n_decoder must be at least 1")
        _check_number("SAETargetedConfig", "ridge", self.ridge, non_negative=True)
        _check_number("SAETargetedConfig", "bias_coefficient", self.bias_coefficient)
        _check_non_negative_int("SAETargetedConfig", "seed", self.seed)


# ------------------------------------------------------------------------------------------ the registry
def _caa_from_pairs(model, pairs: Sequence[ContrastivePair], layers: Sequence[int | str], config: CAAConfig,
                    **common: Any) -> SteeringVector:
    return extract_caa(model, pairs, layers, read_position=config.read_position, batch_size=config.batch_size, **common)


def _bipo_from_pairs(model, pairs: Sequence[ContrastivePair], layers: Sequence[int | str], config: BiPOConfig,
                     **common: Any) -> SteeringVector:
    return extract_bipo(model, pairs, layers, config=config, **common)


class MethodEntry(NamedTuple):
    """One extraction method: its config class, its public function, and how the CLI runs it.

    ``from_pairs(model, pairs, layers, config, progress=…, dataset=…)`` is set for methods that learn from
    contrastive pairs (``interp-steer extract``); ``cli_fields`` are config fields the CLI sets itself
    (e.g. BiPO's ``layer`` comes from ``--layers``); ``aliases`` map short option names to fields.
    """

    config_class: type
    function: Callable[..., Any]
    from_pairs: Callable[..., SteeringVector] | None
    summary: str
    cli_fields: tuple[str, ...] = ()
    aliases: Mapping[str, str] = types.MappingProxyType({})
    one_layer: bool = False


EXTRACTION_METHODS: Mapping[str, MethodEntry] = types.MappingProxyType({
    "caa": MethodEntry(CAAConfig, extract_caa, _caa_from_pairs,
                       "Contrastive Activation Addition: mean of positive − negative activations"),
    "bipo": MethodEntry(BiPOConfig, extract_bipo, _bipo_from_pairs,
                        "Bi-directional Preference Optimisation: a vector trained with a DPO-style loss",
                        cli_fields=("layer",), aliases=types.MappingProxyType({"steps": "max_steps"}), one_layer=True),
    "pca_diff": MethodEntry(PCAConfig, extract_pca_diff, extract_pca_diff,
                            "RepE PCA: PC1 of the paired differences ±(h⁺ − h⁻)/2, oriented, at the CAA norm"),
    "pca_centred": MethodEntry(PCAConfig, extract_pca_centred, extract_pca_centred,
                               "centred PCA: PC1 of the stacked activations minus their mean, oriented, at the CAA norm"),
    "probe": MethodEntry(ProbeConfig, extract_probe, extract_probe,
                         "linear probe: unit weight of a logistic regression h⁺ → 1, h⁻ → 0 without intercept"),
    "mean_centring": MethodEntry(MeanCentringConfig, extract_mean_centring, extract_mean_centring,
                                 "mean-centring: mean activation on the positives minus the neutral corpus's mean"),
    "reps": MethodEntry(RePSConfig, extract_reps, extract_reps,
                        "RePS: reference-free length-normalised preference training with a null intervention",
                        cli_fields=("layer",), one_layer=True),
    "sae_targeted": MethodEntry(SAETargetedConfig, build_sae_targeted_vector, None,
                                "SAE-targeted steering: needs an SAE and target features, not contrastive pairs"),
})
"""Method name → :class:`MethodEntry` ``(config_class, function, from_pairs, summary, …)``."""


def method_entry(name: str, option: str = "method") -> MethodEntry:
    """The registry entry of ``name`` (ConfigError naming ``option`` and the valid names otherwise)."""
    if name not in EXTRACTION_METHODS:
        raise ConfigError(f"{option} {name!r} unknown; choose one of {sorted(EXTRACTION_METHODS)}")
    return EXTRACTION_METHODS[name]


def extract(method: str, model, pairs: Sequence[ContrastivePair], layers: Sequence[int | str], config: Any = None,
            *, progress: bool = True, dataset: str | None = None) -> SteeringVector:
    """Run a pair-based method by name with its config (default: the config class's defaults)."""
    entry = method_entry(method)
    if entry.from_pairs is None:
        raise ConfigError(f"method {method!r} does not learn from contrastive pairs ({entry.summary}); "
                          f"call {entry.function.__name__}() instead")
    if config is None:
        config = entry.config_class()
    if not isinstance(config, entry.config_class):
        raise ConfigError(f"method {method!r} takes a {entry.config_class.__name__}, got {type(config).__name__}")
    return entry.from_pairs(model, pairs, layers, config, progress=progress, dataset=dataset)


# ------------------------------------------------------------------------------------------ field types
@dataclass(frozen=True)
class ConfigField:
    """A config field as the CLI shows it: name, type annotation, default (``MISSING`` if required), help."""

    name: str
    annotation: Any
    default: Any
    help: str = ""

    @property
    def type_name(self) -> str:
        return _type_name(self.annotation)


def config_fields(config_class: type) -> list[ConfigField]:
    """The fields of a config dataclass with their resolved types and defaults."""
    hints = typing.get_type_hints(config_class)
    out = []
    for f in fields(config_class):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        out.append(ConfigField(f.name, hints[f.name], default, str(f.metadata.get("help", ""))))
    return out


def describe_config(config_class: type, *, exclude: Sequence[str] = (), aliases: Mapping[str, str] | None = None) -> str:
    """A plain-text table of ``config_class``'s fields (name, type, default, help) for ``--help-method``."""
    rows = [f for f in config_fields(config_class) if f.name not in exclude]
    reverse = {target: alias for alias, target in (aliases or {}).items()}
    names = [f.name + (f" (or {reverse[f.name]})" if f.name in reverse else "") for f in rows]
    defaults = ["required" if f.default is MISSING else "none" if f.default is None else json.dumps(f.default)
                for f in rows]
    width_name = max(len("field"), *(len(n) for n in names))
    width_default = max(len("default"), *(len(d) for d in defaults))
    width_type = max(len("type"), *(len(f.type_name) for f in rows))
    lines = [f"  {name:<{width_name}}  {f.type_name:<{width_type}}  {default:<{width_default}}  {f.help}".rstrip()
             for name, f, default in zip(names, rows, defaults)]
    header = f"  {'field':<{width_name}}  {'type':<{width_type}}  {'default':<{width_default}}  help"
    return "\n".join([header, *lines])


_NONE_WORDS = {"none", "null"}
_TRUE_WORDS, _FALSE_WORDS = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def coerce_field(config_class: type, name: str, text: str) -> Any:
    """Convert the string ``text`` to the type of ``config_class``'s field ``name``.

    Handles ``int``, ``float``, ``str``, ``bool``, ``Literal[...]`` and unions of them (``None`` spelled
    ``none`` / ``null``); ConfigError naming the field and the expected type otherwise.
    """
    by_name = {f.name: f for f in config_fields(config_class)}
    if name not in by_name:
        raise ConfigError(f"unknown {config_class.__name__} field {name!r}; valid fields: {sorted(by_name)}")
    annotation = by_name[name].annotation
    value = _coerce(annotation, text.strip())
    if value is _FAIL:
        expected = _type_name(annotation)
        if "float" in expected.split("|") and _is_non_finite_float(text):
            expected = "a finite " + expected
        raise ConfigError(f"{config_class.__name__}.{name} expects {expected}, got {text!r}")
    return value


def _is_non_finite_float(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


_FAIL = object()


def _coerce(annotation: Any, text: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        # try the narrower types first so "3" is an int in ``int | str`` and "none" is None
        order = sorted(options, key=lambda a: {type(None): 0, bool: 1, int: 2, float: 3}.get(a, 4))
        for option in order:
            value = _coerce(option, text)
            if value is not _FAIL:
                return value
        return _FAIL
    if origin is Literal:
        return text if text in [str(a) for a in typing.get_args(annotation)] else _FAIL
    if annotation is type(None):
        return None if text.lower() in _NONE_WORDS else _FAIL
    if annotation is bool:
        lowered = text.lower()
        return True if lowered in _TRUE_WORDS else False if lowered in _FALSE_WORDS else _FAIL
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            return _FAIL
    if annotation is float:
        try:
            value = float(text)
        except ValueError:
            return _FAIL
        return value if math.isfinite(value) else _FAIL
    if annotation is str:
        return text if text else _FAIL
    return _FAIL


__all__ = [
    "BiPOConfig", "CAAConfig", "MeanCentringConfig", "PCAConfig", "ProbeConfig", "RePSConfig", "ConfigField", "EXTRACTION_METHODS", "MethodEntry", "SAETargetedConfig", "coerce_field",
    "config_fields", "describe_config", "extract", "method_entry",
]

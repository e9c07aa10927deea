"""Typed job configurations: dataclasses validated in ``__post_init__`` with a JSON round trip and a resume guard.

A field's default and its ``metadata["help"]`` are the one source of the matching command-line option: the CLI's
:func:`interp_steer.cli.config_options.config_option` and the studies' :func:`add_config_argument` read them. The
configs the CLI builds options from (scan, tune, compare) live here, so the CLI loads them without pandas or torch;
the job modules re-export them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, TypeVar

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


RESULT_DEFINING = ("model", "multipliers", "n_train", "n_test", "test_fraction", "framing", "seed", "read_position", "method",
                   "split_order", "table_format", "scale")
"""Config fields a resumed scan must share with the run that wrote the directory."""

SPLIT_ORDER = "letter-balanced"
"""How :func:`~interp_steer.data.train_test_split` orders each half (prefixes balanced between (A) and (B)).
Configs written before this field existed read back as ``"file-order"``, so resuming such a directory is refused
instead of silently mixing test slices."""

DEFAULT_MULTIPLIERS = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
VectorScale = Literal["raw", "resid_norm"]


@dataclass
class ScanConfig(JobConfig):
    """What a layer scan computes; saved as ``config.json`` beside the results.

    ``n_train`` / ``n_test`` / ``test_fraction`` / ``framing`` / ``seed`` describe how the data provider built
    each dataset's split (see :func:`registry_pairs`); they are recorded so a resume cannot mix settings.
    ``engine="fast"`` evaluates a unit's layers in one
    :func:`~interp_steer.evaluation.fast_engine.fast_propensities` call (prompt prefix once, each layer resumed
    from its recorded residual); ``"batched"`` runs :func:`compute_propensities` per layer. Both give the same
    numbers (to ~1e-5), so the engine is not result-defining and may differ between a run and its resume.
    ``layers_per_unit`` splits each dataset's layers into work units of that many layers (``None``: one unit per
    dataset); smaller units spread a one-dataset scan over more workers. ``device`` is where workers load the model.
    ``scale="resid_norm"`` rescales each layer's CAA direction to the mean residual-stream norm at that layer (over
    both sides of the same train pairs, at the read position), so multiplier ``m`` adds ``m`` typical residual
    lengths; ``"raw"`` (default) uses the mean difference as it is.
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = RESULT_DEFINING
    LEGACY_DEFAULTS: ClassVar[dict] = {"split_order": "file-order", "scale": "raw"}
    JOB: ClassVar[str] = "scan"

    datasets: list[str]
    layers: list[int]
    model: str = model_field()
    multipliers: list[float] = option_field(default_factory=lambda: list(DEFAULT_MULTIPLIERS),
                                            help="comma-separated steering multipliers")
    n_train: int | None = option_field(None, help="at most N training pairs per dataset (0: all of the train split)")
    n_test: int | None = option_field(None, help="at most N test pairs per dataset (0: all of the test split)")
    test_fraction: float = option_field(0.5, help="test share of each dataset's seeded split")
    framing: str | None = option_field(None, help="ab or free_text (default: each dataset's own)")
    seed: int = option_field(0, help="split seed")
    batch_size: int = option_field(32, help="sequences per forward pass")
    read_position: str | None = None
    method: str = "caa"
    # plain str, not Literal: a wrong value gets __post_init__'s ConfigError, not a run-time type checker's error
    table_format: str = option_field("parquet", help="parquet or csv")
    engine: str = option_field("fast", help="fast (prefix cache, all layers of a unit in one pass) or batched")
    split_order: str = SPLIT_ORDER
    layers_per_unit: int | None = option_field(None, help="layers per work unit (0: all of a dataset's layers in one unit)")
    device: str = device_field()
    scale: str = "raw"  # "raw" or "resid_norm" (plain str: a wrong value gets __post_init__'s ConfigError)

    def __post_init__(self) -> None:
        self.datasets, self.layers = list(self.datasets), [int(x) for x in self.layers]
        self.multipliers = [float(m) for m in self.multipliers]
        if not self.datasets:
            raise ConfigError("ScanConfig.datasets is empty: name at least one dataset")
        repeated = sorted({d for d in self.datasets if self.datasets.count(d) > 1})
        if repeated:
            raise ConfigError(f"ScanConfig.datasets lists {', '.join(map(repr, repeated))} more than once "
                              f"(--dataset given twice?); name each dataset once")
        if not self.layers or min(self.layers) < 0:
            raise ConfigError(f"ScanConfig.layers must be non-negative ints, got {self.layers}")
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"ScanConfig.layers lists a layer more than once: {self.layers}")
        if len(self.multipliers) < 2 or len(set(self.multipliers)) != len(self.multipliers):
            raise ConfigError(f"ScanConfig.multipliers needs ≥ 2 distinct values, got {self.multipliers}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"ScanConfig.{name} must be ≥ 1 or None, got {value}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"ScanConfig.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.batch_size < 1:
            raise ConfigError(f"ScanConfig.batch_size must be ≥ 1, got {self.batch_size}")
        if self.table_format not in ("parquet", "csv"):
            raise ConfigError(f"ScanConfig.table_format must be 'parquet' or 'csv', got {self.table_format!r}")
        if self.engine not in ("fast", "batched"):
            raise ConfigError(f"ScanConfig.engine must be 'fast' or 'batched', got {self.engine!r}")
        if self.method != "caa":
            raise ConfigError(f"ScanConfig.method {self.method!r}: only 'caa' is supported by the scan")
        if self.scale not in ("raw", "resid_norm"):
            raise ConfigError(f"ScanConfig.scale must be 'raw' or 'resid_norm', got {self.scale!r}")
        if self.layers_per_unit is not None and self.layers_per_unit < 1:
            raise ConfigError(f"ScanConfig.layers_per_unit must be ≥ 1 or None, got {self.layers_per_unit}")

    def units(self) -> list["ScanUnit"]:
        """Every (dataset, layer) result of the scan, in table order."""
        return [ScanUnit(d, layer) for d in self.datasets for layer in self.layers]

    def groups(self) -> list["ScanGroup"]:
        """The scan's work units: each dataset's layers in chunks of ``layers_per_unit``."""
        size = self.layers_per_unit or len(self.layers)
        return [ScanGroup(d, tuple(self.layers[i:i + size])) for d in self.datasets
                for i in range(0, len(self.layers), size)]


@dataclass(frozen=True)
class ScanUnit:
    """One (dataset spec, layer) result of a scan; its files are named by :attr:`key`."""

    dataset: str
    layer: int

    @property
    def key(self) -> str:
        """File-name-safe, collision-free stem, e.g. ``persona_narcissism-3f2a1b7c__L012``."""
        return f"{_dataset_stem(self.dataset)}__L{self.layer:03d}"


@dataclass(frozen=True)
class ScanGroup:
    """A scan work unit: one dataset and the layers computed together. ``todo`` (default: all of ``layers``) is
    what is still missing when a run resumes; the key stays that of the whole group."""

    dataset: str
    layers: tuple[int, ...]
    todo: tuple[int, ...] | None = None

    @property
    def key(self) -> str:
        span = f"L{self.layers[0]:03d}" + (f"-{len(self.layers)}" if len(self.layers) > 1 else "")
        digest = hashlib.sha1(",".join(map(str, self.layers)).encode()).hexdigest()[:6]
        return f"{_dataset_stem(self.dataset)}__{span}-{digest}"

    @property
    def pending_layers(self) -> tuple[int, ...]:
        return self.layers if self.todo is None else self.todo

    def results(self) -> list[ScanUnit]:
        return [ScanUnit(self.dataset, layer) for layer in self.pending_layers]


def _dataset_stem(dataset: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset)[:60]
    return f"{safe}-{hashlib.sha1(dataset.encode()).hexdigest()[:8]}"


@dataclass
class CompareConfig(JobConfig):
    """Options of one comparison run; saved as ``config.json`` beside the report."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "dataset", "layer", "sae", "targets", "n_targets", "n_decoder_baselines", "n_train", "n_test", "n_texts",
        "max_text_tokens", "text_source", "n_probe", "ridge", "multipliers", "n_generations", "max_new_tokens",
        "model", "framing", "seed",
    )
    JOB: ClassVar[str] = "comparison"

    dataset: str = option_field(help="dataset spec, e.g. builtin:sentiment or persona:desire-for-acquiring-power")
    layer: int = option_field(12, help="layer (hook blocks.L.hook_resid_post); must be the SAE's layer")
    sae: str = option_field(DEFAULT_SAE, help="sae-lens SAE directory or bundled SAE name")
    # default: top ``n_targets`` features by decoder cosine with the CAA vector
    targets: list[int] | None = option_field(
        None, help="target SAE features, e.g. '812,33' (default: top by decoder cosine with CAA)")
    n_targets: int = option_field(1, help="number of target features when --targets is not given")
    n_decoder_baselines: int = option_field(1, help="decoder-direction baselines (the first targets)")
    n_train: int = option_field(60, help="train pairs (CAA extraction)")
    n_test: int = option_field(30, help="test pairs (steerability)")
    n_texts: int = option_field(40, help="fixed texts for the feature effects and the SAE-TS effect model")
    max_text_tokens: int = option_field(32, help="longest fixed text in tokens")
    text_source: str = option_field("corpus", help="texts for the feature effects: corpus (data-set text) or generated "
                                                   "(the unsteered model's own continuations of the train prompts)")
    n_probe: int = option_field(128, help="probe vectors for the SAE-TS effect model (half random, half decoder)")
    ridge: float = option_field(1e-2, help="ridge of the SAE-TS effect-model fit (raise it when n_probe << d_model)")
    multipliers: list[float] = option_field(default_factory=lambda: [-2.0, 0.0, 2.0], help="multipliers (× the CAA norm)")
    n_generations: int = option_field(2, help="test prompts with generation examples (0: none)")
    max_new_tokens: int = option_field(24, help="tokens per generation example")
    model: str = model_field()
    framing: str | None = option_field(None, help="ab or free_text (default: the dataset's own)")
    seed: int = option_field(0, help="seed of the split, the probe vectors and the random baseline")
    data_dir: str | None = option_field(None, help=DATA_DIR_HELP)
    device: str = device_field()

    def __post_init__(self) -> None:
        if self.n_train < 2 or self.n_test < 2:
            raise ConfigError(f"--n-train {self.n_train} / --n-test {self.n_test}: need at least 2 pairs each")
        if self.n_probe < 8:
            raise ConfigError(f"--n-probe {self.n_probe}: need at least 8 probe vectors for the effect model")
        if self.ridge < 0:
            raise ConfigError(f"--ridge {self.ridge}: must be ≥ 0")
        if self.text_source not in ("corpus", "generated"):
            raise ConfigError(f"--text-source {self.text_source!r}: use 'corpus' or 'generated'")
        if self.n_texts < 1:
            raise ConfigError(f"--n-texts {self.n_texts}: need at least one fixed text")
        if not any(m > 0 for m in self.multipliers) or len(set(self.multipliers)) < 2:
            raise ConfigError(f"--multipliers {self.multipliers}: need ≥ 2 distinct values, one of them positive")
        if self.targets is not None and not self.targets:
            raise ConfigError("--targets: give at least one feature id or leave it out")
        if self.n_targets < 1:
            raise ConfigError(f"--n-targets {self.n_targets}: must be ≥ 1")


DEFAULT_TUNE_MULTIPLIERS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class TuneConfig(JobConfig):
    """What a tune run computes; saved as ``config.json`` beside the results.

    ``vector``: a vector file whose direction at each of ``layers`` is tuned (``None``: CAA at each layer from the
    train split of ``dataset``). The held-out split is ``train_test_split(test_fraction, seed)``'s test part (first
    ``n_test``). ``multipliers`` are in ``units`` (``raw`` or ``norm``, see :mod:`interp_steer.evaluation.units`)
    and must include 0 (the unsteered reference of the shift). ``n_neutral`` neutral passages with greedy unsteered
    continuations of ``continuation_tokens`` tokens give the KL / ΔNLL. ``kl_budget`` (nats per token) bounds the
    KL upper 95% limit of a recommendable setting.
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "dataset", "vector", "multipliers", "units", "n_train", "n_test", "test_fraction", "framing", "seed",
        "n_neutral", "continuation_tokens", "table_format",
    )
    JOB: ClassVar[str] = "tune"

    model: str = model_field()
    dataset: str = option_field(help="behaviour dataset spec, e.g. builtin:sentiment, persona:narcissism@free_text")
    layers: list[int] = option_field(help="layers to scan: '6,12,18', '3-12' or 'all'")
    multipliers: list[float] = option_field(default_factory=lambda: list(DEFAULT_TUNE_MULTIPLIERS),
                                            help="comma-separated multipliers, including 0")
    units: str = option_field("raw", help="multiplier units: raw, or norm (× the layer's mean residual norm)")
    kl_budget: float = option_field(0.1, help="largest acceptable upper 95% limit of the mean KL, nats/token")
    vector: str | None = option_field(None, help="tune this vector file's directions (default: CAA on the train split)")
    n_train: int | None = option_field(None, help="training pairs for CAA (0: the whole train part)")
    n_test: int | None = option_field(50, help="held-out samples (0: the whole test part)")
    test_fraction: float = option_field(0.5, help="test share of the seeded split")
    framing: str | None = option_field(None, help="ab or free_text (default: the dataset's own)")
    seed: int = option_field(0, help="split and bootstrap seed")
    n_neutral: int = option_field(100, help="neutral passages for KL / ΔNLL")
    continuation_tokens: int = option_field(16, help="greedy unsteered continuation length for ΔNLL (0: none)")
    n_boot: int = option_field(2000, help="bootstrap resamples for the 95% intervals")
    batch_size: int = option_field(16, help="sequences per forward pass")
    table_format: str = option_field("csv", help="csv or parquet")
    device: str = device_field()

    def __post_init__(self) -> None:
        self.layers = [int(x) for x in self.layers]
        self.multipliers = [float(m) for m in self.multipliers]
        if not self.layers or min(self.layers) < 0 or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"--layers: need distinct non-negative layers, got {self.layers}")
        if len(set(self.multipliers)) != len(self.multipliers) or 0.0 not in self.multipliers:
            raise ConfigError(f"--multipliers must be distinct and include 0 (the unsteered reference), got {self.multipliers}")
        if not any(m > 0 for m in self.multipliers):
            raise ConfigError(f"--multipliers needs at least one positive multiplier, got {self.multipliers}")
        if not all(math.isfinite(m) for m in self.multipliers):
            raise ConfigError(f"--multipliers must be finite, got {self.multipliers}")
        from interp_steer.evaluation.units import check_units  # torch: imported when a config is built

        check_units(self.units)
        if not (math.isfinite(self.kl_budget) and self.kl_budget > 0):
            raise ConfigError(f"--kl-budget must be a positive number (nats per token), got {self.kl_budget}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {value}")
        if self.n_neutral < 1:
            raise ConfigError(f"--n-neutral must be ≥ 1, got {self.n_neutral}")
        if self.continuation_tokens < 0:
            raise ConfigError(f"--continuation-tokens must be ≥ 0, got {self.continuation_tokens}")
        if self.n_boot < 100:
            raise ConfigError(f"--n-boot must be ≥ 100, got {self.n_boot}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be ≥ 1, got {self.batch_size}")
        if self.table_format not in ("parquet", "csv"):
            raise ConfigError(f"--format {self.table_format!r}: use parquet or csv")

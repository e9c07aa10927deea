"""The job configurations the command line builds its options from (scan, compare, tune, demo).

Each is a :class:`~interp_steer.runs.config.JobConfig` dataclass whose fields carry their default and help
(``option_field``), validated in ``__post_init__``. This module imports neither pandas nor torch, so ``interp-steer
--help`` and option parsing stay fast; the job modules (``runs/scan.py``, ``runs/compare.py``, ``runs/tune.py``,
``runs/demo.py``) re-export their config.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from interp_steer.errors import ConfigError
from interp_steer.runs.config import DATA_DIR_HELP, DEFAULT_SAE, JobConfig, device_field, model_field, option_field
from interp_steer.runs.keys import dataset_stem

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
        return f"{dataset_stem(self.dataset)}__L{self.layer:03d}"


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
        return f"{dataset_stem(self.dataset)}__{span}-{digest}"

    @property
    def pending_layers(self) -> tuple[int, ...]:
        return self.layers if self.todo is None else self.todo

    def results(self) -> list[ScanUnit]:
        return [ScanUnit(self.dataset, layer) for layer in self.pending_layers]


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


DEMO_MULTIPLIERS = (-2.0, -1.0, 0.0, 1.0, 2.0)


@dataclass
class DemoConfig(JobConfig):
    """Options of the demo run (``interp-steer demo``, ``make demo``); saved as ``config.json`` beside its outputs.

    ``n_neutral`` neutral passages (with greedy unsteered continuations of ``continuation_tokens`` tokens) give the
    KL / ΔNLL side effects; ``n_boot`` bootstrap resamples give the 95% intervals."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "dataset", "framing", "layers", "eval_layer", "multipliers", "n_train", "n_test", "seed",
        "generation_multiplier", "max_new_tokens", "n_neutral", "continuation_tokens", "n_boot",
    )
    JOB: ClassVar[str] = "demo"

    model: str = model_field()
    dataset: str = option_field("builtin:sentiment", help="dataset spec")
    framing: str = option_field("free_text", help="free_text or ab")
    layers: str = option_field("6,12,18", help="layers to extract at; the propensity table uses --eval-layer (with both "
                               "left at their defaults on a registered model: the same relative depths, e.g. 4,7,11 "
                               "and 11 on gemma3-270m)")
    eval_layer: int = option_field(18, help="layer whose vector is evaluated and used for generation")
    multipliers: list[float] = option_field(default_factory=lambda: list(DEMO_MULTIPLIERS),
                                            help="comma-separated steering multipliers (must include 0)")
    n_train: int = option_field(60, help="training pairs for the CAA vectors")
    n_test: int = option_field(24, help="held-out pairs for the propensity table")
    seed: int = option_field(0, help="split seed")
    generation_multiplier: float = option_field(4.0, help="generations are shown at −M, 0 and +M")
    max_new_tokens: int = option_field(32, help="tokens generated per demo prompt and multiplier")
    n_neutral: int = option_field(12, help="neutral passages for the KL / ΔNLL side effects")
    continuation_tokens: int = option_field(16, help="greedy unsteered continuation tokens per neutral passage")
    n_boot: int = option_field(1000, help="bootstrap resamples of the 95% intervals")
    data_dir: str | None = option_field(None, help=DATA_DIR_HELP)
    device: str = device_field()

    def __post_init__(self) -> None:
        self.multipliers = [float(m) for m in self.multipliers]
        if self.framing not in ("free_text", "ab"):
            raise ConfigError(f"framing={self.framing!r}: use 'free_text' or 'ab'")
        if self.n_train < 2 or self.n_test < 2:
            raise ConfigError("n_train and n_test must be at least 2")
        if len(self.multipliers) < 2:
            raise ConfigError("at least two multipliers are needed to measure a slope")
        if not all(math.isfinite(m) for m in self.multipliers) or len(set(self.multipliers)) != len(self.multipliers):
            raise ConfigError(f"--multipliers must be distinct finite numbers, got {self.multipliers}")
        if 0.0 not in self.multipliers:
            raise ConfigError(f"--multipliers must include 0 (the unsteered reference of the shift), got {self.multipliers}")
        if self.n_neutral < 1:
            raise ConfigError(f"--n-neutral must be ≥ 1, got {self.n_neutral}")
        if self.continuation_tokens < 0:
            raise ConfigError(f"--continuation-tokens must be ≥ 0, got {self.continuation_tokens}")
        if self.n_boot < 100:
            raise ConfigError(f"--n-boot must be ≥ 100, got {self.n_boot}")

    @property
    def baseline_multiplier(self) -> float | None:
        """The multiplier the prompting baseline is compared at: the largest positive one (``None``: none)."""
        positive = [m for m in self.multipliers if m > 0]
        return max(positive) if positive else None

    @property
    def generation_multipliers(self) -> tuple[float, float, float]:
        return (-self.generation_multiplier, 0.0, self.generation_multiplier)

    def layer_list(self, n_layers: int) -> list[int]:
        """``layers`` (``"6,12,18"``, ``"3-5"`` or ``"all"``) for an ``n_layers`` model, plus ``eval_layer``."""
        text = self.layers.strip()
        try:
            if text == "all":
                layers = list(range(n_layers))
            else:
                layers = []
                for part in filter(None, (p.strip() for p in text.split(","))):
                    lo, dash, hi = part.partition("-")
                    layers += list(range(int(lo), int(hi) + 1)) if dash and lo else [int(part)]
        except ValueError:
            raise ConfigError(f"--layers {self.layers!r}: expected e.g. '12', '3,6,12', '3-12' or 'all'") from None
        if self.eval_layer not in layers:
            layers.append(self.eval_layer)
        bad = [layer for layer in layers if not 0 <= layer < n_layers]
        if bad:
            raise ConfigError(f"--layers: layer(s) {bad} out of range for a {n_layers}-layer model")
        return list(dict.fromkeys(layers))

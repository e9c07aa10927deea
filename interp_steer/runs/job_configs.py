"""The job configurations the command line builds its options from (scan, compare, tune, demo).

Each is a :class:`~interp_steer.config.JobConfig` dataclass whose fields carry their default and help
(``option_field``), validated in ``__post_init__`` by the :mod:`interp_steer.config.checks` helpers, whose messages
name the command-line option (the CLI does not check them again). This module imports neither pandas nor torch, so ``interp-steer
--help`` and option parsing stay fast; the job modules (``runs/scan.py``, ``runs/compare.py``, ``runs/tune.py``,
``runs/demo.py``) re-export their config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar, Literal

from interp_steer.config import (
    COMPARE_MULTIPLIERS,
    DEFAULT_SAE,
    TAN_MULTIPLIERS,
    TUNE_MULTIPLIERS,
    UNIT_MULTIPLIERS,
    JobConfig,
    check_layer_list,
    data_dir_field,
    device_field,
    model_field,
    multipliers_field,
    option_field,
    parse_layers,
    require_choice,
    require_fraction,
    require_int,
    require_multipliers,
    require_number,
)
from interp_steer.config.keys import dataset_stem
from interp_steer.errors import ConfigError

RESULT_DEFINING = ("model", "multipliers", "n_train", "n_test", "test_fraction", "framing", "seed", "read_position", "method",
                   "split_order", "table_format", "scale")
"""Config fields a resumed scan must share with the run that wrote the directory."""

SPLIT_ORDER = "letter-balanced"
"""How :func:`~interp_steer.data.train_test_split` orders each half (prefixes balanced between (A) and (B)).
Configs written before this field existed read back as ``"file-order"``, so resuming such a directory is refused
instead of silently mixing test slices."""

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
    OPTION_NAMES: ClassVar[dict[str, str]] = {"datasets": "--dataset", "table_format": "--format"}
    JOB: ClassVar[str] = "scan"

    datasets: list[str]
    layers: list[int]
    model: str = model_field()
    multipliers: list[float] = multipliers_field(TAN_MULTIPLIERS)
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
        if not self.datasets:
            raise ConfigError("--dataset: name at least one dataset")
        repeated = sorted({d for d in self.datasets if self.datasets.count(d) > 1})
        if repeated:
            raise ConfigError(f"--dataset lists {', '.join(map(repr, repeated))} more than once; name each dataset once")
        check_layer_list(self.layers)
        require_multipliers(self)
        require_int(self, "n_train", zero_means="all")
        require_int(self, "n_test", zero_means="all")
        require_fraction(self, "test_fraction")
        require_int(self, "batch_size")
        require_choice(self, "table_format", ("parquet", "csv"))
        require_choice(self, "engine", ("fast", "batched"))
        require_choice(self, "method", ("caa",))
        require_choice(self, "scale", ("raw", "resid_norm"))
        require_int(self, "layers_per_unit", zero_means="all")

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
    multipliers: list[float] = multipliers_field(COMPARE_MULTIPLIERS, help="multipliers (× the CAA norm)")
    n_generations: int = option_field(2, help="test prompts with generation examples (0: none)")
    max_new_tokens: int = option_field(24, help="tokens per generation example")
    model: str = model_field()
    framing: str | None = option_field(None, help="ab or free_text (default: the dataset's own)")
    seed: int = option_field(0, help="seed of the split, the probe vectors and the random baseline")
    data_dir: str | None = data_dir_field()
    device: str = device_field()

    def __post_init__(self) -> None:
        for name, minimum in (("n_train", 2), ("n_test", 2), ("n_probe", 8), ("n_texts", 1), ("max_text_tokens", 1),
                              ("n_targets", 1), ("n_decoder_baselines", 0), ("n_generations", 0), ("max_new_tokens", 1)):
            require_int(self, name, minimum)
        require_number(self, "ridge", minimum=0.0)
        require_choice(self, "text_source", ("corpus", "generated"))
        require_multipliers(self, positive=True)
        if self.targets is not None and not self.targets:
            raise ConfigError("--targets: give at least one feature id or leave it out")




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
    OPTION_NAMES: ClassVar[dict[str, str]] = {"table_format": "--format"}
    JOB: ClassVar[str] = "tune"

    model: str = model_field()
    dataset: str = option_field(help="behaviour dataset spec, e.g. builtin:sentiment, persona:narcissism@free_text")
    layers: list[int] = option_field(help="layers to scan: '6,12,18', '3-12' or 'all'")
    multipliers: list[float] = multipliers_field(TUNE_MULTIPLIERS, help="comma-separated multipliers, including 0")
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
        check_layer_list(self.layers)
        require_multipliers(self, zero=True, positive=True)
        from interp_steer.evaluation.units import check_units  # torch: imported when a config is built

        check_units(self.units)
        require_number(self, "kl_budget", positive=True, units=" (nats per token)")
        require_fraction(self, "test_fraction")
        require_int(self, "n_train", zero_means="all")
        require_int(self, "n_test", zero_means="all")
        require_int(self, "n_neutral")
        require_int(self, "continuation_tokens", 0)
        require_int(self, "n_boot", 100)
        require_int(self, "batch_size")
        require_choice(self, "table_format", ("parquet", "csv"))




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
    multipliers: list[float] = multipliers_field(UNIT_MULTIPLIERS, help="comma-separated steering multipliers (must include 0)")
    n_train: int = option_field(60, help="training pairs for the CAA vectors")
    n_test: int = option_field(24, help="held-out pairs for the propensity table")
    seed: int = option_field(0, help="split seed")
    generation_multiplier: float = option_field(4.0, help="generations are shown at −M, 0 and +M")
    max_new_tokens: int = option_field(32, help="tokens generated per demo prompt and multiplier")
    n_neutral: int = option_field(12, help="neutral passages for the KL / ΔNLL side effects")
    continuation_tokens: int = option_field(16, help="greedy unsteered continuation tokens per neutral passage")
    n_boot: int = option_field(1000, help="bootstrap resamples of the 95% intervals")
    data_dir: str | None = data_dir_field()
    device: str = device_field()

    def __post_init__(self) -> None:
        require_choice(self, "framing", ("free_text", "ab"))
        requested = parse_layers(self.layers, None)  # syntax now; the range once the model is known
        if requested and self.eval_layer not in requested:  # "all" ([]) is checked against the model later
            raise ConfigError(f"--eval-layer {self.eval_layer} is not one of --layers {self.layers!r}")
        require_int(self, "n_train", 2)
        require_int(self, "n_test", 2)
        require_multipliers(self, zero=True, why_zero="the unsteered reference of the shift")
        require_number(self, "generation_multiplier")
        require_int(self, "max_new_tokens")
        require_int(self, "n_neutral")
        require_int(self, "continuation_tokens", 0)
        require_int(self, "n_boot", 100)

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
        layers = parse_layers(self.layers, n_layers)
        if self.eval_layer not in layers:
            layers.append(self.eval_layer)
        parse_layers(",".join(map(str, layers)), n_layers)  # --eval-layer out of range: the same message
        return layers

"""The configs of the analysis commands (``evaluate``, ``explain``, ``why``), loadable without pandas or torch.

Like :mod:`interp_steer.runs.job_configs`: each field carries its default and help, so the command's options are
generated from it (:func:`interp_steer.cli.config_options.config_option`) and the library and the CLI run the same
experiment by default; ``__post_init__`` validates with messages naming the option. The job modules
(``runs/evaluate.py``, ``runs/explain.py``, ``runs/why.py``) re-export their config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

from interp_steer.config import (
    DEFAULT_SAE,
    HALF_STEP_MULTIPLIERS,
    TAN_MULTIPLIERS,
    UNIT_MULTIPLIERS,
    JobConfig,
    data_dir_field,
    device_field,
    model_field,
    multipliers_field,
    option_field,
    require_choice,
    require_fraction,
    require_int,
    require_multipliers,
    require_number,
)
from interp_steer.errors import ConfigError

CAPABILITY_SPECS = {"mmlu": "caa-test:mmlu", "truthfulqa": "caa-test:truthfulqa"}
"""``--capability`` names and the letter-balanced A/B sets they score."""


def parse_capability(text: str | Sequence[str] | None) -> list[str]:
    """``"mmlu,truthfulqa"`` (or a list) → the names, checked; ``""`` / ``None`` → ``[]``. One-line ConfigError
    naming ``--capability`` for an unknown or repeated name."""
    if text is None:
        return []
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    items = [s for s in items if s]
    bad = [s for s in items if s not in CAPABILITY_SPECS]
    if bad:
        raise ConfigError(f"--capability {bad[0]!r}: use a comma-separated subset of {', '.join(CAPABILITY_SPECS)}")
    if len(set(items)) != len(items):
        raise ConfigError(f"--capability {','.join(items)!r}: a name is repeated")
    return items


@dataclass
class EvaluateConfig(JobConfig):
    """What ``evaluate`` computes; saved as ``config.json``. ``vector_sha1`` identifies the vector file's contents
    (so a directory is not resumed with a changed vector under the same name); ``random_baselines`` and
    ``capability`` may grow between a run and its resume (the new units are added).

    Side effects: ``neutral_n`` neutral passages (0: none) with greedy unsteered continuations of
    ``continuation_tokens`` tokens; ``capability`` names (:data:`CAPABILITY_SPECS`) with ``capability_n``
    letter-balanced items each; ``n_generations`` prompts of ``max_new_tokens`` tokens; ``baseline``: the
    SYS± prompting baseline at the recommended multiplier (within ``kl_budget``). Shift, KL and the baseline are
    relative to the unsteered model, so they need multiplier 0 among ``multipliers``.
    """

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "vector_sha1", "layer", "dataset", "model", "multipliers", "split", "test_fraction", "seed", "n", "framing",
        "table_format", "units", "neutral_n", "continuation_tokens", "capability_n", "n_generations",
        "max_new_tokens",
    )
    OPTION_NAMES: ClassVar[dict[str, str]] = {"table_format": "--format"}
    JOB: ClassVar[str] = "evaluation"

    vector: str = option_field(help="steering vector file (.safetensors)")
    dataset: str = option_field(help="dataset spec, e.g. persona:narcissism, xrisk:corrigible-neutral-HHH")
    model: str = model_field()
    multipliers: list[float] = multipliers_field(TAN_MULTIPLIERS, help="comma-separated steering multipliers (include 0)")
    layer: int | None = option_field(None, help="which layer of a multi-layer vector to evaluate")
    split: str = option_field("test", help="'test': the held-out part of a seeded split; 'all': every pair")
    test_fraction: float = option_field(0.5, help="test share of the split (use the one the vector was trained with)")
    seed: int = option_field(0, help="split seed")
    n: int | None = option_field(None, help="evaluate at most N samples (0: all)")
    random_baselines: int = option_field(0, help="also evaluate this many norm-matched random vectors")
    framing: str | None = option_field(None, help="ab or free_text (default: the dataset's own)")
    batch_size: int = option_field(32, help="sequences per forward pass")
    table_format: str = option_field("parquet", help="parquet or csv")
    device: str = device_field()
    vector_sha1: str = ""
    vector_name: str = ""
    units: str = option_field("raw", help="multiplier units: raw, or norm (× the layer's mean residual norm)")
    neutral_n: int = option_field(64, help="neutral passages for KL / ΔNLL (0: skip the side effects)")
    continuation_tokens: int = option_field(16, help="greedy unsteered continuation length for ΔNLL (0: none)")
    capability: list[str] = option_field(
        default_factory=list, help="capability under steering: 'mmlu', 'truthfulqa' or 'mmlu,truthfulqa'")
    capability_n: int = option_field(100, help="letter-balanced items per capability set")
    n_generations: int = option_field(3, help="evaluated prompts to generate from at every multiplier (0: none)")
    max_new_tokens: int = option_field(32, help="tokens per generation")
    baseline: bool = option_field(True, help="the SYS± persona-prompt baseline at the recommended multiplier")
    kl_budget: float = option_field(0.1, help="recommend the largest shift whose KL upper 95% limit is ≤ this")
    n_boot: int = option_field(2000, help="bootstrap resamples for the 95% intervals")

    def __post_init__(self) -> None:
        require_multipliers(self)
        require_choice(self, "split", ("test", "all"))
        require_fraction(self, "test_fraction")
        require_choice(self, "table_format", ("parquet", "csv"))
        require_int(self, "n", zero_means="all")
        require_int(self, "random_baselines", 0)
        require_int(self, "batch_size")
        from interp_steer.evaluation.units import check_units  # torch: imported when a config is built

        check_units(self.units)
        require_number(self, "kl_budget", positive=True, units=" (nats per token)")
        self.capability = parse_capability(self.capability)
        for name, minimum in (("neutral_n", 0), ("continuation_tokens", 0), ("capability_n", 2),
                              ("n_generations", 0), ("max_new_tokens", 1), ("n_boot", 100)):
            require_int(self, name, minimum)
        if (self.neutral_n or self.baseline) and 0.0 not in self.multipliers:
            raise ConfigError(f"--multipliers {self.multipliers} must include 0 (the unsteered reference of the shift, "
                              "KL and baseline); or pass --neutral-n 0 --no-baseline")
        self.vector_name = self.vector_name or Path(self.vector).stem


@dataclass
class ExplainConfig(JobConfig):
    """Options of one explain run; saved as ``config.json`` beside the report. ``vector_sha1`` identifies the
    vector file's contents for the resume guard (filled in by :func:`~interp_steer.runs.explain.run_explain` when
    empty)."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "vector_sha1", "dataset", "layer", "n", "sae", "model", "framing", "multipliers", "patch_multiplier", "eps",
        "test_fraction", "seed",
    )
    JOB: ClassVar[str] = "explain report"

    vector: str = option_field(help="steering vector file (.safetensors)")
    dataset: str = option_field(help="dataset spec, e.g. persona:desire-for-acquiring-power or builtin:sentiment")
    layer: int | None = option_field(None, help="layer of the vector to use (needed if the vector has several)")
    n: int = option_field(40, help="number of held-out samples to analyse")
    sae: str | None = option_field(None, help="sae-lens SAE directory or bundled SAE name (optional)")
    model: str = model_field()
    framing: str | None = option_field(None, help="ab or free_text (default: the dataset's own)")
    multipliers: list[float] = multipliers_field(UNIT_MULTIPLIERS, help="multipliers of the steerability fit (must include 0)")
    patch_multiplier: float | None = option_field(
        None, help="multiplier for patching/direct effects (default: max |multiplier|)")
    eps: float | None = option_field(None, help="|slope| ≤ eps is 'insensitive' (default 0.1 × median |slope|)")
    test_fraction: float = option_field(0.2, help="test share of the split the held-out samples come from")
    seed: int = option_field(0, help="seed of the train/test split (held-out samples come from its test part)")
    data_dir: str | None = data_dir_field()
    device: str = device_field()
    vector_sha1: str = ""

    def __post_init__(self) -> None:
        require_int(self, "n", 2)
        require_multipliers(self, zero=True)
        require_number(self, "patch_multiplier", nonzero=True, optional=True)
        if self.patch_multiplier is None:
            self.patch_multiplier = max(abs(m) for m in self.multipliers)
        require_number(self, "eps", minimum=0.0, optional=True)
        require_fraction(self, "test_fraction")


WHY_CASES = ("builtin:sentiment@9", "persona:narcissism@free_text@18")
"""The ``why`` cases run unless told otherwise (``<dataset spec>@<layer>``)."""
DEFAULT_CASES = list(WHY_CASES)


def parse_case(case: str) -> tuple[str, int]:
    """``"<dataset spec>@<layer>"`` → ``(spec, layer)``; ConfigError naming the case otherwise."""
    spec, _, layer = case.rpartition("@")
    if not spec or not layer.isdigit():
        raise ConfigError(f"case {case!r}: write it as <dataset spec>@<layer>, e.g. builtin:sentiment@9")
    return spec, int(layer)


def case_key(case: str) -> str:
    """A file-name-safe folder name for a case, e.g. ``sentiment_l9`` or ``narcissism_l9``."""
    spec, layer = parse_case(case)
    name = spec.split(":", 1)[-1].replace("@free_text", "")
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name) + f"_l{layer}"


@dataclass
class WhyConfig(JobConfig):
    """Options of a ``why`` run; saved as ``config.json`` beside the reports."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "multipliers", "patch_multiplier", "n_train", "n_test", "test_fraction", "seed", "sae", "n_boot",
        "n_folds", "timing_sites", "patch_layer_step", "head_regions",
    )
    JOB: ClassVar[str] = "why (anti-steerable) report"

    cases: list[str] = option_field(default_factory=lambda: list(WHY_CASES),
                                    help="comma-separated free-text cases <dataset spec>@<layer>")
    model: str = model_field()
    multipliers: list[float] = multipliers_field(HALF_STEP_MULTIPLIERS, help="multipliers of the slope fit (≥ 3, including 0)")
    patch_multiplier: float | None = option_field(
        None, help="multiplier of patching / direct effects / views (default: max |multiplier|)")
    n_train: int = option_field(40, help="training pairs of each case's CAA vector")
    n_test: int = option_field(40, help="held-out samples analysed per case")
    test_fraction: float = option_field(0.5, help="test share of each case's seeded split")
    seed: int = option_field(0, help="seed of the splits and bootstraps")
    sae: str | None = option_field(DEFAULT_SAE, help="SAE for the latent table ('' for none)")
    n_boot: int = option_field(1000, help="bootstrap draws of every CI")
    n_folds: int = option_field(5, help="folds of the out-of-fold predictor")
    timing_sites: int = option_field(96, help="sites timed with full-sequence reruns vs the prefix cache")
    patch_layer_step: int = option_field(1, help="patch every k-th layer after the vector's")
    head_regions: list[str] = option_field(default_factory=lambda: ["prompt", "completion", "all"],
                                           help="regions over which each head is patched")
    batch_size: int = option_field(64, help="sequences per forward pass")
    data_dir: str | None = data_dir_field()
    device: str = device_field()

    def __post_init__(self) -> None:
        self.cases = list(self.cases)
        if not self.cases:
            raise ConfigError("--cases: name at least one case (<dataset spec>@<layer>)")
        keys = [case_key(c) for c in self.cases]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"--cases {self.cases}: two cases map to the same folder")
        for case in self.cases:
            spec, _ = parse_case(case)
            if "free_text" not in spec and not spec.startswith("builtin:"):
                raise ConfigError(f"case {case!r}: the why report needs a free-text dataset (e.g. persona:x@free_text)")
        require_multipliers(self, minimum=3, zero=True)
        require_number(self, "patch_multiplier", nonzero=True, optional=True)
        if self.patch_multiplier is None:
            self.patch_multiplier = max(abs(m) for m in self.multipliers)
        require_int(self, "n_folds", 2)
        require_int(self, "n_test", 2 * self.n_folds if isinstance(self.n_folds, int) else 2)
        require_int(self, "n_train", 2)
        require_fraction(self, "test_fraction")
        require_int(self, "patch_layer_step")
        require_int(self, "timing_sites", 0)
        require_int(self, "batch_size")
        self.head_regions = list(self.head_regions)
        bad = [r for r in self.head_regions if r not in ("prompt", "completion", "all")]
        if bad or not self.head_regions:
            raise ConfigError(f"--head-regions {self.head_regions}: choose from prompt, completion, all")
        require_int(self, "n_boot", 100)

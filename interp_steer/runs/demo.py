"""The main job behind ``make demo``: extract, generate, measure and plot on the embedded model, on the runner.

Units: ``vector`` (the CAA vector at ``eval_layer``, saved as ``caa_layer<L>.safetensors``), ``generations``
(steered completions of two prompts, ``generations.json``) and one ``propensity-L<layer>`` per extraction layer
(``units/propensity-L<layer>.csv``). The CAA directions they share are extracted once per worker (all layers in
one pass) and cached on the job. The combined outputs are ``propensity.csv``, ``layer_summary.csv`` and
``propensity_curves.png``. Everything here calls the same library functions a notebook would; the CLI only
parses options.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar

import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.runs.config import JobConfig
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.runner import Job, UnitFiles, run_job

if TYPE_CHECKING:
    from interp_steer.steering import SteeringVector

DEMO_PROMPTS = ("What do you think about rainy Monday mornings?", "Describe your feelings about cooking dinner.")


@dataclass
class DemoConfig(JobConfig):
    """Options of the demo run; saved as ``config.json`` beside its outputs."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "dataset", "framing", "layers", "eval_layer", "multipliers", "n_train", "n_test", "seed",
        "generation_multiplier", "max_new_tokens",
    )
    JOB: ClassVar[str] = "demo"

    model: str = "smollm2-135m"
    dataset: str = "builtin:sentiment"
    framing: str = "free_text"
    layers: str = "6,12,18"
    eval_layer: int = 18
    multipliers: list[float] = field(default_factory=lambda: [-2.0, -1.0, 0.0, 1.0, 2.0])
    n_train: int = 60
    n_test: int = 40
    seed: int = 0
    generation_multiplier: float = 4.0
    max_new_tokens: int = 32
    data_dir: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.multipliers = [float(m) for m in self.multipliers]
        if self.framing not in ("free_text", "ab"):
            raise ConfigError(f"framing={self.framing!r}: use 'free_text' or 'ab'")
        if self.n_train < 2 or self.n_test < 2:
            raise ConfigError("n_train and n_test must be at least 2")
        if len(self.multipliers) < 2:
            raise ConfigError("at least two multipliers are needed to measure a slope")

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


@dataclass(frozen=True)
class DemoUnit:
    """``vector``, ``generations`` or ``propensity`` at one layer."""

    kind: str
    layer: int | None = None

    @property
    def key(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}-L{self.layer:03d}"


class DemoJob(Job):
    """The demo's units for a model with the given resolved ``layers``."""

    config: DemoConfig

    def __init__(self, config: DemoConfig, layers: list[int]) -> None:
        self.config, self.layers = config, list(layers)
        self._split = None
        self._vectors: dict[int, SteeringVector] | None = None

    def units(self) -> list[DemoUnit]:
        return [DemoUnit("vector"), DemoUnit("generations"), *(DemoUnit("propensity", layer) for layer in self.layers)]

    def unit_files(self, unit: DemoUnit) -> list[str]:
        if unit.kind == "vector":
            return [f"caa_layer{self.config.eval_layer}.safetensors"]
        if unit.kind == "generations":
            return ["generations.json"]
        return [f"units/propensity-L{unit.layer:03d}.csv"]

    def split(self):
        """``(train, test)``: the seeded split's first ``n_train`` training pairs and its held-out pairs."""
        if self._split is None:
            from interp_steer.data import load_dataset, train_test_split

            cfg = self.config
            pairs = load_dataset(cfg.dataset, data_dir=cfg.data_dir, framing=cfg.framing)
            train, test = train_test_split(pairs, test_fraction=min(0.5, cfg.n_test / len(pairs)), seed=cfg.seed)
            self._split = (train[: cfg.n_train], test)
        return self._split

    def vectors(self, model) -> dict:
        """One single-layer CAA vector per layer, from one activation pass over the training pairs (cached)."""
        if self._vectors is None:
            from interp_steer.methods import collect_contrastive_activations, mean_difference
            from interp_steer.models import describe_processing
            from interp_steer.steering import Provenance, SteeringVector

            cfg, (train, _) = self.config, self.split()
            acts = collect_contrastive_activations(model, train, self.layers)
            vectors = {}
            for hook_name, direction in mean_difference(acts).items():
                layer = int(hook_name.split(".")[1])
                provenance = Provenance(model=cfg.model, method="caa", dataset=cfg.dataset, n_pairs=len(train),
                                        read_position=acts.read_position, layers=[layer],
                                        model_processing=describe_processing(model), extra={"framing": cfg.framing})
                vectors[layer] = SteeringVector({hook_name: direction}, provenance)
            self._vectors = vectors
        return self._vectors

    def compute(self, unit: DemoUnit, model) -> UnitFiles:
        cfg = self.config
        vectors = self.vectors(model)
        if unit.kind == "vector":
            return [(self.unit_files(unit)[0], vectors[cfg.eval_layer])]
        if unit.kind == "generations":
            from interp_steer.steering import chat_prompt, generate

            rows = []
            for prompt in DEMO_PROMPTS:
                text, row = chat_prompt(model, prompt), {"prompt": prompt}
                for mult in (-cfg.generation_multiplier, 0.0, cfg.generation_multiplier):
                    row[f"x{mult:+g}"] = generate(model, text, vectors[cfg.eval_layer], mult,
                                                  max_new_tokens=cfg.max_new_tokens).strip()
                rows.append(row)
            return [("generations.json", rows)]
        from interp_steer.evaluation import compute_propensities

        table = compute_propensities(model, self.split()[1], vectors[unit.layer], cfg.multipliers, progress=False)
        return [(self.unit_files(unit)[0], table)]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        from interp_steer.evaluation import steerability, summarize_steerability

        paths = [out_dir / self.unit_files(DemoUnit("propensity", layer))[0] for layer in self.layers]
        tables = [read_table(p) for p in paths if p.exists()]
        if not tables:
            return {}
        table = pd.concat(tables, ignore_index=True)
        write_table_atomic(table, out_dir / "propensity.csv")
        summary = summarize_steerability(steerability(table), by=["layer"])
        write_table_atomic(summary, out_dir / "layer_summary.csv")
        return {"table": table, "summary": summary}


def run_demo(config: DemoConfig, out_dir: Path, echo: Callable[[str], None] = print, *, executor=None) -> dict:
    """Run the demo and write ``caa_layer<L>.safetensors``, ``generations.json``, ``propensity.csv``,
    ``layer_summary.csv`` and ``propensity_curves.png``; print what it found. A rerun into the same directory
    reuses the finished units."""
    from interp_steer.models import load_model
    from interp_steer.runs.runner import preflight
    from interp_steer.steering import SteeringVector
    from interp_steer.viz.plots import plot_propensity_curves

    out_dir = preflight(config, out_dir)
    started = time.perf_counter()
    echo(f"loading {config.model} …")
    model = load_model(config.model, device=config.device)
    job = DemoJob(config, config.layer_list(model.cfg.n_layers))
    train, test = job.split()
    echo(f"{config.dataset} ({config.framing}): {len(train)} train / {len(test)} held-out pairs; layers {job.layers}")
    report = run_job(job, out_dir, model=model, executor=executor, progress=False)
    report.raise_if_failed()

    vector_path = out_dir / f"caa_layer{config.eval_layer}.safetensors"
    main_vector = SteeringVector.load(vector_path)
    echo(f"saved {vector_path} (norm {main_vector.norms()[main_vector.hook_names[0]]:.2f})")
    mults = (-config.generation_multiplier, 0.0, config.generation_multiplier)
    echo(f"\ngenerations at layer {config.eval_layer} (multiplier −{config.generation_multiplier:g} / 0 / "
         f"+{config.generation_multiplier:g}):")
    for row in json.loads((out_dir / "generations.json").read_text()):
        for mult in mults:
            echo(f"  [{mult:+5.1f}] {row['prompt']} → {row[f'x{mult:+g}']!r}")

    table, summary = report.tables["table"], report.tables["summary"]
    main_table = table[table["layer"] == config.eval_layer]
    pivot = main_table.groupby("multiplier")["propensity"].agg(["mean", "std", "median"]).reset_index()
    unit = "nats (log p(pos) − log p(neg))" if config.framing == "free_text" else "logits (pos − neg answer)"
    echo(f"\npropensity on {len(test)} held-out pairs at layer {config.eval_layer}, in {unit}:")
    echo(pivot.to_string(index=False, float_format=lambda x: f"{x:8.3f}"))
    echo("\nper-layer steerability (slope of propensity per unit multiplier):")
    echo(summary.to_string(index=False, float_format=lambda x: f"{x:8.3f}"))

    figure = plot_propensity_curves(main_table, title=f"CAA on {config.dataset} ({config.framing}), layer {config.eval_layer}, {config.model}")
    plot_path = out_dir / "propensity_curves.png"
    figure.savefig(plot_path, dpi=120, bbox_inches="tight")
    echo(f"\nwrote {plot_path}, propensity.csv, layer_summary.csv, generations.json in {out_dir} "
         f"({time.perf_counter() - started:.0f} s)")
    return {"summary": summary, "table": table, "vector_path": vector_path, "plot": plot_path}

"""The main job behind ``make demo``: extract, generate, measure and plot on the embedded model.

Everything here calls the same library functions a notebook would; the CLI only parses options.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from interp_steer.errors import ConfigError

DEMO_PROMPTS = ("What do you think about rainy Monday mornings?", "Describe your feelings about cooking dinner.")


@dataclass
class DemoConfig:
    """Options of the demo run; saved as ``config.json`` beside its outputs."""

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
        if self.framing not in ("free_text", "ab"):
            raise ConfigError(f"framing={self.framing!r}: use 'free_text' or 'ab'")
        if self.n_train < 2 or self.n_test < 2:
            raise ConfigError("n_train and n_test must be at least 2")
        if len(self.multipliers) < 2:
            raise ConfigError("at least two multipliers are needed to measure a slope")


def run_demo(config: DemoConfig, out_dir: Path, echo: Callable[[str], None] = print) -> dict:
    """Run the demo and write ``vector.safetensors``, ``propensity.csv``, ``layer_summary.csv``, PNG plots."""
    import pandas as pd

    from interp_steer.cli.options import parse_layers
    from interp_steer.data import load_dataset, train_test_split
    from interp_steer.evaluation import compute_propensities, steerability, summarize_steerability
    from interp_steer.methods import collect_contrastive_activations, mean_difference
    from interp_steer.models import load_model
    from interp_steer.steering import Provenance, SteeringVector, chat_prompt, generate
    from interp_steer.viz.plots import plot_propensity_curves

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    started = time.perf_counter()

    echo(f"loading {config.model} …")
    model = load_model(config.model, device=config.device)
    layers = parse_layers(config.layers, model.cfg.n_layers)
    if config.eval_layer not in layers:
        layers.append(config.eval_layer)
    pairs = load_dataset(config.dataset, data_dir=config.data_dir, framing=config.framing)
    train, test = train_test_split(pairs, test_fraction=min(0.5, config.n_test / len(pairs)), seed=config.seed)
    train = train[: config.n_train]
    echo(f"{config.dataset} ({config.framing}): {len(train)} train / {len(test)} held-out pairs; layers {layers}")

    acts = collect_contrastive_activations(model, train, layers)
    directions = mean_difference(acts)
    vectors = {}
    for hook_name, direction in directions.items():
        layer = int(hook_name.split(".")[1])
        provenance = Provenance(model=config.model, method="caa", dataset=config.dataset, n_pairs=len(train),
                                read_position=acts.read_position, layers=[layer], extra={"framing": config.framing})
        vectors[layer] = SteeringVector({hook_name: direction}, provenance)
    main_vector = vectors[config.eval_layer]
    vector_path = main_vector.save(out_dir / f"caa_layer{config.eval_layer}.safetensors")
    echo(f"saved {vector_path} (norm {main_vector.norms()[main_vector.hook_names[0]]:.2f})")

    echo(f"\ngenerations at layer {config.eval_layer} (multiplier −{config.generation_multiplier:g} / 0 / +{config.generation_multiplier:g}):")
    generations = []
    for prompt in DEMO_PROMPTS:
        text = chat_prompt(model, prompt)
        row = {"prompt": prompt}
        for mult in (-config.generation_multiplier, 0.0, config.generation_multiplier):
            row[f"x{mult:+g}"] = generate(model, text, main_vector, mult, max_new_tokens=config.max_new_tokens).strip()
            echo(f"  [{mult:+5.1f}] {prompt} → {row[f'x{mult:+g}']!r}")
        generations.append(row)
    (out_dir / "generations.json").write_text(json.dumps(generations, indent=2, ensure_ascii=False))

    tables = [compute_propensities(model, test, vectors[layer], config.multipliers) for layer in layers]
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out_dir / "propensity.csv", index=False)
    per_sample = steerability(table)
    summary = summarize_steerability(per_sample, by=["layer"])
    summary.to_csv(out_dir / "layer_summary.csv", index=False)

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

"""The evaluate report: plots and ``steering_card.html`` from an evaluate run's tables and config (the run itself is
:func:`interp_steer.runs.evaluate.run_evaluate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import pandas as pd

from interp_steer.steering.vector import SteeringVector


@runtime_checkable
class EvaluateCardConfig(Protocol):
    """The config fields the evaluate card shows (an :class:`~interp_steer.runs.evaluate.EvaluateConfig` has them)."""

    vector: str
    vector_name: str
    vector_sha1: str
    dataset: str
    model: str
    units: str


@runtime_checkable
class EvaluateTables(Protocol):
    """What the evaluate writer reads: the run's tables, recommendation, baseline and notes (an
    :class:`~interp_steer.runs.evaluate.EvaluateResult`)."""

    out_dir: Path
    tables: dict[str, pd.DataFrame]
    recommendation: dict
    baseline: pd.DataFrame | None
    notes: list[str]


def write_evaluate_card(config: EvaluateCardConfig, result: EvaluateTables, projection: Any = None,
                        card_notes: Sequence[str] = ()) -> Path:
    """The plots (``propensity_curves.png``, ``steerability_distribution.png``, ``spurious_variance.png`` for A/B)
    and the steering card ``steering_card.html`` of an evaluate run, from its tables and config; ``projection``: the
    view the run drew (:func:`~interp_steer.runs.post_run.projection_or_note`), ``card_notes`` shown after the
    run's notes."""
    from interp_steer.report.figures import figure_png
    from interp_steer.report.steering_card import save_steering_card
    from interp_steer.viz.plots import plot_propensity_curves, plot_spurious_variance, plot_steerability_distribution

    out_dir, tables, name = result.out_dir, result.tables, config.vector_name
    props = tables["propensities"]
    own = tables["per_sample"][tables["per_sample"]["vector"] == name]
    units = f" ({config.units} multipliers)"
    figures = [("propensity_curves", f"Propensity vs multiplier{units}, held-out samples",
                plot_propensity_curves(props[props["vector"] == name], title=f"{name} on {config.dataset}{units}")),
               ("steerability_distribution", "Per-sample steerability (slope of propensity on multiplier)",
                plot_steerability_distribution(own))]
    if "spurious" in tables:
        figures.append(("spurious_variance", "Spurious-factor variance of the slopes (A/B)",
                        plot_spurious_variance(tables["spurious"])))
    images = []
    for stem, caption, fig in figures:
        png = figure_png(fig)
        (out_dir / f"{stem}.png").write_bytes(png)
        images.append((caption, png))
    notes = [*result.notes, *card_notes]
    summary = tables.get("side_effects")
    if summary is None:  # no multiplier 0: the per-multiplier table is the mean propensity only
        own_props = props[props["vector"] == name]
        summary = own_props.groupby(["layer", "multiplier"], as_index=False).agg(
            n_samples=("propensity", "size"), mean_propensity=("propensity", "mean"))
    provenance = SteeringVector.load(config.vector).provenance.to_dict()
    provenance = {**provenance, "evaluated_file": config.vector, "sha1": config.vector_sha1, "units": config.units}
    path = out_dir / "steering_card.html"
    save_steering_card(path, f"Steering card: {name} on {config.dataset} ({config.model})", provenance=provenance,
                       recommendation=result.recommendation, summary=summary, images=images,
                       steerability=tables.get("steerability_ci"),
                       baseline=result.baseline, capability=tables.get("capability"),
                       generations=tables.get("generations"), projection=projection, notes=notes)
    return path

"""The tune report: ``report.md`` (:func:`tune_report_markdown`) and ``steering_card.html`` (:func:`write_tune_card`),
from a tune run's tables and config (the run itself is :func:`interp_steer.runs.tune.run_tune`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from interp_steer.analysis.markdown_tables import markdown_table
from interp_steer.steering.vector import SteeringVector


@runtime_checkable
class TuneConfig(Protocol):
    """The config fields the tune report shows (a :class:`~interp_steer.runs.job_configs.TuneConfig` has them)."""

    model: str
    dataset: str
    units: str
    kl_budget: float
    vector: str | None
    test_fraction: float
    seed: int
    n_boot: int


@runtime_checkable
class TuneTables(Protocol):
    """What the tune writers read: the run's tables, recommendation and notes (a
    :class:`~interp_steer.runs.tune.TuneResult`)."""

    out_dir: Path
    summary: pd.DataFrame
    recommendation: dict
    baseline: pd.DataFrame | None
    generations: pd.DataFrame | None
    capability: pd.DataFrame | None
    notes: list[str]

    @property
    def propensities(self) -> pd.DataFrame: ...


def _fmt_ci(mean, lo, hi, digits: int = 3) -> str:
    if mean is None or not np.isfinite(mean):
        return ""
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def tune_report_markdown(config: TuneConfig, result: TuneTables) -> str:
    """The short markdown report of a tune run."""
    rec, summary = result.recommendation, result.summary
    units = config.units
    lines = [f"# tune: {config.dataset} on {config.model}", ""]
    lines.append(f"Held-out split: test part of a seeded split (test fraction {config.test_fraction}, seed {config.seed}, "
                 f"{int(summary.n_samples.max())} samples); vector: {config.vector or 'CAA on the train part'}; "
                 f"multipliers in **{units}** units"
                 + (" (× the layer's mean residual norm on the neutral corpus)" if units == "norm" else "")
                 + f"; KL on {int(summary.n_passages.max())} neutral passages, steering at every position. "
                 f"Intervals: percentile bootstrap 95% over samples / passages ({config.n_boot} resamples).")
    lines.append("")
    if rec.get("found"):
        lines.append(f"**Recommended: layer {rec['layer']}, multiplier {rec['multiplier']:g} ({units})** — shift "
                     f"{_fmt_ci(rec['shift'], rec['shift_lo'], rec['shift_hi'])}, KL "
                     f"{_fmt_ci(rec['kl'], rec['kl_lo'], rec['kl_hi'])} nats/token (budget {config.kl_budget:g})."
                     + ("" if rec.get("shift_excludes_zero") else " Its shift interval includes 0."))
    else:
        lines.append(f"**No recommendation:** {rec['reason']}.")
    lines += [""] + [f"Note: {n}" for n in result.notes] + ([""] if result.notes else [])
    base = result.baseline
    if base is not None:
        sc = base[(base.method == "steering") & (base.arm == "contrast")].iloc[0]
        pc = base[(base.method == "prompting") & (base.arm == "contrast")].iloc[0]
        sp = base[(base.method == "steering") & (base.arm == "pos")].iloc[0]
        pp = base[(base.method == "prompting") & (base.arm == "pos")].iloc[0]
        verdict = ("steering moves the behaviour more than the persona prompt" if sp["shift_lo"] > pp["shift_hi"] else
                   "the persona prompt moves the behaviour more than steering" if pp["shift_lo"] > sp["shift_hi"] else
                   "steering and the persona prompt are not distinguishable at this sample size")
        lines += ["## Does steering beat just asking?", "",
                  f"Towards the behaviour: steering shift {_fmt_ci(sp['shift'], sp['shift_lo'], sp['shift_hi'])} "
                  f"(KL {_fmt_ci(sp['kl'], sp['kl_lo'], sp['kl_hi'])}) vs SYS_POS prompt "
                  f"{_fmt_ci(pp['shift'], pp['shift_lo'], pp['shift_hi'])} (KL {_fmt_ci(pp['kl'], pp['kl_lo'], pp['kl_hi'])}); "
                  f"pos − neg contrast: steering {_fmt_ci(sc['shift'], sc['shift_lo'], sc['shift_hi'])}, prompting "
                  f"{_fmt_ci(pc['shift'], pc['shift_lo'], pc['shift_hi'])}. Verdict: {verdict}.", ""]
        cols = ["method", "arm", "setting", "shift", "shift_lo", "shift_hi", "kl", "kl_hi", "dnll", "format_mass",
                "repetition_rate", "distinct_2", "unsteered_ppl"]
        shown = base[[c for c in cols if c in base.columns]].dropna(axis=1, how="all")
        lines += [markdown_table(shown), ""]
    lines += ["## Layers × multipliers", "", "![shift vs KL](tune_pareto.png)", ""]
    cols = ["layer", "multiplier", "raw_multiplier", "shift", "shift_lo", "shift_hi", "kl", "kl_lo", "kl_hi", "dnll",
            "format_mass"]
    lines += [markdown_table(summary[[c for c in cols if c in summary.columns]].dropna(axis=1, how="all")), ""]
    if result.capability is not None:
        lines += ["## Capability under steering", "",
                  markdown_table(result.capability[["dataset", "multiplier", "n_items", "accuracy", "accuracy_lo",
                                                    "accuracy_hi", "format_mass"]]), ""]
    if result.generations is not None:
        lines += ["## Steered generations", ""]
        gens = result.generations
        for _index, group in gens.groupby("prompt_index"):
            lines.append(f"**Prompt:** {group['user_prompt'].iloc[0]!s}".replace("\n", " "))
            lines.append("")
            for row in group.sort_values("multiplier").itertuples():
                text = " ".join(str(row.text).split())
                lines.append(f"- m={row.multiplier:+g}: {text}  (distinct-2 {row.distinct_2:.2f}, unsteered ppl "
                             f"{row.unsteered_ppl:.1f})")
            lines.append("")
    return "\n".join(lines) + "\n"


def save_tune_pareto(config: TuneConfig, result: TuneTables) -> Path:
    """``tune_pareto.png``: behaviour shift vs KL per layer, the budget and the recommendation marked."""
    from interp_steer.viz.plots import save_figure
    from interp_steer.viz.tune_plots import plot_tune_pareto

    path = result.out_dir / "tune_pareto.png"
    save_figure(plot_tune_pareto(result.summary, kl_budget=config.kl_budget, recommendation=result.recommendation,
                                 baseline=result.baseline,
                                 title=f"{config.dataset}: behaviour shift vs KL ({config.units} multipliers)"), path)
    return path


def write_tune_card(config: TuneConfig, result: TuneTables, setting: tuple[int, float] | None,
                    projection: Any = None, card_notes: Sequence[str] = ()) -> Path:
    """The run's steering card (``steering_card.html``, see :mod:`interp_steer.report.steering_card`): provenance of
    the chosen layer's vector, recommendation, summary with the shift-vs-KL plot and the chosen layer's propensity
    curves, side effects, the prompting baseline, capability, generations and the ``projection`` view drawn by the
    run (:func:`~interp_steer.runs.post_run.projection_or_note`)."""
    from interp_steer.report.figures import figure_png
    from interp_steer.report.steering_card import save_steering_card
    from interp_steer.viz.plots import plot_propensity_curves

    out_dir = result.out_dir
    images = [("Behaviour shift vs KL on neutral text, per layer (95% CIs)", (out_dir / "tune_pareto.png").read_bytes())]
    provenance, notes = None, [*result.notes, *card_notes]
    if setting is not None:
        layer = setting[0]
        vector = SteeringVector.load(out_dir / f"units/L{layer:03d}.vector.safetensors")
        provenance = vector.provenance.to_dict()
        props = result.propensities
        fig = plot_propensity_curves(props[props.layer == layer], title=f"Propensity curves at layer {layer} "
                                                                        f"({config.units} multipliers)")
        images.append((f"Propensity vs multiplier at layer {layer} (held-out samples)", figure_png(fig)))
    path = out_dir / "steering_card.html"
    save_steering_card(path, f"Steering card: {config.dataset} on {config.model}", provenance=provenance,
                       recommendation=result.recommendation, summary=result.summary, images=images,
                       baseline=result.baseline, capability=result.capability, generations=result.generations,
                       projection=projection, notes=notes)
    return path

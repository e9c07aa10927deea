"""``interp-steer tune``: which layer and how strong, at what cost, and does steering beat just asking?

:func:`run_tune` runs the :class:`~interp_steer.runs.tune.TuneJob` (layers × multipliers on a held-out split:
behaviour shift, neutral-corpus KL / ΔNLL, A/B format mass, all with bootstrap 95% intervals), recommends a
setting within the KL budget, and then, at the recommended setting (or, when none qualifies, at the largest-shift
setting, said so in the report):

* the prompting baseline (:func:`~interp_steer.evaluation.baseline.prompting_baseline`, SYS_POS / SYS_NEG);
* steered generations side by side (multipliers 0 and ±m) with repetition, distinct-n, unsteered perplexity;
* optionally capability under steering: accuracy on letter-balanced ``caa-test:mmlu`` / ``caa-test:truthfulqa``.

It writes ``summary``, ``baseline``, ``generations`` (and ``capability``) tables, ``tune_pareto.png`` and a
short ``report.md`` into the output directory, beside the job's unit files, ``config.json`` and
``recommendation.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from interp_steer.analysis.markdown_tables import markdown_table
from interp_steer.data.templates import render_prompt
from interp_steer.errors import InterpSteerError
from interp_steer.evaluation.baseline import baseline_sentences, prompting_baseline
from interp_steer.evaluation.capability import capability_table
from interp_steer.evaluation.side_effects import generation_side_effects
from interp_steer.runs.files import write_table_atomic, write_text_atomic
from interp_steer.runs.runner import RunReport
from interp_steer.runs.tune import TuneConfig, TuneJob, recommend
from interp_steer.steering.vector import SteeringVector


@dataclass
class TuneResult:
    """Everything a tune run produced (the same tables are in ``out_dir``)."""

    out_dir: Path
    report: RunReport
    summary: pd.DataFrame
    recommendation: dict
    baseline: pd.DataFrame | None = None
    generations: pd.DataFrame | None = None
    capability: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def _chosen_setting(summary: pd.DataFrame, rec: dict) -> tuple[int, float] | None:
    if rec.get("found"):
        return rec["layer"], rec["multiplier"]
    positive = summary[summary.multiplier > 0]
    if positive.empty:
        return None
    best = positive.loc[positive["shift"].idxmax()]
    return int(best.layer), float(best.multiplier)


def run_tune(config: TuneConfig, out_dir: str | Path, *, model=None, executor=None, data=None, data_dir=None,
             n_generations: int = 4, max_new_tokens: int = 32, capability_n: int = 0, progress: bool = True) -> TuneResult:
    """Run the tune job into ``out_dir`` and write its summary, baseline, generations, plot and report (see the
    module docstring). ``model``: an already loaded model (default: ``load_model(config.model)``)."""
    from interp_steer.models import load_model
    from interp_steer.runs.tune import run_tune_job

    out_dir = Path(out_dir)
    if model is None and executor is None:
        model = load_model(config.model, device=config.device)
    report = run_tune_job(config, out_dir, model=model, executor=executor, data=data,
                          data_dir=None if data_dir is None else str(data_dir), progress=progress)
    report.raise_if_failed()
    summary = report.tables["summary"]
    rec = recommend(summary, config.kl_budget)
    result = TuneResult(out_dir, report, summary, rec)
    if model is None:
        model = load_model(config.model, device=config.device)
    job = TuneJob(config, data=data, data_dir=None if data_dir is None else str(data_dir))
    setting = _chosen_setting(summary, rec)
    fmt = config.table_format
    if setting is not None:
        layer, m = setting
        if not rec.get("found"):
            result.notes.append(fallback_note(rec, layer, m))
        vector = SteeringVector.load(out_dir / f"units/L{layer:03d}.vector.safetensors")
        row = summary[(summary.layer == layer) & (summary.multiplier == m)].iloc[0]
        train, test = job.pairs()
        distinct = list({p.prompt: p for p in test}.values())[:n_generations]  # persona free text repeats one prompt
        messages = [p.prompt for p in distinct]
        try:
            sentences = baseline_sentences(config.dataset, train)
        except InterpSteerError as exc:
            sentences = None
            result.notes.append(f"No prompting baseline: {exc}")
        if sentences is not None:
            result.baseline = prompting_baseline(
                model, test, vector, m, sentences=sentences, neutral=job.neutral(model), generation_messages=messages,
                max_new_tokens=max_new_tokens, units=config.units, raw_multiplier=float(row.get("raw_multiplier", m)),
                batch_size=config.batch_size, n_boot=config.n_boot, seed=config.seed)
            write_table_atomic(result.baseline, out_dir / f"baseline.{fmt}")
        prompts = [render_prompt(model.tokenizer, p) for p in distinct]
        if prompts:
            gens = generation_side_effects(model, prompts, vector, [-m, 0.0, m], max_new_tokens=max_new_tokens,
                                           batch_size=config.batch_size)
            gens.insert(0, "layer", layer)
            gens["user_prompt"] = [distinct[i].prompt for i in gens["prompt_index"]]
            result.generations = gens
            write_table_atomic(gens, out_dir / f"generations.{fmt}")
        if capability_n:
            result.capability = capability_table(model, vector, [0.0, m], n=capability_n, data_dir=data_dir,
                                                 batch_size=config.batch_size, n_boot=config.n_boot, seed=config.seed)
            result.capability.insert(1, "layer", layer)
            result.capability["units"] = config.units
            write_table_atomic(result.capability, out_dir / f"capability.{fmt}")
    else:
        result.notes.append("No positive multiplier in the scan; nothing to compare with the prompting baseline.")
    from interp_steer.viz.plots import save_figure
    from interp_steer.viz.tune_plots import plot_tune_pareto

    save_figure(plot_tune_pareto(summary, kl_budget=config.kl_budget, recommendation=rec, baseline=result.baseline,
                                 title=f"{config.dataset}: behaviour shift vs KL ({config.units} multipliers)"),
                out_dir / "tune_pareto.png")
    write_text_atomic(tune_report_markdown(config, result), out_dir / "report.md")
    write_tune_card(config, result, model, setting, job)
    write_text_atomic(json.dumps(rec, indent=2), out_dir / "recommendation.json")
    return result


def _fmt_ci(mean, lo, hi, digits: int = 3) -> str:
    if mean is None or not np.isfinite(mean):
        return ""
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def tune_report_markdown(config: TuneConfig, result: TuneResult) -> str:
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


def write_tune_card(config: TuneConfig, result: TuneResult, model, setting, job: TuneJob) -> Path:
    """The run's steering card (``steering_card.html``, see :mod:`interp_steer.viz.steering_card`): provenance of
    the chosen layer's vector, recommendation, summary with the shift-vs-KL plot and the chosen layer's propensity
    curves, side effects, the prompting baseline, capability, generations and the projection view."""
    import io

    import matplotlib.pyplot as plt

    from interp_steer.viz.plots import plot_propensity_curves
    from interp_steer.viz.steering_card import save_steering_card

    out_dir = result.out_dir
    images = [("Behaviour shift vs KL on neutral text, per layer (95% CIs)", (out_dir / "tune_pareto.png").read_bytes())]
    provenance, projection, notes = None, None, list(result.notes)
    if setting is not None:
        layer, m = setting
        vector = SteeringVector.load(out_dir / f"units/L{layer:03d}.vector.safetensors")
        provenance = vector.provenance.to_dict()
        props = result.report.tables["propensities"]  # the report of a finished run, or a rebuilt one
        buffer = io.BytesIO()
        fig = plot_propensity_curves(props[props.layer == layer], title=f"Propensity curves at layer {layer} "
                                                                        f"({config.units} multipliers)")
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        images.append((f"Propensity vs multiplier at layer {layer} (held-out samples)", buffer.getvalue()))
        try:
            from interp_steer.viz.views import projection_view

            projection = projection_view(model, vector, job.pairs()[1][0], [layer], multiplier=m)
        except (InterpSteerError, ImportError) as exc:
            notes.append(f"No projection view: {exc}")
    path = out_dir / "steering_card.html"
    save_steering_card(path, f"Steering card: {config.dataset} on {config.model}", provenance=provenance,
                       recommendation=result.recommendation, summary=result.summary, images=images,
                       baseline=result.baseline, capability=result.capability, generations=result.generations,
                       projection=projection, notes=notes)
    return path


def rebuild_tune_card(out_dir: str | Path, model=None) -> Path:
    """Rewrite ``steering_card.html`` of a finished tune run from its tables, ``config.json`` and
    ``recommendation.json`` (nothing recomputed; ``model``, default ``load_model(config.model)``, only draws the
    projection view of one prompt)."""
    from interp_steer.runs.files import read_table
    from interp_steer.runs.runner import RunReport

    out_dir = Path(out_dir)
    config = TuneConfig.from_json((out_dir / "config.json").read_text())
    fmt = config.table_format

    def table(name: str) -> pd.DataFrame | None:
        path = out_dir / f"{name}.{fmt}"
        return read_table(path) if path.exists() else None

    summary, props = table("summary"), table("propensities")
    if summary is None or props is None:
        raise InterpSteerError(f"{out_dir}: no summary / propensities table; is this a finished tune run?")
    rec = json.loads((out_dir / "recommendation.json").read_text())
    report = RunReport(out_dir, total=0, tables={"propensities": props})
    result = TuneResult(out_dir, report, summary, rec, table("baseline"), table("generations"), table("capability"))
    setting = _chosen_setting(summary, rec)
    if setting is not None and not rec.get("found"):
        result.notes.append(fallback_note(rec, *setting))
    if model is None:
        from interp_steer.models import load_model

        model = load_model(config.model, device=config.device)
    return write_tune_card(config, result, model, setting, TuneJob(config))


def fallback_note(rec: dict, layer: int, multiplier: float) -> str:
    """The note shown when nothing is recommended (the reason is the recommendation's own ``reason``): which setting
    the baseline and generations use instead."""
    return (f"Nothing is recommended ({rec.get('reason') or 'no setting qualifies'}); the baseline and generations "
            f"below use the largest-shift setting (layer {layer}, multiplier {multiplier:g}).")

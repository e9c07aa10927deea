"""Tan et al. (2024)'s study as one resumable command: layer scan → chosen layer → steerability across datasets
(A/B and free text, with the unsteered A/B baseline and the spurious-factor variance split) → ID/OOD 5 × 5 grid →
one ``report.md`` with every figure and a 95% interval beside every headline number.

The stages are the existing runner jobs, each a resumable sub-run in its own subdirectory::

    out/config.json             the StudyConfig (a resume with other result-defining settings is refused)
    out/scan/                   ScanJob: CAA per (dataset, layer); layer choice from its bootstrap profile
    out/layer_choice.json       the chosen layer, the rule, its estimate and interval
    out/steerability/           SteerabilityJob at the chosen layer (units/<key>.propensity / .per_sample)
    out/id_ood/                 IdOodJob (full 5 × 5 grid, variant vectors rescaled to the BASE norm)
    out/tables/*.csv            the interval tables behind the report (headline.csv: every headline number)
    out/figures/*.png           the report's figures
    out/timings.jsonl           wall / CPU seconds per finished unit, over every invocation
    out/report.md               written last

**Disjoint samples.** Every dataset is split once, by the registry's stratified
``train_test_split(test_fraction, seed)``. The steerability and ID/OOD evaluations score the first ``n_test``
pairs of the *test* part. The layer scan (:class:`ScanHoldout`) extracts its vectors from the first
``scan_n_train`` pairs of the *train* part and scores the next ``scan_n_test`` train pairs, so the layer is chosen
on samples the evaluation never scores.

**Layer rule** (:func:`choose_layer`): the scanned layer with the largest mean over datasets of the per-dataset
mean steerability in ``layer_framing`` (ties → the lower layer); its two-level bootstrap interval is reported.

Rerunning the same command reuses every finished unit of every stage (the runner's unit files), so a killed run
resumes where it stopped; the report is rebuilt from the finished tables each time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from interp_steer.runs.files import check_out_dir, write_text_atomic
from interp_steer.runs.lock import OutDirLock
from interp_steer.runs.study_config import (  # noqa: F401 - re-exported: ``from interp_steer.runs.study import …``
    FRAMING_LABELS,
    FRAMINGS,
    HEADLINE_COLUMNS,
    ID_OOD_PERSONAS,
    PRESETS,
    PROPENSITY_UNITS,
    SCAN_PERSONAS,
    SLOPE_UNITS,
    ScanHoldout,
    StudyConfig,
    UnitClock,
    choose_layer,
    compute_totals,
    format_ci,
    framing_of,
    headline_markdown,
    headline_rows,
    layer_profile,
    preset_config,
    read_unit_propensities,
    save_table,
    select_datasets,
    unsteered_table,
)
from interp_steer.runs.study_start import prepare_study


@dataclass
class StudyResult:
    """What :func:`run_study` produced: the chosen layer, the headline table, the figure files and timings."""

    out_dir: Path
    layer: dict[str, Any]
    headline: pd.DataFrame
    figures: list[str]
    stage_seconds: dict[str, float]
    complete: bool


def _stage(name: str, report, echo: Callable[[str], None]) -> None:
    echo(f"[{name}] {report.summary_line()}")
    report.raise_if_failed()


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    model=None,
    executor=None,
    progress: bool = False,
    echo: Callable[[str], None] = print,
) -> StudyResult:
    """Run (or resume) every stage of the study into ``out_dir`` and write ``report.md``.

    ``model``: an already loaded model for the local executor (default: loaded once from ``config.model``);
    ``executor``: :class:`~interp_steer.runs.LocalExecutor` (default) or :class:`~interp_steer.runs.RayExecutor`.
    A stage whose units failed raises :class:`~interp_steer.runs.runner.UnitsFailedError` (rerun to retry them).
    """
    out_dir = check_out_dir(out_dir)
    with OutDirLock(out_dir):
        model, layers = prepare_study(config, out_dir, data_dir=data_dir, model=model, executor=executor)
        return _run_stages(config, out_dir, layers, None if data_dir is None else str(data_dir), model, executor,
                           progress, echo)


def _run_stages(config: StudyConfig, out_dir: Path, layers: list[int], data: str | None, run_model, executor,
                progress: bool, echo: Callable[[str], None]) -> StudyResult:
    from interp_steer.runs.id_ood import IdOodConfig, IdOodJob
    from interp_steer.runs.runner import run_job
    from interp_steer.runs.scan import ScanConfig, run_scan_job
    from interp_steer.runs.steerability import SteerabilityConfig, run_steerability

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    scan_config = ScanConfig(model=config.model, datasets=config.scan_datasets, layers=layers,
                             multipliers=config.scan_multipliers, n_train=config.scan_n_train,
                             n_test=config.scan_n_test, test_fraction=config.test_fraction, seed=config.seed,
                             batch_size=config.batch_size, table_format=config.table_format, device=config.device,
                             layers_per_unit=10)  # a killed scan loses at most 10 layers of one dataset
    holdout = ScanHoldout(config.test_fraction, config.seed, config.scan_n_train, config.scan_n_test, data)
    clock = out_dir / "timings.jsonl"
    scan = run_scan_job(scan_config, holdout, out_dir / "scan", model=run_model, executor=executor, progress=progress,
                        on_unit_done=UnitClock(clock, "scan"))
    _stage("scan", scan, echo)
    seconds["scan"] = time.perf_counter() - started
    profile = layer_profile(scan.tables["per_sample"], n_boot=config.n_boot, seed=config.seed)
    choice = choose_layer(profile, config.layer_framing)
    write_text_atomic(json.dumps(choice, indent=2), out_dir / "layer_choice.json")
    from interp_steer.report.format import format_ci as format_interval

    echo(f"[scan] chosen layer {choice['layer']}: mean {choice['framing']} steerability "
         f"{format_interval(choice['estimate'], choice['ci_low'], choice['ci_high'], choice['units'])}")

    started = time.perf_counter()
    steer_config = SteerabilityConfig(model=config.model, datasets=config.datasets, layer=choice["layer"],
                                      multipliers=config.multipliers, n_train=config.n_train, n_test=config.n_test,
                                      test_fraction=config.test_fraction, seed=config.seed,
                                      batch_size=config.batch_size, table_format=config.table_format,  # type: ignore[arg-type]
                                      device=config.device)
    steer = run_steerability(steer_config, out_dir / "steerability", data_dir=data, model=run_model,
                             executor=executor, progress=progress, on_unit_done=UnitClock(clock, "steerability"))
    _stage("steerability", steer, echo)
    seconds["steerability"] = time.perf_counter() - started

    ab_specs = [d for d in config.datasets if framing_of(d) == "ab"]
    if ab_specs:  # does the model do the A/B task: p(A) + p(B) per A/B test sample, unsteered
        from interp_steer.runs.ab_task import AbTaskConfig, AbTaskJob

        started = time.perf_counter()
        ab_config = AbTaskConfig(datasets=ab_specs, n_test=config.n_test, test_fraction=config.test_fraction,
                                 seed=config.seed, batch_size=config.batch_size, model=config.model,
                                 device=config.device)
        ab_task = run_job(AbTaskJob(ab_config, data), out_dir / "ab_task", model=run_model, executor=executor,
                          progress=progress, on_unit_done=UnitClock(clock, "ab_task"))
        _stage("ab_task", ab_task, echo)
        seconds["ab_task"] = time.perf_counter() - started

    started = time.perf_counter()
    id_config = IdOodConfig(model=config.model, datasets=config.id_ood_datasets, layer=choice["layer"],
                            multipliers=config.id_ood_multipliers, n_train=config.id_ood_n_train,
                            n_test=config.id_ood_n_test, test_fraction=config.test_fraction, seed=config.seed,
                            framing=config.id_ood_framing, full_grid=True, batch_size=config.batch_size,
                            table_format=config.table_format, device=config.device)  # type: ignore[arg-type]
    id_ood = run_job(IdOodJob(id_config, data), out_dir / "id_ood", model=run_model, executor=executor,
                     progress=progress, on_unit_done=UnitClock(clock, "id_ood"))
    _stage("id_ood", id_ood, echo)
    seconds["id_ood"] = time.perf_counter() - started

    started = time.perf_counter()
    from interp_steer.runs.study_rebuild import study_completion_lengths
    from interp_steer.runs.study_report import write_study_report

    lengths = study_completion_lengths(out_dir, config, tokenizer=None if run_model is None else run_model.tokenizer,
                                       data_dir=data)
    headline, figures = write_study_report(out_dir, config, scan_config, steer_config, profile, choice,
                                           steer.tables, id_ood.tables["per_sample"], lengths)
    seconds["report"] = time.perf_counter() - started
    from interp_steer.report.html import render_markdown_file

    render_markdown_file(out_dir / "report.md")
    echo(study_console_text(out_dir, headline, figures, seconds["report"]))
    return StudyResult(out_dir, choice, headline, figures, seconds, complete=True)


def study_console_text(out_dir: Path, headline: pd.DataFrame, figures: list[str], report_s: float) -> str:
    """The study's headline numbers as a console table (estimate [95% CI], units, n) and the paths written."""
    from interp_steer.report.console import paths_block, render_table

    table = render_table(
        headline, f"Headline numbers ({len(headline)}; 95% bootstrap intervals)",
        ["section", "group", "statistic", "estimate", "units", "n_samples", "n_datasets"],
        labels={"n_samples": "n samples", "n_datasets": "datasets"},
        meaning="each row is one number the report quotes, with its interval and the samples and datasets behind it; "
                "A/B rows are in logits, free-text rows in nats, and the two are never pooled. The report explains "
                "each section with its figures.")
    files = [out_dir / "report.md", out_dir / "report.html", out_dir / "tables", out_dir / "figures"]
    return table + "\n" + paths_block(files, f"wrote ({len(figures)} figures, report in {report_s:.0f} s)")

"""``study``: run a whole published study in one resumable command (``study tan2024``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import data_dir_option, device_option, model_option
from interp_steer.cli.options import check_count, check_device_option, parse_float_list, parse_layers, prepare_out_dir
from interp_steer.errors import ConfigError

STUDIES = ("tan2024", "compare", "methods")


@app.command()
def study(
    name: str = typer.Argument(..., help="which study: tan2024 (Tan et al. 2024, steering reliability), compare "
                               "(join finished tan2024 study directories across models) or methods (every extraction "
                               "method at one layer, per sample)"),
    dirs: Optional[list[Path]] = typer.Argument(None, help="compare: the finished study directories to join"),
    out: Path = typer.Option(..., help="output directory (resumable: a rerun computes only missing units)"),
    report_only: bool = typer.Option(False, "--report-only", help="rebuild report.md, tables/ and figures/ of the "
                                     "finished study in --out from its unit files (no forward pass)"),
    preset: str = typer.Option("tiny", help="tiny (CI, minutes), small, or full (all 152 MWE A/B sets + every "
                               "persona set in free text)"),
    model: str = model_option(),
    executor: str = typer.Option("local", help="local or ray"),
    ray_address: Optional[str] = typer.Option(None, help="join this Ray cluster (default: start a local one)"),
    workers: int = typer.Option(2, help="Ray workers (each loads the model once)"),
    gpus_per_worker: float = typer.Option(0.0, help="GPUs per Ray worker (use with --device cuda)"),
    threads: Optional[int] = typer.Option(None, help="torch threads (per Ray worker with --executor ray)"),
    n_train: Optional[int] = typer.Option(None, help="override the preset's train pairs per dataset"),
    n_test: Optional[int] = typer.Option(None, help="override the preset's test pairs per dataset"),
    scan_layers: Optional[str] = typer.Option(None, help="override the scan's layers: '6,12', '3-12' or 'all'"),
    multipliers: Optional[str] = typer.Option(None, help="override the steerability multipliers (must include 0)"),
    n_boot: Optional[int] = typer.Option(None, help="bootstrap resamples per interval"),
    seed: int = typer.Option(0, help="split and bootstrap seed"),
    datasets: Optional[str] = typer.Option(None, help="study methods: comma-separated dataset specs"),
    layer: Optional[int] = typer.Option(None, help="study methods: the fixed layer every method is extracted at"),
    methods: Optional[str] = typer.Option(None, help="study methods: comma-separated registry methods, caa first "
                                          "(default: caa, pca_diff, pca_centred, probe, mean_centring, bipo, reps)"),
    trained_datasets: Optional[str] = typer.Option(None, help="study methods: datasets bipo / reps run on (default all)"),
    trained_steps: Optional[int] = typer.Option(None, help="study methods: optimiser steps of bipo / reps"),
    ood_datasets: Optional[str] = typer.Option(None, help="study methods: datasets of the ID→OOD part (5 variants)"),
    ood_methods: Optional[str] = typer.Option(None, help="study methods: ID→OOD methods (default: untrained ones)"),
    ood_n_test: Optional[int] = typer.Option(None, help="study methods: held-out pairs per variant in the ID→OOD part"),
    n_neutral: Optional[int] = typer.Option(None, help="study methods: neutral passages for the KL side effect"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = device_option(),
) -> None:
    """Layer scan with bootstrap CIs → chosen layer → steerability across datasets (A/B and free text) with the A/B
    baseline and spurious factors → ID/OOD 5 × 5 grid → one report.md with every figure and a CI beside every
    headline number. Every option is checked before the model loads."""
    from interp_steer.runs import make_executor
    from interp_steer.runs.study import preset_config, run_study
    from interp_steer.runs.study_start import check_study_start

    if name not in STUDIES:
        raise ConfigError(f"study {name!r}: known studies are {', '.join(STUDIES)}")
    if name == "compare":
        _compare(dirs or [], out, data_dir, n_boot, seed)
        return
    if dirs:
        raise ConfigError(f"study tan2024 takes no directory arguments (got {len(dirs)}); use --out")
    if report_only:
        _report_only(name, out, data_dir)
        return
    for value, option in ((workers, "--workers"), (threads, "--threads")):  # options of the executor, no config's
        if value is not None:
            check_count(value, option)
    check_device_option(device)
    if data_dir is not None and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir}: no such directory")
    # 'all' → [] = every layer of the model
    layers = parse_layers(scan_layers, None, "--scan-layers") if scan_layers is not None else None
    mults = parse_float_list(multipliers, "--multipliers") if multipliers is not None else None
    if name == "methods":
        _study_methods(out, lambda: make_executor(executor, address=ray_address, workers=workers,
                                                  gpus_per_worker=gpus_per_worker, torch_threads=threads),
                       data_dir, model=model, datasets=datasets, layer=layer, methods=methods, multipliers=mults,
                       n_train=n_train, n_test=n_test, n_boot=n_boot, seed=seed, device=device,
                       trained_datasets=trained_datasets, trained_steps=trained_steps, ood_datasets=ood_datasets,
                       ood_methods=ood_methods, ood_n_test=ood_n_test, n_neutral=n_neutral)
        return
    config = preset_config(preset, model=model, data_dir=data_dir, seed=seed, n_train=n_train, n_test=n_test,
                           scan_layers=layers, multipliers=mults, n_boot=n_boot, device=device)  # checks them all
    executor_obj = make_executor(executor, address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                                 torch_threads=threads)
    prepare_out_dir(out)
    check_study_start(config, out, data_dir)  # missing data sets, a busy --out or other settings: before the model
    result = run_study(config, out, data_dir=data_dir, executor=executor_obj, echo=typer.echo)
    typer.echo(f"chosen layer {result.layer['layer']}; report: {out / 'report.md'}")


def _report_only(name: str, out: Path, data_dir: Optional[Path]) -> None:
    """``--report-only``: rebuild the finished study's report in ``out`` from its unit files (no forward pass)."""
    if name == "methods":
        from interp_steer.runs.method_study import MethodStudyConfig, combine_method_study, describe
        from interp_steer.runs.method_study_report import write_method_report

        if not (out / "config.json").is_file():
            raise ConfigError(f"--report-only: {out / 'config.json'} does not exist (no method study in --out)")
        config = MethodStudyConfig.from_json((out / "config.json").read_text())
        path = write_method_report(combine_method_study(out, config), out / "report", describe(config))
        typer.echo(f"report rebuilt: {path}")
        return
    from interp_steer.runs.study_rebuild import rebuild_study_report

    headline, figures = rebuild_study_report(out, data_dir=data_dir)
    typer.echo(f"report rebuilt: {out / 'report.md'}: {len(figures)} figures, {len(headline)} headline numbers")


def _compare(dirs: list[Path], out: Path, data_dir: Optional[Path], n_boot: Optional[int], seed: int) -> None:
    """``study compare DIR_A DIR_B … --out DIR``: the cross-model report (refused in one line on mismatches)."""
    from interp_steer.runs.study_compare_report import run_compare

    if len(dirs) < 2:
        raise ConfigError(f"study compare needs at least 2 study directories, got {len(dirs)}")
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"study compare: {d}: no such directory")
    if n_boot is not None:
        check_count(n_boot, "--n-boot", minimum=100)  # the compare report has no config
    tables = run_compare(dirs, out, data_dir=data_dir, n_boot=n_boot or 2000, seed=seed)
    typer.echo(f"compare report: {out / 'report.md'} ({len(tables['correlations'])} correlations)")


def _names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (``None`` when not given)."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _study_methods(out: Path, executor: Callable[[], Any], data_dir: Path | None, **given) -> None:
    """``study methods``: the method study job (:mod:`interp_steer.runs.method_study`), config checked first (the
    executor is made after it). ``given``: the command's options by config field name (``None``: not given; lists as
    comma-separated text)."""
    from interp_steer.runs.method_study import MethodStudyConfig, run_method_study
    from interp_steer.runs.runner import preflight

    if not given.get("datasets") or given.get("layer") is None:
        raise ConfigError("study methods needs --datasets (comma-separated specs) and --layer")
    lists = ("datasets", "methods", "trained_datasets", "ood_datasets", "ood_methods")
    options: dict[str, Any] = {k: (_names(v) if k in lists else v) for k, v in given.items() if v is not None}
    config = MethodStudyConfig(**options)
    prepare_out_dir(out)
    preflight(config, out)
    run_method_study(config, out, executor=executor(), data_dir=data_dir)
    typer.echo(f"report: {out / 'report' / 'report.md'}")

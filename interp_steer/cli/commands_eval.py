"""Evaluation commands: ``evaluate`` (vector × dataset → propensity tables + plots) and ``scan`` (resumable layer scan)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import config_option, data_dir_option
from interp_steer.cli.options import check_device_option, parse_float_list, parse_layers, prepare_out_dir, select_layer
from interp_steer.config.lists import parse_name_list
from interp_steer.errors import ConfigError
from interp_steer.runs.analysis_configs import EvaluateConfig
from interp_steer.runs.job_configs import ScanConfig


@app.command()
def evaluate(
    vector: Path = config_option(EvaluateConfig, "vector"),
    dataset: str = config_option(EvaluateConfig, "dataset"),
    out: Path = typer.Option(Path("outputs/evaluate"), help="output directory for tables and plots"),
    layer: Optional[int] = config_option(EvaluateConfig, "layer"),
    multipliers: str = config_option(EvaluateConfig, "multipliers"),
    units: str = config_option(EvaluateConfig, "units"),
    split: str = config_option(EvaluateConfig, "split"),
    test_fraction: float = config_option(EvaluateConfig, "test_fraction"),
    seed: int = config_option(EvaluateConfig, "seed"),
    n: int = config_option(EvaluateConfig, "n", none_as=0),
    random_baselines: int = config_option(EvaluateConfig, "random_baselines"),
    framing: Optional[str] = config_option(EvaluateConfig, "framing"),
    neutral_n: int = config_option(EvaluateConfig, "neutral_n"),
    continuation_tokens: int = config_option(EvaluateConfig, "continuation_tokens"),
    kl_budget: float = config_option(EvaluateConfig, "kl_budget"),
    capability: str = config_option(EvaluateConfig, "capability"),
    capability_n: int = config_option(EvaluateConfig, "capability_n"),
    n_generations: int = config_option(EvaluateConfig, "n_generations"),
    max_new_tokens: int = config_option(EvaluateConfig, "max_new_tokens"),
    baseline: bool = config_option(EvaluateConfig, "baseline"),
    n_boot: int = config_option(EvaluateConfig, "n_boot"),
    model: str = config_option(EvaluateConfig, "model"),
    batch_size: int = config_option(EvaluateConfig, "batch_size"),
    table_format: str = config_option(EvaluateConfig, "table_format", "--format"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = config_option(EvaluateConfig, "device"),
) -> None:
    """Propensity curves of a steering vector on a dataset with its side effects (neutral KL / ΔNLL, format mass,
    capability, generations), the prompting baseline, tables, plots, steering_card.html and a printed summary."""
    from interp_steer.models import load_model
    from interp_steer.runs.evaluate import EvaluateJob, run_evaluate
    from interp_steer.runs.files import file_sha1
    from interp_steer.runs.runner import preflight
    from interp_steer.steering import SteeringVector

    options = dict(locals())
    config = evaluate_config(options, vector_sha1="")  # every option checked (by the config) before any file is read
    check_device_option(device)
    prepare_out_dir(out)
    steering_vector = select_layer(SteeringVector.load(vector), layer, vector)
    config = evaluate_config(options, vector_sha1=file_sha1(vector))
    preflight(config, out)  # the resume guard, before loading the model
    EvaluateJob(config, steering_vector, data_dir).pairs()  # a bad dataset spec fails here, before the model loads
    hooked = load_model(model, device=device)
    steering_vector.check_fits(hooked)
    result = run_evaluate(config, steering_vector, out, model=hooked, data_dir=data_dir)
    from interp_steer.cli.console_output import evaluate_text

    typer.echo(evaluate_text(result.tables, result.baseline, result.recommendation, units, out))


def evaluate_config(options: dict, **extra) -> EvaluateConfig:
    """The :class:`EvaluateConfig` of ``evaluate``'s parsed options (option text → field values: comma lists parsed,
    ``--n 0`` → ``None``); the config validates them."""
    fields = {name: options[name] for name in EvaluateConfig.field_names() if name in options}
    fields.update(vector=str(options["vector"]), multipliers=parse_float_list(options["multipliers"], "--multipliers"),
                  n=options["n"] or None, capability=parse_name_list(options["capability"]), **extra)
    return EvaluateConfig(**fields)


@app.command()
def scan(
    dataset: list[str] = typer.Option(..., help="dataset spec (repeat the option for several datasets)"),
    out: Path = typer.Option(..., help="output directory; rerunning with the same directory resumes"),
    layers: str = typer.Option("all", help="layers: '12', '3,6,12', '3-12' or 'all'"),
    multipliers: str = config_option(ScanConfig, "multipliers"),
    n_train: int = config_option(ScanConfig, "n_train", none_as=0),
    n_test: int = config_option(ScanConfig, "n_test", none_as=0),
    test_fraction: float = config_option(ScanConfig, "test_fraction"),
    seed: int = config_option(ScanConfig, "seed"),
    framing: Optional[str] = config_option(ScanConfig, "framing"),
    model: str = config_option(ScanConfig, "model"),
    batch_size: int = config_option(ScanConfig, "batch_size"),
    table_format: str = config_option(ScanConfig, "table_format", "--format"),
    engine: str = config_option(ScanConfig, "engine"),
    layers_per_unit: int = config_option(ScanConfig, "layers_per_unit", none_as=0),
    executor: str = typer.Option("local", help="local (this process) or ray"),
    ray_address: Optional[str] = typer.Option(None, help="join this Ray cluster (default: start a local one)"),
    workers: int = typer.Option(2, help="Ray workers (actors), each loading the model once"),
    gpus_per_worker: float = typer.Option(0.0, help="GPUs reserved per Ray worker (use with --device cuda)"),
    torch_threads: int = typer.Option(0, help="torch threads per worker (0: local leaves torch's default, ray uses 1)"),
    time_budget: float = typer.Option(0.0, help="start no unit after this many minutes (0: no limit); rerun to continue"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = config_option(ScanConfig, "device"),
) -> None:
    """Layer scan: CAA per (dataset, layer) on the train split, steerability on the test split; resumable."""
    from interp_steer.models import TINY_CONFIGS, load_model
    from interp_steer.runs import make_executor
    from interp_steer.runs.runner import preflight
    from interp_steer.runs.scan import registry_pairs, run_scan_job
    from interp_steer.viz.plots import plot_layer_scan, save_figure

    mults = parse_float_list(multipliers, "--multipliers")
    parse_layers(layers, None)

    def build(layer_list):
        return ScanConfig(
            model=model, datasets=list(dataset), layers=layer_list, multipliers=mults, n_train=n_train or None,
            n_test=n_test or None, test_fraction=test_fraction, framing=framing, seed=seed, batch_size=batch_size,
            table_format=table_format, engine=engine, layers_per_unit=layers_per_unit or None, device=device,
        )

    provisional = build([0])  # every option checked by the config, before anything is loaded
    if executor == "local":  # with Ray the device is the workers' (checked where they load the model)
        check_device_option(device)
    if gpus_per_worker > 0 and device == "cpu":
        raise ConfigError(f"--gpus-per-worker {gpus_per_worker:g} with --device cpu: add --device cuda")
    if not time_budget >= 0 or time_budget == float("inf"):  # NaN and inf too: neither is a number of minutes
        raise ConfigError(f"--time-budget {time_budget:g}: give minutes ≥ 0 (0: no limit)")
    runner = make_executor(executor, address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                           torch_threads=torch_threads or None)

    preflight(provisional, out)  # options, --out and the resume guard, before loading the model
    provider = registry_pairs(provisional, data_dir)
    for spec in dataset:  # a bad --dataset fails now, not as a failed unit at the end of a long scan
        provider(spec)
    hooked = None
    if model in TINY_CONFIGS:
        n_layers = TINY_CONFIGS[model]["n_layers"]
    else:
        hooked = load_model(model, device=device if executor == "local" else "cpu")
        n_layers = hooked.cfg.n_layers
    config = build(parse_layers(layers, n_layers))
    if executor != "local":
        hooked = None  # the workers load their own copy
    report = run_scan_job(config, registry_pairs(config, data_dir), out, model=hooked, executor=runner,
                          progress=progress, time_budget_s=time_budget * 60 or None)
    if report.tables:
        save_figure(plot_layer_scan(report.tables["summary"]), out / "layer_scan.png")
        from interp_steer.cli.console_output import scan_text

        typer.echo(scan_text(report.tables["summary"]))
    typer.echo(report.summary_line())
    report.raise_if_failed()
    if report.skipped:
        typer.echo(f"{len(report.skipped)} units not started within --time-budget; rerun the same command to continue")
    from interp_steer.report.console import paths_block

    written = [out / f"{n}.{table_format}" for n in ("propensities", "per_sample", "summary")] + [out / "layer_scan.png"]
    typer.echo(paths_block([p for p in written if p.exists()], f"wrote {len(config.units())} (dataset, layer) results"))

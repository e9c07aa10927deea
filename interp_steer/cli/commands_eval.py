"""Evaluation commands: ``evaluate`` (vector × dataset → propensity tables + plots) and ``scan`` (resumable layer scan)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli import app
from interp_steer.cli.config_options import config_option, data_dir_option, device_option, model_option
from interp_steer.cli.options import (
    check_count,
    check_device_option,
    check_fraction,
    parse_float_list,
    parse_layers,
    prepare_out_dir,
    select_layer,
)
from interp_steer.errors import ConfigError
from interp_steer.runs.job_configs import ScanConfig

DEFAULT_MULTIPLIERS = "-1.5,-1,-0.5,0,0.5,1,1.5"


def _check_format(table_format: str) -> None:
    if table_format not in ("parquet", "csv"):
        raise ConfigError(f"--format {table_format!r}: use parquet or csv")


@app.command()
def evaluate(
    vector: Path = typer.Option(..., help="steering vector file (.safetensors)"),
    dataset: str = typer.Option(..., help="dataset spec, e.g. persona:narcissism, xrisk:corrigible-neutral-HHH"),
    out: Path = typer.Option(Path("outputs/evaluate"), help="output directory for tables and plots"),
    layer: Optional[int] = typer.Option(None, help="which layer of a multi-layer vector to evaluate"),
    multipliers: str = typer.Option(DEFAULT_MULTIPLIERS, help="comma-separated steering multipliers (include 0)"),
    units: str = typer.Option("raw", help="multiplier units: raw, or norm (× the layer's mean residual norm)"),
    split: str = typer.Option("test", help="'test': the held-out part of a seeded split; 'all': every pair"),
    test_fraction: float = typer.Option(0.5, help="test share of the split (use the one the vector was trained with)"),
    seed: int = typer.Option(0, help="split seed"),
    n: int = typer.Option(0, help="evaluate at most N samples (0: all)"),
    random_baselines: int = typer.Option(0, help="also evaluate this many norm-matched random vectors"),
    framing: Optional[str] = typer.Option(None, help="ab or free_text (default: the dataset's own)"),
    neutral_n: int = typer.Option(64, help="neutral passages for KL / ΔNLL (0: skip the side effects)"),
    continuation_tokens: int = typer.Option(16, help="greedy unsteered continuation length for ΔNLL (0: none)"),
    kl_budget: float = typer.Option(0.1, help="recommend the largest shift whose KL upper 95% limit is ≤ this"),
    capability: str = typer.Option("", help="capability under steering: 'mmlu', 'truthfulqa' or 'mmlu,truthfulqa'"),
    capability_n: int = typer.Option(100, help="letter-balanced items per capability set"),
    n_generations: int = typer.Option(3, help="evaluated prompts to generate from at every multiplier (0: none)"),
    max_new_tokens: int = typer.Option(32, help="tokens per generation"),
    baseline: bool = typer.Option(True, help="the SYS± persona-prompt baseline at the recommended multiplier"),
    n_boot: int = typer.Option(2000, help="bootstrap resamples for the 95% intervals"),
    model: str = model_option(),
    batch_size: int = typer.Option(32, help="sequences per forward pass"),
    table_format: str = typer.Option("parquet", "--format", help="parquet or csv"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = device_option(),
) -> None:
    """Propensity curves of a steering vector on a dataset with its side effects (neutral KL / ΔNLL, format mass,
    capability, generations), the prompting baseline, tables, plots, steering_card.html and a printed summary."""
    from interp_steer.evaluation.units import check_units
    from interp_steer.models import load_model
    from interp_steer.runs.evaluate import (
        EvaluateConfig,
        EvaluateJob,
        check_kl_budget,
        parse_capability,
        run_evaluate,
    )
    from interp_steer.runs.files import file_sha1
    from interp_steer.runs.runner import preflight
    from interp_steer.steering import SteeringVector

    _check_format(table_format)
    if split not in ("test", "all"):
        raise ConfigError(f"--split {split!r}: use 'test' or 'all'")
    mults = parse_float_list(multipliers, "--multipliers")
    check_units(units)
    check_kl_budget(kl_budget)
    capability_names = parse_capability(capability)
    check_count(n, "--n", zero_means="all")
    check_count(random_baselines, "--random-baselines", minimum=0)
    check_count(batch_size, "--batch-size")
    for value, option in ((neutral_n, "--neutral-n"), (continuation_tokens, "--continuation-tokens"),
                          (n_generations, "--n-generations")):
        check_count(value, option, minimum=0)
    check_count(capability_n, "--capability-n", minimum=2)
    check_count(max_new_tokens, "--max-new-tokens")
    check_count(n_boot, "--n-boot", minimum=100)
    check_fraction(test_fraction, "--test-fraction")
    check_device_option(device)
    prepare_out_dir(out)
    steering_vector = select_layer(SteeringVector.load(vector), layer, vector)
    config = EvaluateConfig(
        vector=str(vector), dataset=dataset, model=model, multipliers=mults, layer=layer, split=split,
        test_fraction=test_fraction, seed=seed, n=n or None, random_baselines=random_baselines, framing=framing,
        batch_size=batch_size, table_format=table_format, device=device, vector_sha1=file_sha1(vector),
        units=units, neutral_n=neutral_n, continuation_tokens=continuation_tokens, capability=capability_names,
        capability_n=capability_n, n_generations=n_generations, max_new_tokens=max_new_tokens, baseline=baseline,
        kl_budget=kl_budget, n_boot=n_boot,
    )
    preflight(config, out)  # the resume guard, before loading the model
    EvaluateJob(config, steering_vector, data_dir).pairs()  # a bad dataset spec fails here, before the model loads
    hooked = load_model(model, device=device)
    steering_vector.check_fits(hooked)
    result = run_evaluate(config, steering_vector, out, model=hooked, data_dir=data_dir)
    from interp_steer.cli.console_output import evaluate_text

    typer.echo(evaluate_text(result.tables, result.baseline, result.recommendation, units, out))


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

    _check_format(table_format)
    mults = parse_float_list(multipliers, "--multipliers")
    parse_layers(layers, None)
    check_count(n_train, "--n-train", zero_means="all")
    check_count(n_test, "--n-test", zero_means="all")
    check_count(batch_size, "--batch-size")
    check_fraction(test_fraction, "--test-fraction")
    check_count(layers_per_unit, "--layers-per-unit", zero_means="all")
    if executor == "local":  # with Ray the device is the workers' (checked where they load the model)
        check_device_option(device)
    if gpus_per_worker > 0 and device == "cpu":
        raise ConfigError(f"--gpus-per-worker {gpus_per_worker:g} with --device cpu: add --device cuda")
    if not time_budget >= 0 or time_budget == float("inf"):  # NaN and inf too: neither is a number of minutes
        raise ConfigError(f"--time-budget {time_budget:g}: give minutes ≥ 0 (0: no limit)")
    runner = make_executor(executor, address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                           torch_threads=torch_threads or None)

    def build(layer_list):
        return ScanConfig(
            model=model, datasets=list(dataset), layers=layer_list, multipliers=mults, n_train=n_train or None,
            n_test=n_test or None, test_fraction=test_fraction, framing=framing, seed=seed, batch_size=batch_size,
            table_format=table_format, engine=engine, layers_per_unit=layers_per_unit or None, device=device,
        )

    provisional = build([0])
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

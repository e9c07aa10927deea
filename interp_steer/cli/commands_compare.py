"""``compare``: CAA vs SAE-targeted vs SAE decoder-direction vectors at equal norm (see :mod:`interp_steer.runs.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import config_option
from interp_steer.cli.options import check_count, check_device_option, parse_float_list, parse_int_list, prepare_out_dir
from interp_steer.runs.job_configs import CompareConfig


@app.command()
def compare(
    dataset: str = config_option(CompareConfig, "dataset"),
    out: Path = typer.Option(..., help="output directory (report.md, PNGs, CSVs, vectors/)"),
    layer: int = config_option(CompareConfig, "layer"),
    sae: str = config_option(CompareConfig, "sae"),
    targets: Optional[str] = config_option(CompareConfig, "targets"),
    n_targets: int = config_option(CompareConfig, "n_targets"),
    n_decoder_baselines: int = config_option(CompareConfig, "n_decoder_baselines"),
    n_train: int = config_option(CompareConfig, "n_train"),
    n_test: int = config_option(CompareConfig, "n_test"),
    n_texts: int = config_option(CompareConfig, "n_texts"),
    max_text_tokens: int = config_option(CompareConfig, "max_text_tokens"),
    text_source: str = config_option(CompareConfig, "text_source"),
    n_probe: int = config_option(CompareConfig, "n_probe"),
    ridge: float = config_option(CompareConfig, "ridge"),
    multipliers: str = config_option(CompareConfig, "multipliers"),
    n_generations: int = config_option(CompareConfig, "n_generations"),
    max_new_tokens: int = config_option(CompareConfig, "max_new_tokens"),
    framing: Optional[str] = config_option(CompareConfig, "framing"),
    model: str = config_option(CompareConfig, "model"),
    seed: int = config_option(CompareConfig, "seed"),
    threads: int = typer.Option(1, help="torch CPU threads"),
    data_dir: Optional[Path] = config_option(CompareConfig, "data_dir"),
    device: str = config_option(CompareConfig, "device"),
) -> None:
    """Compare CAA, SAE-TS, SAE decoder-direction and random vectors at equal norm: feature effects, steerability."""
    import torch

    from interp_steer.runs.compare import run_compare

    config = CompareConfig(  # checks every option it holds
        dataset=dataset, layer=layer, sae=sae, targets=parse_int_list(targets, "--targets") if targets and targets.strip() else None, n_targets=n_targets,
        n_decoder_baselines=n_decoder_baselines, n_train=n_train, n_test=n_test, n_texts=n_texts,
        max_text_tokens=max_text_tokens, text_source=text_source, n_probe=n_probe, ridge=ridge,
        multipliers=parse_float_list(multipliers, "--multipliers"),
        n_generations=n_generations, max_new_tokens=max_new_tokens, model=model, framing=framing, seed=seed,
        data_dir=str(data_dir) if data_dir else None, device=device,
    )
    check_count(threads, "--threads")  # an option of the process, not of the config
    check_device_option(device)
    prepare_out_dir(out)
    torch.set_num_threads(threads)
    run_compare(config, out, echo=typer.echo)

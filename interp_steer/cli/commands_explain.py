"""``explain`` and ``why``: mechanistic reports on anti-steerable samples (see :mod:`interp_steer.runs.explain` and
:mod:`interp_steer.runs.why`). Options come from :class:`ExplainConfig` / :class:`WhyConfig`, which check them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import config_option
from interp_steer.cli.options import check_device_option, parse_float_list, prepare_out_dir, select_layer
from interp_steer.config.lists import parse_name_list
from interp_steer.runs.analysis_configs import ExplainConfig, WhyConfig


@app.command()
def explain(
    vector: Path = config_option(ExplainConfig, "vector"),
    dataset: str = config_option(ExplainConfig, "dataset"),
    out: Path = typer.Option(..., help="output directory (report.md, PNGs, HTML views, CSV tables)"),
    layer: Optional[int] = config_option(ExplainConfig, "layer"),
    n: int = config_option(ExplainConfig, "n"),
    sae: Optional[str] = config_option(ExplainConfig, "sae"),
    framing: Optional[str] = config_option(ExplainConfig, "framing"),
    multipliers: str = config_option(ExplainConfig, "multipliers"),
    patch_multiplier: Optional[float] = config_option(ExplainConfig, "patch_multiplier"),
    eps: Optional[float] = config_option(ExplainConfig, "eps"),
    model: str = config_option(ExplainConfig, "model"),
    seed: int = config_option(ExplainConfig, "seed"),
    data_dir: Optional[Path] = config_option(ExplainConfig, "data_dir"),
    device: str = config_option(ExplainConfig, "device"),
) -> None:
    """Explain anti-steerable samples: breakdown, activation patching, direct effects, attention views."""
    config = ExplainConfig(
        vector=str(vector), dataset=dataset, layer=layer, n=n, sae=sae, model=model, framing=framing,
        multipliers=parse_float_list(multipliers, "--multipliers"), patch_multiplier=patch_multiplier, eps=eps,
        seed=seed, data_dir=str(data_dir) if data_dir else None, device=device,
    )
    check_device_option(device)
    from interp_steer.runs.explain import run_explain
    from interp_steer.steering import SteeringVector

    select_layer(SteeringVector.load(vector), layer, vector)  # a multi-hook vector needs --layer: say so now
    prepare_out_dir(out)
    run_explain(config, out, echo=typer.echo)


@app.command()
def why(
    out: Path = typer.Option(..., help="output directory: one folder per case (README.md, PNGs, HTML views, CSV tables)"),
    cases: str = config_option(WhyConfig, "cases"),
    n_train: int = config_option(WhyConfig, "n_train"),
    n_test: int = config_option(WhyConfig, "n_test"),
    multipliers: str = config_option(WhyConfig, "multipliers"),
    patch_multiplier: Optional[float] = config_option(WhyConfig, "patch_multiplier"),
    sae: Optional[str] = config_option(WhyConfig, "sae"),
    n_boot: int = config_option(WhyConfig, "n_boot"),
    n_folds: int = config_option(WhyConfig, "n_folds"),
    patch_layer_step: int = config_option(WhyConfig, "patch_layer_step"),
    head_regions: str = config_option(WhyConfig, "head_regions"),
    timing_sites: int = config_option(WhyConfig, "timing_sites"),
    model: str = config_option(WhyConfig, "model"),
    seed: int = config_option(WhyConfig, "seed"),
    data_dir: Optional[Path] = config_option(WhyConfig, "data_dir"),
    device: str = config_option(WhyConfig, "device"),
) -> None:
    """Why are free-text samples anti-steerable? Slope-CI groups, held-out factor tests, SAE latents, a predictor
    from unsteered features, prefix-cached patching and views, one resumable unit per case."""
    config = WhyConfig(
        cases=parse_name_list(cases), model=model, multipliers=parse_float_list(multipliers, "--multipliers"),
        patch_multiplier=patch_multiplier, n_train=n_train, n_test=n_test, seed=seed, sae=sae or None, n_boot=n_boot,
        n_folds=n_folds, timing_sites=timing_sites, patch_layer_step=patch_layer_step,
        head_regions=parse_name_list(head_regions), data_dir=str(data_dir) if data_dir else None, device=device,
    )
    check_device_option(device)
    prepare_out_dir(out)
    from interp_steer.runs.why import run_why

    run_why(config, out, echo=typer.echo)

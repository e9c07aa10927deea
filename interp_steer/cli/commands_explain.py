"""``explain``: a mechanistic report on why some samples are anti-steerable (see :mod:`interp_steer.runs.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli import app
from interp_steer.cli.config_options import data_dir_option, device_option, model_option
from interp_steer.cli.options import (
    check_count,
    check_device_option,
    check_finite,
    parse_float_list,
    prepare_out_dir,
    select_layer,
)
from interp_steer.errors import ConfigError


@app.command()
def explain(
    vector: Path = typer.Option(..., help="steering vector file (.safetensors)"),
    dataset: str = typer.Option(..., help="dataset spec, e.g. persona:desire-for-acquiring-power or builtin:sentiment"),
    out: Path = typer.Option(..., help="output directory (report.md, PNGs, HTML views, CSV tables)"),
    layer: Optional[int] = typer.Option(None, help="layer of the vector to use (needed if the vector has several)"),
    n: int = typer.Option(40, help="number of held-out samples to analyse"),
    sae: Optional[str] = typer.Option(None, help="sae-lens SAE directory or bundled SAE name (optional)"),
    framing: Optional[str] = typer.Option(None, help="ab or free_text (default: the dataset's own)"),
    multipliers: str = typer.Option("-2,-1,0,1,2", help="multipliers of the steerability fit (must include 0)"),
    patch_multiplier: Optional[float] = typer.Option(None, help="multiplier for patching/direct effects (default: max |multiplier|)"),
    eps: Optional[float] = typer.Option(None, help="|slope| ≤ eps is 'insensitive' (default 0.1 × median |slope|)"),
    model: str = model_option(),
    seed: int = typer.Option(0, help="seed of the train/test split (held-out samples come from its test part)"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = device_option(),
) -> None:
    """Explain anti-steerable samples: breakdown, activation patching, direct effects, attention views."""
    from interp_steer.runs.explain import ExplainConfig, run_explain

    mults = parse_float_list(multipliers, "--multipliers")
    check_count(n, "--n", minimum=2)
    check_finite(patch_multiplier, "--patch-multiplier")
    if eps is not None and check_finite(eps, "--eps") is not None and eps < 0:
        raise ConfigError(f"--eps {eps:g}: must be ≥ 0")
    check_device_option(device)
    from interp_steer.steering import SteeringVector

    select_layer(SteeringVector.load(vector), layer, vector)  # a multi-hook vector needs --layer: say so now
    prepare_out_dir(out)
    config = ExplainConfig(
        vector=str(vector), dataset=dataset, layer=layer, n=n, sae=sae, model=model, framing=framing,
        multipliers=mults, patch_multiplier=patch_multiplier, eps=eps,
        seed=seed, data_dir=str(data_dir) if data_dir else None, device=device,
    )
    run_explain(config, out, echo=typer.echo)


@app.command()
def why(
    out: Path = typer.Option(..., help="output directory: one folder per case (README.md, PNGs, HTML views, CSV tables)"),
    cases: str = typer.Option(",".join(["builtin:sentiment@9", "persona:narcissism@free_text@18"]),
                              help="comma-separated free-text cases <dataset spec>@<layer>"),
    n_train: int = typer.Option(40, help="training pairs of each case's CAA vector"),
    n_test: int = typer.Option(40, help="held-out samples analysed per case"),
    multipliers: str = typer.Option("-1.5,-0.75,0,0.75,1.5", help="multipliers of the slope fit (≥ 3, including 0)"),
    patch_multiplier: Optional[float] = typer.Option(None, help="multiplier of patching / direct effects / views (default: max |multiplier|)"),
    sae: Optional[str] = typer.Option("smollm2-135m-l12", help="SAE for the latent table ('' for none)"),
    n_boot: int = typer.Option(1000, help="bootstrap draws of every CI"),
    n_folds: int = typer.Option(5, help="folds of the out-of-fold predictor"),
    patch_layer_step: int = typer.Option(1, help="patch every k-th layer after the vector's"),
    head_regions: str = typer.Option("prompt,completion,all", help="regions over which each head is patched"),
    timing_sites: int = typer.Option(96, help="sites timed with full-sequence reruns vs the prefix cache"),
    model: str = model_option(),
    seed: int = typer.Option(0, help="seed of the splits and bootstraps"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = device_option(),
) -> None:
    """Why are free-text samples anti-steerable? Slope-CI groups, held-out factor tests, SAE latents, a predictor
    from unsteered features, prefix-cached patching and views, one resumable unit per case."""
    from interp_steer.runs.why import WhyConfig, run_why

    mults = parse_float_list(multipliers, "--multipliers")
    check_count(n_test, "--n-test", minimum=2)
    check_count(n_train, "--n-train", minimum=2)
    check_finite(patch_multiplier, "--patch-multiplier")
    check_device_option(device)
    case_list = [c.strip() for c in cases.split(",") if c.strip()]
    config = WhyConfig(
        cases=case_list, model=model, multipliers=mults, patch_multiplier=patch_multiplier, n_train=n_train,
        n_test=n_test, seed=seed, sae=sae or None, n_boot=n_boot, n_folds=n_folds, timing_sites=timing_sites,
        patch_layer_step=patch_layer_step, head_regions=[r.strip() for r in head_regions.split(",") if r.strip()],
        data_dir=str(data_dir) if data_dir else None, device=device,
    )
    prepare_out_dir(out)
    run_why(config, out, echo=typer.echo)

"""``explain``: a mechanistic report on why some samples are anti-steerable (see :mod:`interp_steer.runs.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli import app
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
    model: str = typer.Option("smollm2-135m"),
    seed: int = typer.Option(0, help="seed of the train/test split (held-out samples come from its test part)"),
    data_dir: Optional[Path] = typer.Option(None),
    device: str = typer.Option("cpu"),
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

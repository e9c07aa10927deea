"""``tune``: scan layers × multipliers for behaviour shift and side effects; recommend a setting within a KL budget."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli import app
from interp_steer.cli.options import (
    check_count,
    check_device_option,
    check_finite,
    check_fraction,
    parse_float_list,
    parse_layers,
    prepare_out_dir,
)
from interp_steer.errors import ConfigError

DEFAULT_TUNE_MULTIPLIERS = "0,0.25,0.5,1,2,4"


@app.command()
def tune(
    dataset: str = typer.Option(..., help="behaviour dataset spec, e.g. builtin:sentiment, persona:narcissism@free_text"),
    layers: str = typer.Option(..., help="layers to scan: '6,12,18', '3-12' or 'all'"),
    vector: Optional[Path] = typer.Option(None, help="tune this vector file's directions (default: CAA on the train split)"),
    multipliers: str = typer.Option(DEFAULT_TUNE_MULTIPLIERS, help="comma-separated multipliers, including 0"),
    units: str = typer.Option("raw", help="multiplier units: raw, or norm (× the layer's mean residual norm)"),
    kl_budget: float = typer.Option(0.1, help="largest acceptable upper 95% limit of the mean KL, nats/token"),
    out: Path = typer.Option(Path("outputs/tune"), help="output directory (resumable)"),
    n_test: int = typer.Option(50, help="held-out samples (0: the whole test part)"),
    n_train: int = typer.Option(0, help="training pairs for CAA (0: the whole train part)"),
    test_fraction: float = typer.Option(0.5, help="test share of the seeded split"),
    seed: int = typer.Option(0, help="split and bootstrap seed"),
    framing: Optional[str] = typer.Option(None, help="ab or free_text (default: the dataset's own)"),
    n_neutral: int = typer.Option(100, help="neutral passages for KL / ΔNLL"),
    continuation_tokens: int = typer.Option(16, help="greedy unsteered continuation length for ΔNLL (0: none)"),
    n_generations: int = typer.Option(4, help="held-out prompts to generate from at the chosen setting"),
    max_new_tokens: int = typer.Option(32, help="tokens per generation"),
    capability: int = typer.Option(0, help="also score N letter-balanced MMLU and TruthfulQA items (0: skip)"),
    n_boot: int = typer.Option(2000, help="bootstrap resamples for the 95% intervals"),
    model: str = typer.Option("smollm2-135m", help="model spec (see interp_steer.models.load_model)"),
    batch_size: int = typer.Option(16, help="sequences per forward pass"),
    table_format: str = typer.Option("csv", "--format", help="csv or parquet"),
    data_dir: Optional[Path] = typer.Option(None, help="data root (default $INTERP_STEER_DATA or ../shared/data)"),
    device: str = typer.Option("cpu"),
) -> None:
    """Which layer and how strong: behaviour shift vs KL on neutral text per (layer, multiplier), with 95% CIs,
    a recommendation within --kl-budget, the persona-prompt baseline, steered generations, plot and report."""
    from interp_steer.runs.runner import preflight
    from interp_steer.runs.tune import TuneConfig

    mults = parse_float_list(multipliers, "--multipliers")
    layer_list = parse_layers(layers, None)
    check_finite(kl_budget, "--kl-budget", positive=True)
    for value, option, zero in ((n_test, "--n-test", "all"), (n_train, "--n-train", "all"),
                                (capability, "--capability", "skip")):
        check_count(value, option, zero_means=zero)
    for value, option in ((n_neutral, "--n-neutral"), (batch_size, "--batch-size"), (max_new_tokens, "--max-new-tokens")):
        check_count(value, option)
    for value, option in ((continuation_tokens, "--continuation-tokens"), (n_generations, "--n-generations")):
        check_count(value, option, minimum=0)
    check_fraction(test_fraction, "--test-fraction")
    check_device_option(device)
    if vector is not None and not vector.is_file():
        raise ConfigError(f"--vector {vector}: no such file")
    prepare_out_dir(out)
    if not layer_list:  # 'all': resolved once the model is known
        from interp_steer.models import load_model

        hooked = load_model(model, device=device)
        layer_list = parse_layers(layers, hooked.cfg.n_layers)
    else:
        hooked = None
    config = TuneConfig(model=model, dataset=dataset, layers=layer_list, multipliers=mults, units=units,
                        kl_budget=kl_budget, vector=None if vector is None else str(vector), n_train=n_train or None,
                        n_test=n_test or None, test_fraction=test_fraction, framing=framing, seed=seed,
                        n_neutral=n_neutral, continuation_tokens=continuation_tokens, n_boot=n_boot,
                        batch_size=batch_size, table_format=table_format, device=device)
    preflight(config, out)
    from interp_steer.data import load_dataset
    from interp_steer.models import load_model
    from interp_steer.tune import run_tune

    load_dataset(dataset, data_dir=data_dir, framing=framing, limit=1)  # a bad spec fails before the model loads
    hooked = hooked or load_model(model, device=device)
    parse_layers(",".join(map(str, layer_list)), hooked.cfg.n_layers)
    result = run_tune(config, out, model=hooked, data_dir=data_dir, n_generations=n_generations,
                      max_new_tokens=max_new_tokens, capability_n=capability)
    rec = result.recommendation
    if rec.get("found"):
        typer.echo(f"recommended: layer {rec['layer']}, multiplier {rec['multiplier']:g} ({units}); shift "
                   f"{rec['shift']:.3f} [{rec['shift_lo']:.3f}, {rec['shift_hi']:.3f}], KL {rec['kl']:.4f} "
                   f"(upper {rec['kl_hi']:.4f} ≤ {kl_budget:g})")
    else:
        typer.echo(f"no recommendation: {rec['reason']}")
    typer.echo(f"report: {out / 'report.md'}")

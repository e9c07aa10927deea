"""Core commands: ``extract`` (dataset → vector file), ``generate`` (prompt ± vector), ``demo`` (the main job)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli import app
from interp_steer.cli.options import (
    check_count, check_device_option, parse_float_list, parse_layers, prepare_out_dir, prepare_out_file,
)
from interp_steer.errors import ConfigError


@app.command()
def extract(
    dataset: str = typer.Option(..., help="dataset spec, e.g. builtin:sentiment, persona:narcissism, caa:sycophancy"),
    out: Path = typer.Option(..., help="output .safetensors file (a .json provenance sidecar is written beside it)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing vector file at --out"),
    layers: str = typer.Option("12", help="layer(s): '12', '3,6,12', '3-12' or 'all'"),
    method: str = typer.Option("caa", help="extraction method (caa, bipo, ...)"),
    model: str = typer.Option("smollm2-135m", help="model spec (see interp_steer.models.load_model)"),
    framing: Optional[str] = typer.Option(None, help="ab or free_text (default: the dataset's own)"),
    n_train: int = typer.Option(0, help="use only the first N pairs (0: all)"),
    data_dir: Optional[Path] = typer.Option(None, help="data root (default $INTERP_STEER_DATA or ../shared/data)"),
    device: str = typer.Option("cpu"),
) -> None:
    """Extract a steering vector from a contrastive dataset and save it with provenance."""
    from interp_steer.data import load_dataset
    from interp_steer.methods import EXTRACTION_METHODS
    from interp_steer.models import load_model

    if method not in EXTRACTION_METHODS:
        raise ConfigError(f"--method {method!r} unknown; choose one of {sorted(EXTRACTION_METHODS)}")
    parse_layers(layers, None)  # syntax (empty, reversed, repeated) before anything is loaded
    check_count(n_train, "--n-train", zero_means="all")
    check_device_option(device)
    out = prepare_out_file(out if out.is_dir() or out.suffix == ".safetensors" else out.with_suffix(".safetensors"), "--out",
                           force=force, sidecar_suffixes=(".json",))
    pairs = load_dataset(dataset, data_dir=data_dir, framing=framing, limit=n_train or None)
    hooked = load_model(model, device=device)
    vector = EXTRACTION_METHODS[method](hooked, pairs, parse_layers(layers, hooked.cfg.n_layers))
    vector.provenance.model = model
    path = vector.save(out)
    norms = ", ".join(f"{name}: {norm:.2f}" for name, norm in vector.norms().items())
    typer.echo(f"wrote {path} ({method}, {len(pairs)} pairs of {dataset}; norms {norms})")


@app.command()
def generate(
    vector: Path = typer.Option(..., help="steering vector file (.safetensors)"),
    prompt: str = typer.Option(..., help="user message (wrapped in the model's chat template)"),
    multipliers: str = typer.Option("-4,0,4", help="comma-separated multipliers to compare"),
    model: str = typer.Option("smollm2-135m"),
    max_new_tokens: int = typer.Option(40),
    system_prompt: Optional[str] = typer.Option(None, help="system prompt (default: none)"),
    device: str = typer.Option("cpu"),
) -> None:
    """Generate from a prompt with the vector at several multipliers, side by side."""
    from interp_steer.models import load_model
    from interp_steer.steering import SteeringVector, chat_prompt
    from interp_steer.steering import generate as steered_generate

    mults = parse_float_list(multipliers, "--multipliers")
    check_count(max_new_tokens, "--max-new-tokens")
    if not prompt.strip():
        raise ConfigError("--prompt is empty; give a user message")
    check_device_option(device)
    steering_vector = SteeringVector.load(vector)
    hooked = load_model(model, device=device)
    steering_vector.check_fits(hooked)
    text = chat_prompt(hooked, prompt, system_prompt)
    n_prompt = len(hooked.tokenizer(text, add_special_tokens=False).input_ids)
    if n_prompt + max_new_tokens > hooked.cfg.n_ctx:
        raise ConfigError(f"--prompt is {n_prompt} tokens in the chat template; with --max-new-tokens {max_new_tokens} "
                          f"that exceeds the model's context of {hooked.cfg.n_ctx} tokens")
    for mult in mults:
        completion = steered_generate(hooked, text, steering_vector, mult, max_new_tokens=max_new_tokens)
        typer.echo(f"[x{mult:+g}] {completion.strip()}")


@app.command()
def demo(
    out: Path = typer.Option(Path("outputs/demo"), help="output directory for the vector, table and plot"),
    dataset: str = typer.Option("builtin:sentiment", help="dataset spec"),
    layers: str = typer.Option("6,12,18", help="layers to extract at; the propensity table uses --eval-layer"),
    eval_layer: int = typer.Option(18, help="layer whose vector is evaluated and used for generation"),
    framing: str = typer.Option("free_text", help="free_text or ab"),
    multipliers: str = typer.Option("-2,-1,0,1,2"),
    n_train: int = typer.Option(60),
    n_test: int = typer.Option(40),
    model: str = typer.Option("smollm2-135m"),
    data_dir: Optional[Path] = typer.Option(None),
    device: str = typer.Option("cpu"),
) -> None:
    """The main job: extract CAA vectors on the embedded model, generate, measure propensity, write a plot."""
    from interp_steer.runs.demo import DemoConfig, run_demo

    requested = parse_layers(layers, None)
    if requested and eval_layer not in requested:  # "all" ([]) is checked against the model later
        raise ConfigError(f"--eval-layer {eval_layer} is not one of --layers {layers!r}")
    check_count(n_train, "--n-train", minimum=2)
    check_count(n_test, "--n-test", minimum=2)
    check_device_option(device)
    prepare_out_dir(out)
    config = DemoConfig(
        model=model, dataset=dataset, framing=framing, layers=layers, eval_layer=eval_layer,
        multipliers=parse_float_list(multipliers, "--multipliers"), n_train=n_train, n_test=n_test,
        data_dir=str(data_dir) if data_dir else None, device=device,
    )
    run_demo(config, out, echo=typer.echo)

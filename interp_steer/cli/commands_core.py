"""Core commands: ``extract`` (dataset → vector file), ``generate`` (prompt ± vector), ``demo`` (the main job)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional, no_type_check

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import config_option, data_dir_option, device_option, model_option
from interp_steer.cli.options import (
    check_count,
    check_device_option,
    check_fraction,
    parse_float_list,
    parse_layers,
    parse_method_options,
    prepare_out_dir,
    prepare_out_file,
)
from interp_steer.errors import ConfigError
from interp_steer.runs.job_configs import DemoConfig


def _show_method_fields(method: str) -> None:
    """Print ``method``'s config fields (``--help-method``) and end the command."""
    from interp_steer.methods.registry import describe_config, method_entry

    entry = method_entry(method, "--method")
    typer.echo(f"--method {method}: {entry.summary}")
    typer.echo(f"config {entry.config_class.__name__}; set fields with --set FIELD=VALUE (repeatable):")
    typer.echo(describe_config(entry.config_class, exclude=entry.cli_fields, aliases=entry.aliases))
    if entry.cli_fields:
        typer.echo(f"(set by the command: {', '.join(entry.cli_fields)} from --layers)")
    raise typer.Exit(0)


# The two option callbacks below are excluded from run-time type checking: typer finds the context parameter by its
# ``typer.Context`` annotation but passes its (vendored) click context, which is not a ``typer.Context`` instance.
@no_type_check
def _method_callback(ctx: typer.Context, value: str) -> str:
    # --method and --help-method are both eager, so whichever is processed second shows the fields
    ctx.meta["extract_method"] = value
    if ctx.meta.get("extract_help_method"):
        _show_method_fields(value)
    return value


@no_type_check
def _help_method_callback(ctx: typer.Context, value: bool) -> bool:
    if value:
        ctx.meta["extract_help_method"] = True
        if "extract_method" in ctx.meta:
            _show_method_fields(ctx.meta["extract_method"])
    return value


@app.command()
def extract(
    dataset: str = typer.Option(..., help="dataset spec, e.g. builtin:sentiment, persona:narcissism, caa:sycophancy"),
    out: Path = typer.Option(..., help="output .safetensors file (a .json provenance sidecar is written beside it)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing vector file at --out"),
    layers: str = typer.Option("12", help="layer(s): '12', '3,6,12', '3-12' or 'all' (bipo: one layer)"),
    method: str = typer.Option("caa", help="extraction method: caa, bipo, pca_diff, pca_centred, probe, mean_centring "
                                           "or reps (see --help-method)",
                               is_eager=True, callback=_method_callback),
    set_: Optional[List[str]] = typer.Option(
        None, "--set", metavar="FIELD=VALUE",
        help="a field of the method's config, e.g. --set steps=30 --set lr=5e-4 (repeatable; --help-method lists them)"),
    help_method: bool = typer.Option(False, "--help-method", is_eager=True, callback=_help_method_callback,
                                     help="list the --set fields of --method with their types and defaults, then exit"),
    model: str = model_option(),
    framing: Optional[str] = typer.Option(None, help="ab or free_text (default: the dataset's own)"),
    n_train: int = typer.Option(0, help="use only the first N pairs (0: all)"),
    holdout: float = typer.Option(
        0.0, help="leave out the test part of the seeded split with this test fraction and extract from its train "
                  "part (0.2 with the same --seed is the split `explain` holds out); 0: all pairs"),
    seed: int = typer.Option(0, help="seed of the --holdout split"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = device_option(),
) -> None:
    """Extract a steering vector from a contrastive dataset and save it with provenance.

    With ``--holdout F`` the vector sees only the train part of the split ``DataSplit(F, seed)``
    (then its first ``--n-train`` pairs); the split is recorded in the provenance (``extra.split``), so
    ``explain`` can confirm that its held-out samples were not used for training.
    """
    from interp_steer.data import DataSplit, load_dataset
    from interp_steer.methods.registry import method_entry
    from interp_steer.models import load_model
    from interp_steer.steering import SteeringVector

    entry = method_entry(method, "--method")
    if entry.from_pairs is None:
        raise ConfigError(f"--method {method}: {entry.summary}; `extract` runs only pair-based methods "
                          f"({', '.join(n for n, e in _pair_methods())})")
    config = parse_method_options(method, set_, "--set")  # type-checked before any data or model is loaded
    requested = parse_layers(layers, None)  # syntax (empty, reversed, repeated) before anything is loaded
    if entry.one_layer and len(requested) != 1:
        raise ConfigError(f"--layers {layers!r}: --method {method} trains one vector at one layer; give one layer")
    check_count(n_train, "--n-train", zero_means="all")
    if holdout != 0.0:
        check_fraction(holdout, "--holdout")
    check_device_option(device)
    out = prepare_out_file(out if out.is_dir() or out.suffix == ".safetensors" else out.with_suffix(".safetensors"), "--out",
                           force=force, sidecar_suffixes=(".json",))
    extra: dict = {}
    if holdout:
        split = DataSplit(holdout, seed, n_train=n_train or None)
        pairs = split.train(load_dataset(dataset, data_dir=data_dir, framing=framing))
        extra = {"split": {"part": "train", **split.to_dict(), "n_train": len(pairs)}}
    else:
        pairs = load_dataset(dataset, data_dir=data_dir, framing=framing, limit=n_train or None)
    hooked = load_model(model, device=device)
    vector = entry.from_pairs(hooked, pairs, parse_layers(layers, hooked.cfg.n_layers), config)
    provenance = replace(vector.provenance, model=model, extra={**vector.provenance.extra, **extra})
    vector = SteeringVector(vector.directions, provenance)
    path = vector.save(out)
    norms = ", ".join(f"{name}: {norm:.2f}" for name, norm in vector.norms().items())
    typer.echo(f"wrote {path} ({method}, {len(pairs)} pairs of {dataset}; norms {norms})")


def _pair_methods():
    from interp_steer.methods.registry import EXTRACTION_METHODS

    return [(name, e) for name, e in EXTRACTION_METHODS.items() if e.from_pairs is not None]


@app.command()
def generate(
    vector: Path = typer.Option(..., help="steering vector file (.safetensors)"),
    prompt: str = typer.Option(..., help="user message (wrapped in the model's chat template)"),
    multipliers: str = typer.Option("-4,0,4", help="comma-separated multipliers to compare"),
    model: str = model_option(),
    max_new_tokens: int = typer.Option(40),
    system_prompt: Optional[str] = typer.Option(None, help="system prompt (default: none)"),
    device: str = device_option(),
) -> None:
    """Generate from a prompt with the vector at several multipliers, side by side."""
    from interp_steer.models import load_model
    from interp_steer.steering import SteeringVector, chat_prompt, generate_batch

    mults = parse_float_list(multipliers, "--multipliers")
    check_count(max_new_tokens, "--max-new-tokens")
    if not prompt.strip():
        raise ConfigError("--prompt is empty; give a user message")
    check_device_option(device)
    steering_vector = SteeringVector.load(vector)
    hooked = load_model(model, device=device)
    steering_vector.check_fits(hooked)
    text = chat_prompt(hooked, prompt, system_prompt)
    assert hooked.tokenizer is not None
    from interp_steer.data.tokenization import encode_sequence

    n_prompt = len(encode_sequence(hooked.tokenizer, text))
    if n_prompt + max_new_tokens > hooked.cfg.n_ctx:
        raise ConfigError(f"--prompt is {n_prompt} tokens in the chat template; with --max-new-tokens {max_new_tokens} "
                          f"that exceeds the model's context of {hooked.cfg.n_ctx} tokens")
    # every multiplier is one row of a single batched, KV-cached generation
    completions = generate_batch(hooked, [text] * len(mults), steering_vector, mults, max_new_tokens=max_new_tokens)
    for mult, completion in zip(mults, completions):
        typer.echo(f"[x{mult:+g}] {completion.strip()}")


@app.command()
def demo(
    out: Path = typer.Option(Path("outputs/demo"), help="output directory for the vector, table and plot"),
    dataset: str = config_option(DemoConfig, "dataset"),
    layers: str = config_option(DemoConfig, "layers"),
    eval_layer: int = config_option(DemoConfig, "eval_layer"),
    framing: str = config_option(DemoConfig, "framing"),
    multipliers: str = config_option(DemoConfig, "multipliers"),
    n_train: int = config_option(DemoConfig, "n_train"),
    n_test: int = config_option(DemoConfig, "n_test"),
    n_neutral: int = config_option(DemoConfig, "n_neutral"),
    max_new_tokens: int = config_option(DemoConfig, "max_new_tokens"),
    model: str = config_option(DemoConfig, "model"),
    data_dir: Optional[Path] = config_option(DemoConfig, "data_dir"),
    device: str = config_option(DemoConfig, "device"),
) -> None:
    """The main job: extract CAA vectors on the embedded model, generate, measure propensity, side effects and the
    prompting baseline, write tables and plots (one timed progress line per step)."""
    from interp_steer.models.embedded import demo_layers
    from interp_steer.runs.demo import run_demo

    fields = DemoConfig.__dataclass_fields__
    if layers == fields["layers"].default and eval_layer == fields["eval_layer"].default:
        layers, eval_layer = demo_layers(model) or (layers, eval_layer)  # the same depths on a registered model
    config = DemoConfig(  # checks every option (layers' syntax, --eval-layer among them, counts, multipliers)
        model=model, dataset=dataset, framing=framing, layers=layers, eval_layer=eval_layer,
        multipliers=parse_float_list(multipliers, "--multipliers"), n_train=n_train, n_test=n_test,
        n_neutral=n_neutral, max_new_tokens=max_new_tokens, data_dir=str(data_dir) if data_dir else None,
        device=device,
    )
    check_device_option(device)
    prepare_out_dir(out)
    run_demo(config, out, echo=typer.echo)

"""Interop commands: ``export`` (llama.cpp GGUF, steering-vectors dict, reproducibility bundle), ``import``, ``verify``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import data_dir_option, device_option
from interp_steer.cli.options import check_device_option, check_finite, prepare_out_dir, prepare_out_file
from interp_steer.errors import ConfigError

FORMATS = ("gguf", "steering-vectors")


def _check_format(value: str, option: str = "--format") -> str:
    if value not in FORMATS:
        raise ConfigError(f"{option} {value!r}: use one of {', '.join(FORMATS)}")
    return value


@app.command()
def export(
    vector: Path = typer.Option(..., help="steering vector file (.safetensors)"),
    format: str = typer.Option("gguf", "--format",
                               help="gguf: a llama.cpp control vector (also repeng's file format); steering-vectors: "
                                    "a torch file of SteeringVector(**kwargs)"),
    out: Optional[Path] = typer.Option(None, help="output file (.gguf or .pt)"),
    bundle: Optional[Path] = typer.Option(None, help="write a reproducibility bundle into this directory instead"),
    model_hint: Optional[str] = typer.Option(None, help="gguf: controlvector.model_hint (the model family; default: "
                                             "from the vector's provenance, e.g. llama, gemma3)"),
    model: Optional[str] = typer.Option(None, help="bundle: model spec to record (default: the vector's provenance)"),
    data_dir: Optional[Path] = data_dir_option(help="bundle: data root to reload the training rows from"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing --out file"),
) -> None:
    """Write a vector for another tool (llama.cpp, steering-vectors, repeng) or as a reproducibility bundle."""
    from interp_steer.steering import SteeringVector

    if (out is None) == (bundle is None):
        raise ConfigError("give exactly one of --out FILE (with --format) and --bundle DIR")
    if out is not None:
        _check_format(format)
        suffix = ".gguf" if format == "gguf" else ".pt"
        out = prepare_out_file(out if out.suffix == suffix else out.with_suffix(suffix), "--out", force=force)
        steering_vector = SteeringVector.load(vector)
        if format == "gguf":
            from interp_steer.interop import gguf_layer_of, to_gguf

            path = to_gguf(steering_vector, out, model_hint=model_hint)
            layers = ", ".join(f"{n} → direction.{gguf_layer_of(n)}" for n in steering_vector.hook_names)
            typer.echo(f"wrote {path} (llama.cpp control vector: {layers}; use --control-vector {path.name})")
        else:
            import torch

            from interp_steer.interop import to_steering_vectors

            kwargs = to_steering_vectors(steering_vector)
            torch.save(kwargs, out)
            typer.echo(f"wrote {out} (steering_vectors.SteeringVector(**torch.load(..., weights_only=True)): layer_type "
                       f"{kwargs['layer_type']}, layers {sorted(kwargs['layer_activations'])})")
        return
    from interp_steer.interop.bundle import write_bundle

    assert bundle is not None  # one of --out / --bundle is required above
    prepare_out_dir(bundle, "--bundle")
    steering_vector = SteeringVector.load(vector)
    path = write_bundle(steering_vector, bundle, data_dir=data_dir, model=model)
    typer.echo(f"wrote bundle {path} ({', '.join(sorted(p.name for p in path.iterdir()))})")


@app.command("import")
def import_vector(
    input: Path = typer.Option(..., "--input", help="a llama.cpp / repeng .gguf control vector or a steering-vectors .pt"),
    out: Path = typer.Option(..., help="output .safetensors file"),
    format: str = typer.Option("gguf", "--format", help="gguf or steering-vectors"),
    n_layers: Optional[int] = typer.Option(None, help="the target model's layer count (checks layers; resolves "
                                                         "negative steering-vectors layers)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing --out file"),
) -> None:
    """Read another tool's vector into an interp-steer vector file."""
    _check_format(format)
    if n_layers is not None and n_layers < 1:
        raise ConfigError(f"--n-layers {n_layers}: must be ≥ 1")
    out = prepare_out_file(out if out.suffix == ".safetensors" else out.with_suffix(".safetensors"), "--out",
                           force=force, sidecar_suffixes=(".json",))
    if format == "gguf":
        from interp_steer.interop import from_gguf

        vector = from_gguf(input, n_layers=n_layers)
    else:
        from interp_steer.interop import from_steering_vectors
        from interp_steer.interop.peers import load_steering_vectors_file

        vector = from_steering_vectors(load_steering_vectors_file(input), n_layers=n_layers)
    path = vector.save(out)
    typer.echo(f"wrote {path} ({', '.join(vector.hook_names)})")


@app.command()
def verify(
    bundle: Path = typer.Argument(..., help="bundle directory written by `interp-steer export --bundle`"),
    model: Optional[str] = typer.Option(None, help="model spec (default: the one recorded in the bundle)"),
    data_dir: Optional[Path] = data_dir_option(),
    min_cosine: float = typer.Option(0.9999, help="pass when every hook's cosine is at least this"),
    max_relative_error: float = typer.Option(1e-3, help="... and its relative error at most this"),
    device: str = device_option(),
) -> None:
    """Re-extract a bundled vector and report cosine / relative error per hook (exit 1 if it does not match)."""
    from interp_steer.errors import SteeringVectorError
    from interp_steer.interop.bundle import read_bundle, verify_bundle

    check_finite(min_cosine, "--min-cosine")
    check_finite(max_relative_error, "--max-relative-error")
    check_device_option(device)
    if not (bundle / "manifest.json").is_file():
        read_bundle(bundle)  # not a bundle at all: a usage error (exit 2) naming what is missing
    try:
        read_bundle(bundle)  # every file listed in the manifest with an unchanged sha256, before any model loads
    except SteeringVectorError as exc:  # a damaged or tampered bundle: not verified (exit 1)
        typer.secho(f"NOT verified: {' '.join(str(exc).split())}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    loaded = None
    if model is not None:
        from interp_steer.models import load_model

        loaded = load_model(model, device=device)
    check = verify_bundle(bundle, model=loaded, data_dir=data_dir, device=device, min_cosine=min_cosine,
                          max_relative_error=max_relative_error)
    typer.echo(check.table().to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    typer.echo(f"training rows sha256: {'matches' if check.data_sha256_matches else 'DIFFERS'}")
    if check.model_files_match is not None:
        typer.echo(f"model files sha256: {'match' if check.model_files_match else 'DIFFER'}")
    for name, (then, now) in check.version_changes.items():
        typer.echo(f"version changed: {name} {then} → {now}")
    typer.echo("verified: the re-extracted vector matches" if check.ok else "NOT verified")
    if not check.ok:
        raise typer.Exit(1)

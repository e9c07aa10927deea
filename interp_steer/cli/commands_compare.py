"""``compare``: CAA vs SAE-targeted vs SAE decoder-direction vectors at equal norm (see :mod:`interp_steer.runs.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli import app
from interp_steer.cli.config_options import config_option
from interp_steer.cli.options import check_count, check_device_option, check_finite, parse_float_list, prepare_out_dir
from interp_steer.runs.job_configs import CompareConfig


def _parse_targets(text: Optional[str]) -> list[int] | None:
    if text is None or not text.strip():
        return None
    from interp_steer.errors import ConfigError

    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--targets: expected comma-separated SAE feature ids, got {text!r}") from None


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

    mults = parse_float_list(multipliers, "--multipliers")
    for value, option, minimum in ((n_targets, "--n-targets", 1), (n_decoder_baselines, "--n-decoder-baselines", 0),
                                   (n_train, "--n-train", 2), (n_test, "--n-test", 2), (n_texts, "--n-texts", 1),
                                   (max_text_tokens, "--max-text-tokens", 1), (n_probe, "--n-probe", 8),
                                   (n_generations, "--n-generations", 0), (max_new_tokens, "--max-new-tokens", 1),
                                   (threads, "--threads", 1)):
        check_count(value, option, minimum=minimum)
    if (check_finite(ridge, "--ridge") or 0.0) < 0:
        from interp_steer.errors import ConfigError

        raise ConfigError(f"--ridge {ridge:g}: must be ≥ 0")
    check_device_option(device)
    prepare_out_dir(out)
    torch.set_num_threads(threads)
    config = CompareConfig(
        dataset=dataset, layer=layer, sae=sae, targets=_parse_targets(targets), n_targets=n_targets,
        n_decoder_baselines=n_decoder_baselines, n_train=n_train, n_test=n_test, n_texts=n_texts,
        max_text_tokens=max_text_tokens, text_source=text_source, n_probe=n_probe, ridge=ridge, multipliers=mults,
        n_generations=n_generations, max_new_tokens=max_new_tokens, model=model, framing=framing, seed=seed,
        data_dir=str(data_dir) if data_dir else None, device=device,
    )
    run_compare(config, out, echo=typer.echo)

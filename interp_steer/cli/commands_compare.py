"""``compare``: CAA vs SAE-targeted vs SAE decoder-direction vectors at equal norm (see :mod:`interp_steer.runs.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli import app
from interp_steer.cli.options import check_count, check_device_option, check_finite, parse_float_list, prepare_out_dir


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
    dataset: str = typer.Option(..., help="dataset spec, e.g. builtin:sentiment or persona:desire-for-acquiring-power"),
    out: Path = typer.Option(..., help="output directory (report.md, PNGs, CSVs, vectors/)"),
    layer: int = typer.Option(12, help="layer (hook blocks.L.hook_resid_post); must be the SAE's layer"),
    sae: str = typer.Option("smollm2-135m-l12", help="sae-lens SAE directory or bundled SAE name"),
    targets: Optional[str] = typer.Option(None, help="target SAE features, e.g. '812,33' (default: top by decoder cosine with CAA)"),
    n_targets: int = typer.Option(1, help="number of target features when --targets is not given"),
    n_decoder_baselines: int = typer.Option(1, help="decoder-direction baselines (the first targets)"),
    n_train: int = typer.Option(60, help="train pairs (CAA extraction)"),
    n_test: int = typer.Option(30, help="test pairs (steerability)"),
    n_texts: int = typer.Option(40, help="fixed texts for the feature effects and the SAE-TS effect model"),
    max_text_tokens: int = typer.Option(32, help="longest fixed text in tokens"),
    text_source: str = typer.Option("corpus", help="texts for the feature effects: corpus (data-set text) or generated "
                                    "(the unsteered model's own continuations of the train prompts)"),
    n_probe: int = typer.Option(128, help="probe vectors for the SAE-TS effect model (half random, half decoder)"),
    ridge: float = typer.Option(1e-2, help="ridge of the SAE-TS effect-model fit (raise it when n_probe << d_model)"),
    multipliers: str = typer.Option("-2,0,2", help="multipliers (× the CAA norm)"),
    n_generations: int = typer.Option(2, help="test prompts with generation examples (0: none)"),
    max_new_tokens: int = typer.Option(24),
    framing: Optional[str] = typer.Option(None, help="ab or free_text (default: the dataset's own)"),
    model: str = typer.Option("smollm2-135m"),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, help="torch CPU threads"),
    data_dir: Optional[Path] = typer.Option(None),
    device: str = typer.Option("cpu"),
) -> None:
    """Compare CAA, SAE-TS, SAE decoder-direction and random vectors at equal norm: feature effects, steerability."""
    import torch

    from interp_steer.runs.compare import CompareConfig, run_compare

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

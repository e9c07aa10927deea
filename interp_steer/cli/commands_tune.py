"""``tune``: scan layers × multipliers for behaviour shift and side effects; recommend a setting within a KL budget."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import config_option, data_dir_option
from interp_steer.cli.options import check_count, check_device_option, parse_float_list, parse_layers, prepare_out_dir
from interp_steer.errors import ConfigError
from interp_steer.runs.job_configs import TuneConfig


@app.command()
def tune(
    dataset: str = config_option(TuneConfig, "dataset"),
    layers: str = config_option(TuneConfig, "layers"),
    vector: Optional[Path] = config_option(TuneConfig, "vector"),
    multipliers: str = config_option(TuneConfig, "multipliers"),
    units: str = config_option(TuneConfig, "units"),
    kl_budget: float = config_option(TuneConfig, "kl_budget"),
    out: Path = typer.Option(Path("outputs/tune"), help="output directory (resumable)"),
    n_test: int = config_option(TuneConfig, "n_test", none_as=0),
    n_train: int = config_option(TuneConfig, "n_train", none_as=0),
    test_fraction: float = config_option(TuneConfig, "test_fraction"),
    seed: int = config_option(TuneConfig, "seed"),
    framing: Optional[str] = config_option(TuneConfig, "framing"),
    n_neutral: int = config_option(TuneConfig, "n_neutral"),
    continuation_tokens: int = config_option(TuneConfig, "continuation_tokens"),
    n_generations: int = typer.Option(4, help="held-out prompts to generate from at the chosen setting"),
    max_new_tokens: int = typer.Option(32, help="tokens per generation"),
    capability: int = typer.Option(0, help="also score N letter-balanced MMLU and TruthfulQA items (0: skip)"),
    n_boot: int = config_option(TuneConfig, "n_boot"),
    model: str = config_option(TuneConfig, "model"),
    batch_size: int = config_option(TuneConfig, "batch_size"),
    table_format: str = config_option(TuneConfig, "table_format", "--format"),
    data_dir: Optional[Path] = data_dir_option(),
    device: str = config_option(TuneConfig, "device"),
) -> None:
    """Which layer and how strong: behaviour shift vs KL on neutral text per (layer, multiplier), with 95% CIs,
    a recommendation within --kl-budget, the persona-prompt baseline, steered generations, plot and report."""
    from interp_steer.runs.runner import preflight

    mults = parse_float_list(multipliers, "--multipliers")
    layer_list = parse_layers(layers, None)

    def build(layer_list: list[int]) -> TuneConfig:
        return TuneConfig(model=model, dataset=dataset, layers=layer_list, multipliers=mults, units=units,
                          kl_budget=kl_budget, vector=None if vector is None else str(vector), n_train=n_train or None,
                          n_test=n_test or None, test_fraction=test_fraction, framing=framing, seed=seed,
                          n_neutral=n_neutral, continuation_tokens=continuation_tokens, n_boot=n_boot,
                          batch_size=batch_size, table_format=table_format, device=device)

    build(layer_list or [0])  # every option the config holds is checked now ('all': resolved with the model)
    check_count(capability, "--capability", zero_means="skip")  # options of the run, not of the config
    check_count(max_new_tokens, "--max-new-tokens")
    check_count(n_generations, "--n-generations", minimum=0)
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
    config = build(layer_list)
    preflight(config, out)
    from interp_steer.data import load_dataset
    from interp_steer.models import load_model
    from interp_steer.runs.tune import run_tune

    load_dataset(dataset, data_dir=data_dir, framing=framing, limit=1)  # a bad spec fails before the model loads
    hooked = hooked or load_model(model, device=device)
    parse_layers(",".join(map(str, layer_list)), hooked.cfg.n_layers)
    result = run_tune(config, out, model=hooked, data_dir=data_dir, n_generations=n_generations,
                      max_new_tokens=max_new_tokens, capability_n=capability)
    from interp_steer.cli.console_output import tune_text

    typer.echo(tune_text(result, kl_budget, units))

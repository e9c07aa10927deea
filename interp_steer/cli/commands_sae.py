"""SAE commands: ``train-sae`` (local corpus → sae-lens SAE + metrics) and ``sae-features`` (vector → top features)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from interp_steer.cli.app import app
from interp_steer.cli.config_options import config_option, data_dir_option, model_option
from interp_steer.cli.options import check_count, prepare_out_dir
from interp_steer.config import DEFAULT_SAE
from interp_steer.config.sae_train import SAETrainConfig


@app.command("train-sae")
def train_sae_command(
    out: Path = typer.Option(..., help="output directory (sae-lens format + train_config.json + metrics.json)"),
    layer: int = typer.Option(12, help="residual-stream layer (hook blocks.L.hook_resid_post)"),
    d_sae: int = config_option(SAETrainConfig, "d_sae"),
    architecture: str = config_option(SAETrainConfig, "architecture"),
    k: int = config_option(SAETrainConfig, "k"),
    training_tokens: int = config_option(SAETrainConfig, "training_tokens"),
    context_size: int = config_option(SAETrainConfig, "context_size"),
    batch_tokens: int = config_option(SAETrainConfig, "train_batch_size_tokens"),
    lr: float = config_option(SAETrainConfig, "lr"),
    n_eval_texts: int = typer.Option(150, help="held-out texts for the metrics"),
    n_generated: int = typer.Option(0, help="add this many model-generated continuations to the corpus"),
    threads: int = typer.Option(1, help="torch CPU threads"),
    model: str = model_option(),
    data_dir: Optional[Path] = data_dir_option(),
    seed: int = config_option(SAETrainConfig, "seed"),
) -> None:
    """Train a residual-stream SAE with the sae-lens runner on the local data sets (tqdm progress bar)."""
    import torch

    from interp_steer.models import load_model
    from interp_steer.sae.corpus import build_corpus, generate_texts
    from interp_steer.sae.training import train_sae
    from interp_steer.steering import as_hook_name

    # options of the corpus and the process (no config field); the config checks the rest, naming the option
    for value, option, minimum in ((layer, "--layer", 0), (n_eval_texts, "--n-eval-texts", 1),
                                   (n_generated, "--n-generated", 0), (threads, "--threads", 1)):
        check_count(value, option, minimum=minimum)
    cfg = SAETrainConfig(hook_name=as_hook_name(layer), d_sae=d_sae, architecture=architecture, k=k,
                         training_tokens=training_tokens, context_size=context_size,
                         train_batch_size_tokens=batch_tokens, lr=lr, seed=seed, model_spec=model)
    prepare_out_dir(out)
    torch.set_num_threads(threads)
    hooked = load_model(model)
    texts = build_corpus(hooked.tokenizer, data_root=data_dir, seed=seed)
    eval_texts, train_texts = texts[:n_eval_texts], texts[n_eval_texts:]
    if n_generated:
        train_texts += generate_texts(hooked, train_texts[:n_generated], seed=seed)
    typer.echo(f"corpus: {len(train_texts)} training texts, {len(eval_texts)} held out; training {cfg.hook_name}")
    _, metrics = train_sae(hooked, train_texts, cfg, out_dir=out, eval_texts=eval_texts)
    typer.echo(json.dumps(metrics, indent=2, sort_keys=True))
    typer.echo(f"wrote {out}")


@app.command("sae-features")
def sae_features_command(
    vector: Path = typer.Option(..., help="steering vector file (.safetensors)"),
    sae: str = typer.Option(DEFAULT_SAE, help="SAE directory or bundled SAE name"),
    top: int = typer.Option(10, help="number of features to list"),
) -> None:
    """List the SAE features whose decoder directions are most aligned with a steering vector."""
    from interp_steer.sae.loading import load_sae, sae_hook_name
    from interp_steer.sae.projections import decoder_cosine_table
    from interp_steer.steering import SteeringVector

    check_count(top, "--top")
    loaded = load_sae(sae)
    table = decoder_cosine_table(SteeringVector.load(vector), loaded, sae_hook_name(loaded), top=top)
    typer.echo(table.to_string(index=False))

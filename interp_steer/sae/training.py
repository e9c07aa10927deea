"""Train a residual-stream SAE locally with sae-lens's own training runner on an in-memory text corpus.

The runner gets our HookedTransformer (``override_model``) and a ``datasets.Dataset`` with a ``text`` column
(``override_dataset``); it tokenises, concatenates into ``context_size`` chunks, buffers activations and
trains. The first position of each chunk (an attention sink with ~100× the usual norm) and special tokens
are excluded from training. The result is saved in sae-lens format plus ``train_config.json`` and
``metrics.json`` (from ``evaluate_sae`` on held-out texts).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from interp_steer.config.sae_train import ARCHITECTURES, SAETrainConfig  # noqa: F401
from interp_steer.errors import ConfigError
from interp_steer.sae.loading import check_sae_fits
from interp_steer.sae.metrics import evaluate_sae


def _sae_config(cfg: SAETrainConfig, d_in: int):
    from sae_lens import StandardTrainingSAEConfig, TopKTrainingSAEConfig

    common = {"d_in": d_in, "d_sae": cfg.d_sae, "normalize_activations": "expected_average_only_in"}
    if cfg.architecture == "topk":
        return TopKTrainingSAEConfig(k=cfg.k, **common)
    return StandardTrainingSAEConfig(l1_coefficient=cfg.l1_coefficient, l1_warm_up_steps=50, **common)


def runner_config(cfg: SAETrainConfig, d_in: int, output_path: str | None, prepend_bos: bool = False):
    """The sae-lens ``LanguageModelSAERunnerConfig`` for our config (no W&B, no checkpoints, CPU).

    ``prepend_bos``: whether the model's sequences start with a BOS token (Gemma: yes; SmolLM2: no, its chat
    template brings ``<|im_start|>``); the first position of every context is left out of training either way."""
    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig

    return LanguageModelSAERunnerConfig(
        sae=_sae_config(cfg, d_in),
        model_name=cfg.model_spec,
        hook_name=cfg.hook_name,
        dataset_path="local-text",
        is_dataset_tokenized=False,
        streaming=False,
        context_size=cfg.context_size,
        prepend_bos=prepend_bos,
        sequence_separator_token="eos",
        seqpos_slice=(1, None),
        exclude_special_tokens=True,
        n_batches_in_buffer=cfg.n_batches_in_buffer,
        training_tokens=cfg.training_tokens,
        store_batch_size_prompts=cfg.store_batch_size_prompts,
        train_batch_size_tokens=cfg.train_batch_size_tokens,
        n_batches_for_norm_estimate=cfg.n_batches_for_norm_estimate,
        lr=cfg.lr,
        lr_warm_up_steps=cfg.lr_warm_up_steps,
        dead_feature_window=cfg.dead_feature_window,
        feature_sampling_window=cfg.dead_feature_window,
        n_eval_batches=1,
        device="cpu",
        act_store_device="cpu",
        seed=cfg.seed,
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=0,
        checkpoint_path=None,
        output_path=output_path,
        verbose=False,
    )


def train_sae(model, texts: Sequence[str], cfg: SAETrainConfig, out_dir: str | Path | None = None,
              eval_texts: Sequence[str] = ()):
    """Train an SAE on ``model``'s activations at ``cfg.hook_name`` over ``texts`` with the sae-lens runner.

    The texts are cycled (the runner re-reads the dataset) until ``cfg.training_tokens`` are used. If
    ``out_dir`` is given, the inference SAE is saved there in sae-lens format with ``train_config.json`` and,
    when ``eval_texts`` are given, ``metrics.json``. Returns ``(sae, metrics)``; sae-lens prints a tqdm bar.
    """
    import datasets
    from sae_lens import LanguageModelSAETrainingRunner

    from interp_steer.data.tokenization import sequence_start_ids

    if cfg.hook_name not in model.hook_dict:
        raise ConfigError(f"hook_name {cfg.hook_name!r} is not a hook of the model")
    if not texts:
        raise ConfigError("texts: the training corpus is empty")
    dataset = datasets.Dataset.from_dict({"text": list(texts)})
    runner = LanguageModelSAETrainingRunner(
        runner_config(cfg, model.cfg.d_model, None, prepend_bos=bool(sequence_start_ids(model.tokenizer))), override_dataset=dataset, override_model=model
    )
    started = time.time()
    training_sae = runner.run()
    seconds = time.time() - started
    sae = _to_inference(training_sae)
    check_sae_fits(sae, model, cfg.hook_name)
    metrics: dict[str, float] = {"train_seconds": seconds, "training_tokens": float(cfg.training_tokens),
                                 "tokens_per_second": cfg.training_tokens / max(seconds, 1e-9),
                                 "n_corpus_texts": float(len(texts))}
    if eval_texts:
        metrics.update(evaluate_sae(model, sae, list(eval_texts), cfg.hook_name))
    if out_dir is not None:
        save_trained_sae(sae, cfg, metrics, Path(out_dir))
    return sae, metrics


def _to_inference(training_sae):
    """The inference ``SAE`` equivalent of a trained ``TrainingSAE`` (via its own save/load round trip)."""
    import tempfile

    from sae_lens import SAE

    with tempfile.TemporaryDirectory() as tmp:
        training_sae.save_inference_model(tmp)
        sae = SAE.load_from_disk(tmp, device="cpu")
    sae.eval()
    return sae


def save_trained_sae(sae, cfg: SAETrainConfig, metrics: dict[str, float], out_dir: Path) -> Path:
    """Write ``cfg.json`` + ``sae_weights.safetensors`` (sae-lens format), ``train_config.json``, ``metrics.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sae.save_model(str(out_dir))
    cfg.save(out_dir / "train_config.json")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return out_dir

"""What a local SAE training run trains (:class:`SAETrainConfig`): light to import, so ``interp-steer train-sae``
builds its options from these fields (one default each) without loading sae-lens or torch."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from interp_steer.config.base import Config
from interp_steer.config.checks import require_int, require_number
from interp_steer.config.fields import MODEL_HELP, option_field
from interp_steer.errors import ConfigError
from interp_steer.models.embedded import DEFAULT_MODEL

ARCHITECTURES = ("topk", "standard")


@dataclass
class SAETrainConfig(Config):
    """What to train: hook, width, sparsity, token budget and runner buffer sizes."""

    OPTION_NAMES: ClassVar[dict[str, str]] = {"train_batch_size_tokens": "--batch-tokens", "model_spec": "--model",
                                              "hook_name": "--layer"}

    hook_name: str = "blocks.12.hook_resid_post"
    d_sae: int = option_field(2048, help="number of SAE features")
    architecture: str = option_field("topk", help="topk or standard")
    k: int = option_field(32, help="active features per token (topk)")
    l1_coefficient: float = 5.0  # standard only
    training_tokens: int = option_field(300_000, help="training token budget")
    context_size: int = option_field(64, help="tokens per training sequence (position 0 is excluded)")
    train_batch_size_tokens: int = option_field(1024, help="SAE training batch size in tokens")
    store_batch_size_prompts: int = 8
    n_batches_in_buffer: int = 32  # sae-lens buffer = n_batches_in_buffer × (context_size − 1) tokens
    lr: float = option_field(4e-4, help="learning rate")
    lr_warm_up_steps: int = 20
    n_batches_for_norm_estimate: int = 4
    dead_feature_window: int = 200
    seed: int = option_field(0, help="seed of the corpus order and the SAE initialisation")
    model_spec: str = option_field(DEFAULT_MODEL, help=MODEL_HELP)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"--architecture {self.architecture!r} unknown; choose one of {ARCHITECTURES}")
        for name in ("d_sae", "k", "training_tokens", "train_batch_size_tokens", "store_batch_size_prompts",
                     "n_batches_in_buffer", "n_batches_for_norm_estimate"):
            require_int(self, name)
        require_int(self, "context_size", 2)
        require_number(self, "lr", positive=True)
        if self.architecture == "topk" and self.k > self.d_sae:
            raise ConfigError(f"--k {self.k} exceeds --d-sae {self.d_sae}")
        buffer_tokens = self.n_batches_in_buffer * (self.context_size - 1)
        if buffer_tokens < self.train_batch_size_tokens:
            raise ConfigError(
                f"sae-lens activation buffer n_batches_in_buffer×(context_size−1) = {buffer_tokens} "
                f"tokens is smaller than train_batch_size_tokens={self.train_batch_size_tokens}; raise n_batches_in_buffer"
            )
        if self.training_tokens < self.train_batch_size_tokens:
            raise ConfigError("--training-tokens must be at least --batch-tokens")

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

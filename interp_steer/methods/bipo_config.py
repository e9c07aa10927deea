"""Typed, validated, JSON-serialisable configuration of a BiPO training run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from interp_steer.config.base import Config
from interp_steer.errors import ConfigError
from interp_steer.steering.hook_names import as_hook_name, layer_of

# fields that may differ between an interrupted run and its resumption
RESUME_EXEMPT_FIELDS = ("checkpoint_every", "checkpoint_path")


@dataclass
class BiPOConfig(Config):
    """Hyper-parameters of :func:`interp_steer.methods.bipo.train_bipo` (defaults follow Cao et al. 2024).

    ``layer``: a block index (→ ``blocks.L.hook_resid_post``) or a hook name whose activation is
    ``[batch, pos, d_model]``. Give at most one of ``max_steps`` / ``epochs`` (neither: one epoch); a step
    is one optimiser update over ``batch_size * grad_accumulation`` pairs. The learning rate warms up
    linearly for ``warmup_steps`` then follows a cosine to ``min_lr_ratio * lr``. Early stopping compares
    mean training losses of whole epochs: it stops after ``early_stop_patience`` epochs without an
    improvement larger than ``early_stop_min_delta``. ``checkpoint_every`` steps (and when a run stops)
    the state is written to ``checkpoint_path``.
    """

    layer: int | str = field(default=12, metadata={"help": "block index or hook name to train at"})
    beta: float = field(default=0.1, metadata={"help": "DPO temperature β of the loss"})
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate of AdamW"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay"})
    batch_size: int = field(default=4, metadata={"help": "pairs per micro-batch"})
    grad_accumulation: int = field(default=1, metadata={"help": "micro-batches per optimiser step"})
    max_steps: int | None = field(default=None, metadata={"help": "optimiser steps of the run (give this or epochs)"})
    epochs: int | None = field(default=None, metadata={"help": "passes over the pairs (neither max_steps nor epochs: 1)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps before the cosine schedule"})
    min_lr_ratio: float = field(default=0.0, metadata={"help": "final learning rate as a fraction of lr, in [0, 1]"})
    seed: int = field(default=0, metadata={"help": "seed of the batch order and the direction draws"})
    early_stop_patience: int | None = field(default=None, metadata={"help": "stop after this many epochs without improvement (none: never)"})
    early_stop_min_delta: float = field(default=0.0, metadata={"help": "smallest epoch-loss improvement that counts"})
    checkpoint_every: int | None = field(default=None, metadata={"help": "write a checkpoint every N steps (needs checkpoint_path)"})
    checkpoint_path: str | None = field(default=None, metadata={"help": "checkpoint file (also written when a run stops)"})

    def __post_init__(self) -> None:
        if isinstance(self.layer, str) and self.layer.isdigit():
            self.layer = int(self.layer)
        layer_of(self.hook_name)  # raises ConfigError for hooks outside the blocks
        _positive_number("beta", self.beta)
        _positive_number("lr", self.lr)
        _non_negative_number("weight_decay", self.weight_decay)
        _positive_int("batch_size", self.batch_size)
        _positive_int("grad_accumulation", self.grad_accumulation)
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigError(f"BiPOConfig: give max_steps ({self.max_steps}) or epochs ({self.epochs}), not both")
        if self.max_steps is None and self.epochs is None:
            self.epochs = 1
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        if self.epochs is not None:
            _positive_int("epochs", self.epochs)
        _non_negative_int("warmup_steps", self.warmup_steps)
        if not (isinstance(self.min_lr_ratio, (int, float)) and 0.0 <= self.min_lr_ratio <= 1.0):
            raise ConfigError(f"BiPOConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        _non_negative_int("seed", self.seed)
        if self.early_stop_patience is not None:
            _positive_int("early_stop_patience", self.early_stop_patience)
        _non_negative_number("early_stop_min_delta", self.early_stop_min_delta)
        if self.checkpoint_every is not None:
            _positive_int("checkpoint_every", self.checkpoint_every)
            if not self.checkpoint_path:
                raise ConfigError("BiPOConfig.checkpoint_every is set but checkpoint_path is not; give a file path")
        if self.checkpoint_path is not None:
            self.checkpoint_path = str(self.checkpoint_path)

    @property
    def hook_name(self) -> str:
        return as_hook_name(self.layer)

    def total_steps(self, n_pairs: int) -> int:
        """Optimiser steps of the whole run on ``n_pairs`` pairs."""
        if self.max_steps is not None:
            return self.max_steps
        assert self.epochs is not None  # __post_init__ sets one of the two
        return self.epochs * self.steps_per_epoch(n_pairs)

    def steps_per_epoch(self, n_pairs: int) -> int:
        return math.ceil(math.ceil(n_pairs / self.batch_size) / self.grad_accumulation)

    def differences(self, other: "BiPOConfig", ignore: tuple[str, ...] = RESUME_EXEMPT_FIELDS) -> list[str]:
        """Names of fields (outside ``ignore``) whose values differ from ``other``'s."""
        return [f.name for f in fields(self) if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> None:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"BiPOConfig.{name} must be a positive int, got {value!r}")


def _non_negative_int(name: str, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise ConfigError(f"BiPOConfig.{name} must be a non-negative int, got {value!r}")


def _positive_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"BiPOConfig.{name} must be a positive finite number, got {value!r}")


def _non_negative_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"BiPOConfig.{name} must be a non-negative finite number, got {value!r}")

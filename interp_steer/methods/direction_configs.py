"""Config dataclasses of the activation-statistics methods (PCA, probe, mean-centring) and of RePS.

Each validates itself in ``__post_init__`` (a one-line ConfigError naming the field) and round-trips through
``to_json`` / ``from_json`` (:class:`~interp_steer.config.Config`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Literal

from interp_steer.config.base import Config
from interp_steer.config.checks import check_non_negative_int, check_number, check_positive_int
from interp_steer.errors import ConfigError
from interp_steer.methods.caa import ReadPosition
from interp_steer.steering.hook_names import as_hook_name, layer_of

_READ_POSITIONS = typing.get_args(ReadPosition)
Scale = Literal["caa_norm", "unit"]
_SCALES = typing.get_args(Scale)


def _check_read(cls: str, read_position: object, batch_size: object) -> None:
    if read_position is not None and read_position not in _READ_POSITIONS:
        raise ConfigError(f"{cls}.read_position must be one of {list(_READ_POSITIONS)} or None, got {read_position!r}")
    check_positive_int(cls, "batch_size", batch_size)


def _check_scale(cls: str, scale: object) -> None:
    if scale not in _SCALES:
        raise ConfigError(f"{cls}.scale must be one of {list(_SCALES)}, got {scale!r}")


_READ_HELP = "where activations are read: answer, completion_mean or last (default: answer for A/B data, completion_mean otherwise)"


@dataclass(frozen=True)
class PCAConfig(Config):
    """Options of ``pca_diff`` and ``pca_centred`` (:mod:`interp_steer.methods.directions`)."""

    read_position: ReadPosition | None = field(default=None, metadata={"help": _READ_HELP})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})
    scale: Scale = field(default="caa_norm", metadata={
        "help": "length of the returned vector: caa_norm (the norm of the CAA mean difference) or unit"})

    def __post_init__(self) -> None:
        _check_read("PCAConfig", self.read_position, self.batch_size)
        _check_scale("PCAConfig", self.scale)


@dataclass(frozen=True)
class ProbeConfig(Config):
    """Options of ``probe``: L2-regularised logistic regression without intercept (sklearn's ``C``)."""

    read_position: ReadPosition | None = field(default=None, metadata={"help": _READ_HELP})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})
    C: float = field(default=1.0, metadata={"help": "inverse L2 strength: minimises ½|w|² + C·Σ log-loss"})
    max_iter: int = field(default=2000, metadata={"help": "L-BFGS iterations of the fit"})
    scale: Scale = field(default="unit", metadata={
        "help": "length of the returned vector: unit (default) or caa_norm (the CAA mean difference's norm)"})

    def __post_init__(self) -> None:
        _check_read("ProbeConfig", self.read_position, self.batch_size)
        check_number("ProbeConfig", "C", self.C, positive=True)
        check_positive_int("ProbeConfig", "max_iter", self.max_iter)
        _check_scale("ProbeConfig", self.scale)


@dataclass(frozen=True)
class MeanCentringConfig(Config):
    """Options of ``mean_centring``: positives' mean minus the neutral corpus's mean."""

    read_position: ReadPosition | None = field(default=None, metadata={"help": _READ_HELP})
    batch_size: int = field(default=16, metadata={"help": "sequences per forward pass"})
    n_neutral: int | None = field(default=None, metadata={
        "help": "neutral passages averaged (register-interleaved subset; none: all)"})

    def __post_init__(self) -> None:
        _check_read("MeanCentringConfig", self.read_position, self.batch_size)
        if self.n_neutral is not None:
            check_positive_int("MeanCentringConfig", "n_neutral", self.n_neutral)


@dataclass(frozen=True)
class RePSConfig(Config):
    """Hyper-parameters of :func:`interp_steer.methods.reps.train_reps` (one vector at one hook).

    Each micro-batch draws a strength ``α ~ U[strength_low, strength_high]``; ``init_norm`` is the norm of the
    seeded random initial vector (a zero vector has no direction for the null intervention to ablate)."""

    layer: int | str = field(default=12, metadata={"help": "block index or hook name to train at"})
    beta: float = field(default=1.0, metadata={"help": "temperature β of both preference terms"})
    lr: float = field(default=5e-3, metadata={"help": "learning rate of AdamW"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    batch_size: int = field(default=4, metadata={"help": "pairs per optimiser step"})
    max_steps: int = field(default=20, metadata={"help": "optimiser steps"})
    strength_low: float = field(default=0.5, metadata={"help": "lower end of the sampled steering strength α"})
    strength_high: float = field(default=2.0, metadata={"help": "upper end of the sampled steering strength α"})
    init_norm: float = field(default=0.1, metadata={"help": "norm of the random initial vector"})
    seed: int = field(default=0, metadata={"help": "seed of the initial vector, batch order and strengths"})
    scale: float | None = field(default=None, metadata={
        "help": "train a direction at this norm (steered term adds α·scale·v/|v|; the vector returned has norm "
                "scale); unset: the paper's form, the learned vector itself"})

    def __post_init__(self) -> None:
        layer = self.layer
        if isinstance(layer, str) and layer.isdigit():
            object.__setattr__(self, "layer", int(layer))
        layer_of(self.hook_name)
        check_number("RePSConfig", "beta", self.beta, positive=True)
        check_number("RePSConfig", "lr", self.lr, positive=True)
        check_number("RePSConfig", "weight_decay", self.weight_decay, non_negative=True)
        check_positive_int("RePSConfig", "batch_size", self.batch_size)
        check_positive_int("RePSConfig", "max_steps", self.max_steps)
        check_number("RePSConfig", "strength_low", self.strength_low, positive=True)
        check_number("RePSConfig", "strength_high", self.strength_high, positive=True)
        if self.strength_high < self.strength_low:
            raise ConfigError(f"RePSConfig: strength_high ({self.strength_high}) is below strength_low ({self.strength_low})")
        check_number("RePSConfig", "init_norm", self.init_norm, positive=True)
        check_non_negative_int("RePSConfig", "seed", self.seed)
        if self.scale is not None:
            check_number("RePSConfig", "scale", self.scale, positive=True)

    @property
    def hook_name(self) -> str:
        return as_hook_name(self.layer)

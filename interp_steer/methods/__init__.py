"""Steering-vector extraction methods, chosen by name from ``EXTRACTION_METHODS``.

Every entry is ``fn(model, pairs, layers, **options) -> SteeringVector``.
"""

from __future__ import annotations

from typing import Callable

from interp_steer.methods.bipo import extract_bipo, train_bipo
from interp_steer.methods.bipo_config import BiPOConfig
from interp_steer.methods.caa import collect_contrastive_activations, extract_caa, mean_difference

EXTRACTION_METHODS: dict[str, Callable] = {"caa": extract_caa, "bipo": extract_bipo}

__all__ = [
    "BiPOConfig", "EXTRACTION_METHODS", "extract_bipo", "train_bipo", "collect_contrastive_activations", "extract_caa", "mean_difference",
]

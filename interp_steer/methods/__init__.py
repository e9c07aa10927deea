"""Steering-vector extraction methods, chosen by name from ``EXTRACTION_METHODS``.

Every entry is ``fn(model, pairs, layers, **options) -> SteeringVector``.
"""

from __future__ import annotations

from typing import Callable

from interp_steer.methods.caa import collect_contrastive_activations, extract_caa, mean_difference

EXTRACTION_METHODS: dict[str, Callable] = {"caa": extract_caa}

__all__ = ["EXTRACTION_METHODS", "collect_contrastive_activations", "extract_caa", "mean_difference"]

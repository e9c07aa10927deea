"""Steering-vector extraction methods, chosen by name from ``EXTRACTION_METHODS``.

``EXTRACTION_METHODS[name]`` is a :class:`~interp_steer.methods.registry.MethodEntry` whose first two items are
``(config_class, function)``: ``CAAConfig`` / :func:`extract_caa`, ``BiPOConfig`` / :func:`extract_bipo`,
``SAETargetedConfig`` / :func:`build_sae_targeted_vector`, ``PCAConfig`` / :func:`extract_pca_diff` and
:func:`extract_pca_centred`, ``ProbeConfig`` / :func:`extract_probe`, ``MeanCentringConfig`` /
:func:`extract_mean_centring`, ``RePSConfig`` / :func:`extract_reps`. :func:`extract` runs a pair-based method by name.
"""

from __future__ import annotations

from interp_steer.methods.bipo import extract_bipo, train_bipo
from interp_steer.methods.bipo_config import BiPOConfig
from interp_steer.methods.caa import collect_contrastive_activations, extract_caa, mean_difference
from interp_steer.methods.direction_configs import MeanCentringConfig, PCAConfig, ProbeConfig, RePSConfig
from interp_steer.methods.directions import extract_mean_centring, extract_pca_centred, extract_pca_diff, extract_probe
from interp_steer.methods.registry import (
    EXTRACTION_METHODS,
    CAAConfig,
    MethodEntry,
    SAETargetedConfig,
    extract,
    method_entry,
)
from interp_steer.methods.reps import extract_reps, train_reps
from interp_steer.methods.sae_targeted import build_sae_targeted_vector

__all__ = [
    "BiPOConfig", "CAAConfig", "EXTRACTION_METHODS", "MeanCentringConfig", "MethodEntry", "PCAConfig", "ProbeConfig",
    "RePSConfig", "SAETargetedConfig", "build_sae_targeted_vector", "collect_contrastive_activations", "extract",
    "extract_bipo", "extract_caa", "extract_mean_centring", "extract_pca_centred", "extract_pca_diff", "extract_probe",
    "extract_reps", "mean_difference", "method_entry", "train_bipo", "train_reps",
]

"""Reliability evaluation of steering vectors (after Tan et al. 2024): propensity, steerability, spurious factors,
and prompt variants (the layer scan job lives in :mod:`interp_steer.runs.scan`)."""

from interp_steer.evaluation.metrics import (
    random_baseline,
    random_like,
    steerability,
    summarize_steerability,
)
from interp_steer.evaluation.naive import naive_propensities
from interp_steer.evaluation.propensity import PROPENSITY_COLUMNS, compute_propensities, vector_label
from interp_steer.evaluation.spurious import spurious_factor_variance
from interp_steer.evaluation.variants import (
    VARIANTS,
    PersonaSentences,
    apply_variant,
    cross_variant_steerability,
    persona_sentences,
    relative_steerability,
    steerability_matrix,
)

__all__ = [
    "VARIANTS", "PersonaSentences", "apply_variant", "cross_variant_steerability",
    "persona_sentences", "relative_steerability", "steerability_matrix",
    "PROPENSITY_COLUMNS", "compute_propensities", "naive_propensities", "random_baseline", "random_like",
    "spurious_factor_variance", "steerability", "summarize_steerability", "vector_label",
]

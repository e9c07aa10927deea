"""Reliability evaluation of steering vectors (after Tan et al. 2024): propensity, steerability, spurious factors,
prompt variants, the unsteered A/B baseline and bootstrap intervals (the layer scan job lives in :mod:`interp_steer.runs.scan`)."""

from interp_steer.evaluation.ab_baseline import ab_baseline
from interp_steer.evaluation.engines import ENGINES, PropensityEngine, get_engine, resolve_engine
from interp_steer.evaluation.generalisation import generalisation_correlation
from interp_steer.evaluation.metrics import (
    random_baseline,
    random_like,
    steerability,
    summarize_steerability,
)
from interp_steer.evaluation.naive import naive_propensities
from interp_steer.evaluation.propensity import PROPENSITY_COLUMNS, compute_propensities, vector_label
from interp_steer.evaluation.spurious import spurious_factor_variance
from interp_steer.evaluation.study_intervals import correlation_ci, spurious_cis, steerability_cis
from interp_steer.evaluation.uncertainty import bootstrap_ci
from interp_steer.evaluation.variants import (
    VARIANTS,
    PersonaSentences,
    apply_variant,
    cross_variant_steerability,
    match_base_norm,
    persona_sentences,
    relative_steerability,
    relative_steerability_table,
    steerability_matrix,
)
from interp_steer.stats.bootstrap import bootstrap

__all__ = [
    "ENGINES", "PropensityEngine", "get_engine", "resolve_engine", "ab_baseline", "bootstrap", "bootstrap_ci", "correlation_ci", "spurious_cis", "steerability_cis",
    "generalisation_correlation", "match_base_norm", "relative_steerability_table",
    "VARIANTS", "PersonaSentences", "apply_variant", "cross_variant_steerability",
    "persona_sentences", "relative_steerability", "steerability_matrix",
    "PROPENSITY_COLUMNS", "compute_propensities", "naive_propensities", "random_baseline", "random_like",
    "spurious_factor_variance", "steerability", "summarize_steerability", "vector_label",
]

"""Sparse autoencoders via sae-lens: loading, local training, quality metrics, feature effects, projections."""

from interp_steer.sae.feature_effects import (
    LinearEffectModel,
    fit_effect_model,
    mean_feature_activations,
    measure_feature_effects,
    random_unit_vectors,
)
from interp_steer.sae.loading import bundled_sae_names, check_sae_fits, load_sae, sae_hook_name
from interp_steer.sae.metrics import evaluate_sae
from interp_steer.sae.projections import (
    decoder_cosine_table,
    decoder_cosines,
    difference_projection_table,
    encoder_change,
    encoder_change_table,
)

__all__ = [
    "LinearEffectModel", "bundled_sae_names", "check_sae_fits", "decoder_cosine_table", "decoder_cosines",
    "difference_projection_table", "encoder_change", "encoder_change_table", "evaluate_sae", "fit_effect_model",
    "load_sae", "mean_feature_activations", "measure_feature_effects", "random_unit_vectors", "sae_hook_name",
]

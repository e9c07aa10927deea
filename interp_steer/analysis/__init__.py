"""Mechanistic explanations of (anti-)steerability: activation patching of the steering effect, direct effects
through the unembedding, the logit lens, and the steerable / anti-steerable breakdown."""

from interp_steer.analysis.breakdown import (
    classify_steerability,
    cohens_d,
    compare_groups,
    render_breakdown_markdown,
    sae_feature_differences,
    sample_features,
)
from interp_steer.analysis.direct_effect import direct_effects, logit_lens, unembed_difference
from interp_steer.analysis.patching import (
    PATCHING_COLUMNS,
    PatchResult,
    PatchSite,
    compare_samples,
    patch_sites,
    position_summary,
    steering_patching,
)

__all__ = [
    "PATCHING_COLUMNS", "PatchResult", "PatchSite", "classify_steerability", "cohens_d", "compare_groups",
    "compare_samples", "direct_effects", "logit_lens", "patch_sites", "position_summary", "render_breakdown_markdown",
    "sae_feature_differences", "sample_features", "steering_patching", "unembed_difference",
]

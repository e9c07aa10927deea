"""Statistics shared by the study reports: per-token (length-normalised) free-text propensity."""

from interp_steer.stats.per_token import completion_lengths, per_token_propensities, per_token_steerability

__all__ = ["completion_lengths", "per_token_propensities", "per_token_steerability"]

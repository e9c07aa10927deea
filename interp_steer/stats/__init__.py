"""Small pure statistics shared by the jobs and analyses: per-token (length-normalised) free-text propensity,
multiplicity control (Holm, Benjamini-Hochberg) and within-group AUCs with dataset-clustered bootstraps."""

from interp_steer.stats.auc import auc, within_group_auc, within_group_auc_test
from interp_steer.stats.multiplicity import benjamini_hochberg, holm
from interp_steer.stats.per_token import completion_lengths, per_token_propensities, per_token_steerability

__all__ = ["auc", "benjamini_hochberg", "completion_lengths", "holm", "per_token_propensities",
           "per_token_steerability", "within_group_auc", "within_group_auc_test"]

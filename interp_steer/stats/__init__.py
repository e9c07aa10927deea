"""Generic statistics shared by analyses: multiplicity control and within-group AUCs with clustered bootstraps."""

from interp_steer.stats.auc import auc, within_group_auc, within_group_auc_test
from interp_steer.stats.multiplicity import benjamini_hochberg, holm

__all__ = ["auc", "within_group_auc", "within_group_auc_test", "holm", "benjamini_hochberg"]

"""Statistics shared by every job: one bootstrap engine (:mod:`.bootstrap`, weighted statistics in :mod:`.weighted`),
one interval function per reported statistic (:mod:`.intervals`), AUCs (:mod:`.auc`), clustered proportions
(:mod:`.proportions`), multiplicity control (:mod:`.multiplicity`) and per-token propensity (:mod:`.per_token`).

Which statistic gets which interval (all 95%, seeded; "percentile" = percentile bootstrap of the one engine):

====================================================  ===========================================  ===============
statistic (function)                                  resampling unit                              interval
====================================================  ===========================================  ===============
mean of per-row values: mean slope, mean propensity,  rows (samples / passages / items)            percentile
shift, KL, ΔNLL, format mass, accuracy
(``mean_interval``)
the same across datasets, each dataset once           datasets, then rows within each (two-level)  percentile
(``mean_interval(clusters=)``, ``steerability_cis``)
median slope (``median_interval``)                    rows; across datasets two-level              percentile
anti-steerable fraction, share of slopes < 0, of     none (binomial: samples independent)         Wilson score
one dataset (``anti_steerable_interval``,
``steerability_cis`` dataset rows)
the same across datasets, each dataset once           datasets, then samples within (two-level)    percentile
paired difference of means, e.g. method − CAA         pairs (samples)                              percentile
(``paired_difference_interval``)
rate of independent binary outcomes: unsteered        none (binomial)                              Wilson score
matching / (A) rate of one dataset, share of
datasets or pairs (``proportion_interval``)
pooled share of eligible rows that are hits           datasets, kept whole                         percentile
(``proportions.clustered_proportion``)
relative steerability and unsteered-propensity        samples per dataset; across datasets         percentile
differences (``variants.relative_steerability_table``)  two-level
correlation of points clustered by dataset            datasets kept whole (or rows if i.i.d.)      percentile
(``correlation_ci``)
spurious-factor variance split (``spurious_cis``)     samples; across datasets two-level           percentile
AUC, R², Spearman ρ, Cohen's d of held-out            rows within strata (sign, case)              percentile
predictions (``metric_interval``, ``auc_interval``,
``metric_difference_interval``)
mean within-dataset AUC                               datasets (one AUC each)                      percentile;
(``auc.within_group_auc_test``)                                                                    permutation p
slope of one sample's propensity curve                residuals of its fit (or multipliers)        percentile
(``analysis.slope_groups``)
====================================================  ===========================================  ===============

NaN policy (:mod:`.bootstrap`): non-finite inputs are missing and dropped by the interval functions; resamples
with an undefined statistic are left out of the quantiles, and the interval is NaN when fewer than half are
finite; one row gives the estimate with a NaN interval, none a NaN estimate.
"""

from interp_steer.stats.auc import auc, within_group_auc, within_group_auc_test
from interp_steer.stats.bootstrap import RESULT_COLUMNS, BootstrapResult, Resample, bootstrap, bootstrap_metric
from interp_steer.stats.intervals import (
    Interval,
    anti_steerable_interval,
    auc_interval,
    mean_interval,
    median_interval,
    metric_difference_interval,
    metric_interval,
    paired_difference_interval,
    proportion_interval,
)
from interp_steer.stats.multiplicity import benjamini_hochberg, holm
from interp_steer.stats.per_token import completion_lengths, per_token_propensities

__all__ = ["RESULT_COLUMNS", "BootstrapResult", "Interval", "Resample", "anti_steerable_interval", "auc",
           "auc_interval", "benjamini_hochberg", "bootstrap", "bootstrap_metric", "completion_lengths", "holm",
           "mean_interval", "median_interval", "metric_difference_interval", "metric_interval",
           "paired_difference_interval", "per_token_propensities", "proportion_interval",
           "within_group_auc", "within_group_auc_test"]

"""AUC (Mann–Whitney, ties count ½), its average within groups, a clustered bootstrap CI and a permutation test.

"Within group" removes what differs between groups (base rates, feature offsets): in each group with both
classes the AUC of ``scores`` for ``labels``, then the unweighted mean over groups. The bootstrap resamples
whole groups (datasets), the permutation test shuffles labels within each group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from interp_steer.errors import ConfigError
from interp_steer.stats.bootstrap import bootstrap


def auc(scores, labels) -> float:
    """P(score of a positive > score of a negative) + ½ P(tie); NaN when a class is missing."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    if s.shape != y.shape:
        raise ConfigError(f"auc: scores {s.shape} and labels {y.shape} differ in shape")
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _groups(scores, labels, groups) -> list[tuple[np.ndarray, np.ndarray]]:
    s, y, g = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool), np.asarray(groups)
    if not (s.shape == y.shape == g.shape) or s.ndim != 1:
        raise ConfigError(f"within_group_auc: scores {s.shape}, labels {y.shape}, groups {g.shape} must be equal 1-d")
    if not np.all(np.isfinite(s)):
        raise ConfigError("within_group_auc: scores contain NaN / inf; drop or impute them first")
    out = []
    for key in np.unique(g):
        mask = g == key
        if 0 < y[mask].sum() < mask.sum():  # both classes present
            out.append((rankdata(s[mask]), y[mask]))
    if not out:
        raise ConfigError("within_group_auc: no group has both classes")
    return out


def _group_aucs(ranked: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return np.array([(r[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum()) for r, y in ranked])


@dataclass(frozen=True)
class WithinGroupAUC:
    """Mean within-group AUC with a group-clustered percentile bootstrap CI and a within-group permutation p."""

    auc: float
    low: float
    high: float
    p_value: float
    n_groups: int
    n_boot: int
    n_perm: int


def within_group_auc(scores, labels, groups) -> float:
    """Unweighted mean over groups (with both classes) of the AUC inside each group."""
    return float(_group_aucs(_groups(scores, labels, groups)).mean())


def within_group_auc_test(scores, labels, groups, *, n_boot: int = 2000, n_perm: int = 4000,
                          confidence: float = 0.95, seed: int = 0) -> WithinGroupAUC:
    """:func:`within_group_auc` with a percentile CI from resampling groups with replacement (the engine of
    :mod:`interp_steer.stats.bootstrap`, ``n_boot``; one group: NaN interval) and a two-sided p-value for "mean AUC
    = ½" from shuffling labels within each group (``n_perm``; ``(1 + #{|null − ½| ≥ |obs − ½|}) / (1 + n_perm)``)."""
    if n_boot < 2 or n_perm < 1 or not 0 < confidence < 1:
        raise ConfigError(f"within_group_auc_test: n_boot={n_boot}, n_perm={n_perm}, confidence={confidence}")
    ranked = _groups(scores, labels, groups)
    per_group = _group_aucs(ranked)
    observed = float(per_group.mean())
    boot = bootstrap({"auc": per_group}, lambda r, d: r.pooled_mean(d["auc"]), n_boot=n_boot, confidence=confidence,
                     seed=seed)
    low, high = boot.ci_low[0], boot.ci_high[0]
    rng = np.random.default_rng(seed)
    null = np.zeros(n_perm)
    for r, y in ranked:
        n1, n0 = int(y.sum()), int((~y).sum())
        chosen = np.argsort(rng.random((n_perm, r.size)), axis=1)[:, :n1]
        null += (r[chosen].sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    null /= len(ranked)
    p = (1 + np.sum(np.abs(null - 0.5) >= abs(observed - 0.5) - 1e-12)) / (1 + n_perm)
    return WithinGroupAUC(observed, float(low), float(high), float(p), len(ranked), n_boot, n_perm)

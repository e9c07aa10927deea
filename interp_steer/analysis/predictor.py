"""Predicting a sample's steerability before steering, with held-out (out-of-fold) evaluation.

Inputs are features of the *unsteered* model only (:mod:`interp_steer.analysis.candidates`). Two targets:

* **sign** — is the sample anti-steerable (slope < 0)? An L2-penalised logistic regression; scored by the AUC
  of its out-of-fold probabilities (Mann–Whitney, ties count ½).
* **size** — the slope itself. Ridge regression on standardised features; scored by the out-of-fold
  ``R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` (negative when worse than the mean).

Out-of-fold: samples are split into ``n_folds`` folds (stratified by the sign); each fold is predicted by a
model fitted on the other folds only — standardisation and any feature selection (``select``, e.g. choosing SAE
latents) included. CIs are percentile bootstraps over samples of the out-of-fold predictions, stratified by the
sign (:func:`~interp_steer.stats.intervals.metric_interval`); predictor − baseline uses the same draws
(:func:`~interp_steer.stats.intervals.metric_difference_interval`). Baselines: the baseline propensity alone (same
models, one feature), a random score (AUC), and the training-fold mean (R²).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.stats.auc import auc
from interp_steer.stats.intervals import metric_difference_interval, metric_interval

Selector = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``select(X_train, y_train) -> column indices`` chosen on the training folds only."""


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Standardiser:
    """Column means and SDs of a training design (SD 0 → 1)."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardiser":
        sd = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(sd > 0, sd, 1.0))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.sd


def ridge_fit(X: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[float, np.ndarray]:
    """``(intercept, coef)`` of ridge regression (penalty ``alpha`` on the coefficients, not the intercept)."""
    xm, ym = X.mean(axis=0), y.mean()
    Xc = X - xm
    coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (y - ym))
    return float(ym - xm @ coef), coef


def logistic_fit(X: np.ndarray, y: np.ndarray, alpha: float = 1.0, n_iter: int = 50) -> tuple[float, np.ndarray]:
    """``(intercept, coef)`` of L2-penalised logistic regression (Newton's method; intercept unpenalised).

    Minimises ``−Σ log-likelihood + alpha/2 · |coef|²``."""
    n, p = X.shape
    design = np.hstack([np.ones((n, 1)), X])
    w = np.zeros(p + 1)
    penalty = np.diag([0.0] + [alpha] * p)
    for _ in range(n_iter):
        prob = 1 / (1 + np.exp(-np.clip(design @ w, -30, 30)))
        grad = design.T @ (prob - y) + penalty @ w
        hess = design.T @ (design * (prob * (1 - prob))[:, None]) + penalty + 1e-9 * np.eye(p + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), w[1:]


# ----------------------------------------------------------------------------- metrics
def r_squared(predicted: np.ndarray, actual: np.ndarray) -> float:
    """``1 − Σ(y − ŷ)² / Σ(y − ȳ)²`` (NaN if y is constant)."""
    predicted, actual = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    total = ((actual - actual.mean()) ** 2).sum()
    return float(1 - ((actual - predicted) ** 2).sum() / total) if total > 0 else float("nan")


# ----------------------------------------------------------------------------- folds
def stratified_folds(labels: Sequence[int] | np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..n_folds−1) per sample, each class dealt round-robin over the folds in random order."""
    labels = np.asarray(labels)
    if n_folds < 2:
        raise ConfigError(f"n_folds must be ≥ 2, got {n_folds}")
    if len(labels) < n_folds:
        raise ConfigError(f"{len(labels)} samples cannot fill {n_folds} folds")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=int)
    offset = 0
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        folds[members] = (np.arange(len(members)) + offset) % n_folds
        offset += len(members)
    return folds


def out_of_fold(
    X: np.ndarray, y: np.ndarray, folds: np.ndarray, *, kind: str, alpha: float = 1.0,
    select: Selector | None = None, on_fit: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Out-of-fold predictions: ``kind="ridge"`` (values of y) or ``"logistic"`` (P(y = 1)), or ``"mean"``
    (the training folds' mean of y). ``on_fit(train_index, test_index)`` is called per fold (for checks)."""
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    y = np.asarray(y, dtype=float)
    out = np.empty(len(y))
    for fold in np.unique(folds):
        test, train = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        if on_fit is not None:
            on_fit(train, test)
        if kind == "mean":
            out[test] = y[train].mean()
            continue
        columns = select(X[train], y[train]) if select is not None else np.arange(X.shape[1])
        Xtr, Xte = X[train][:, columns], X[test][:, columns]
        scaler = Standardiser.fit(Xtr)
        if kind == "ridge":
            b0, coef = ridge_fit(scaler(Xtr), y[train], alpha)
            out[test] = b0 + scaler(Xte) @ coef
        elif kind == "logistic":
            if len(np.unique(y[train])) < 2:
                out[test] = y[train].mean()
                continue
            b0, coef = logistic_fit(scaler(Xtr), y[train], alpha)
            out[test] = 1 / (1 + np.exp(-np.clip(b0 + scaler(Xte) @ coef, -30, 30)))
        else:
            raise ConfigError(f"kind must be ridge, logistic or mean, got {kind!r}")
    return out


# ----------------------------------------------------------------------------- evaluation
PREDICTOR_COLUMNS = ["predictor", "target", "metric", "value", "ci_low", "ci_high", "vs_baseline", "vs_ci_low",
                     "vs_ci_high", "n_samples", "n_anti", "features"]


def evaluate_predictors(
    X: pd.DataFrame,
    slope: np.ndarray,
    feature_sets: Mapping[str, Sequence[str]],
    *,
    baseline: str = "baseline propensity",
    extra: Mapping[str, tuple[np.ndarray, Selector]] | None = None,
    n_folds: int = 5,
    alpha: float = 1.0,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out AUC (sign) and R² (size) of each feature set, with CIs and the paired difference to ``baseline``.

    ``feature_sets``: name → columns of ``X`` (must include ``baseline``). ``extra``: name → ``(matrix, select)``,
    a design whose columns ``select`` chooses within each training fold (e.g. SAE latents). Returns ``(table with PREDICTOR_COLUMNS, out-of-fold predictions per sample)``."""
    slope = np.asarray(slope, dtype=float)
    if len(slope) != len(X):
        raise ConfigError(f"evaluate_predictors: {len(slope)} slopes for {len(X)} samples")
    if baseline not in feature_sets:
        raise ConfigError(f"evaluate_predictors: the baseline {baseline!r} is not one of the feature sets")
    missing = sorted({c for cols in feature_sets.values() for c in cols} - set(X.columns))
    if missing:
        raise ConfigError(f"evaluate_predictors: feature columns {missing} not in the table")
    anti = (slope < 0).astype(float)
    folds = stratified_folds(anti, n_folds, seed)
    rng = np.random.default_rng(seed + 1)
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    described: dict[str, str] = {}
    for name, columns in feature_sets.items():
        design = X[list(columns)].to_numpy(dtype=float)
        predictions[name] = (out_of_fold(design, anti, folds, kind="logistic", alpha=alpha),
                             out_of_fold(design, slope, folds, kind="ridge", alpha=alpha))
        described[name] = ", ".join(columns)
    for name, (matrix, select) in (extra or {}).items():
        predictions[name] = (out_of_fold(matrix, anti, folds, kind="logistic", alpha=alpha, select=select),
                             out_of_fold(matrix, slope, folds, kind="ridge", alpha=alpha, select=select))
        described[name] = f"{matrix.shape[1]} columns, selected within each training fold"
    predictions["random"] = (rng.random(len(slope)), out_of_fold(np.zeros((len(slope), 1)), slope, folds, kind="mean"))
    described["random"] = "random scores (sign); training-fold mean (size)"
    strata = anti.astype(int)
    records = []
    def auc_of(s: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda i: auc(s[i], anti[i])

    def r2_of(s: np.ndarray) -> Callable[[np.ndarray], float]:
        return lambda i: r_squared(s[i], slope[i])

    every = np.arange(len(slope))
    for name, (prob, size) in predictions.items():
        base_prob, base_size = predictions[baseline]
        for target, metric, make, score, base in (
            ("sign (anti-steerable)", "AUC", auc_of, prob, base_prob),
            ("size (slope)", "R²", r2_of, size, base_size),
        ):
            value = make(score)(every)
            _, low, high = metric_interval(make(score), len(slope), strata=strata, n_boot=n_boot, seed=seed)
            diff, dlow, dhigh = metric_difference_interval(make(score), make(base), len(slope), strata=strata,
                                                           n_boot=n_boot, seed=seed)
            records.append({"predictor": name, "target": target, "metric": metric, "value": value, "ci_low": low,
                            "ci_high": high, "vs_baseline": diff, "vs_ci_low": dlow, "vs_ci_high": dhigh,
                            "n_samples": len(slope), "n_anti": int(anti.sum()), "features": described[name]})
    table = pd.DataFrame.from_records(records, columns=PREDICTOR_COLUMNS)
    oof = pd.DataFrame({"fold": folds, "slope": slope, "anti": anti.astype(int)})
    for name, (prob, size) in predictions.items():
        oof[f"{name}: P(anti)"] = prob
        oof[f"{name}: slope"] = size
    return table, oof


def top_correlated(k: int, min_active: int = 3) -> Selector:
    """A selector: the ``k`` columns with the largest |Spearman ρ| with y among columns non-zero in at least
    ``min_active`` training rows (for SAE latents)."""

    def select(X: np.ndarray, y: np.ndarray) -> np.ndarray:
        active = np.flatnonzero((X != 0).sum(axis=0) >= min_active)
        if len(active) == 0:
            return np.arange(min(k, X.shape[1]))
        ranks = pd.DataFrame(X[:, active]).rank().to_numpy()
        ry = pd.Series(y).rank().to_numpy()
        rc, yc = ranks - ranks.mean(axis=0), ry - ry.mean()
        denom = np.sqrt((rc ** 2).sum(axis=0) * (yc ** 2).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(denom > 0, (rc * yc[:, None]).sum(axis=0) / denom, 0.0)
        return active[np.argsort(-np.abs(rho))[:k]]

    return select


def fixed_plus_top_correlated(n_fixed: int, k: int, min_active: int = 3) -> Selector:
    """A selector: the first ``n_fixed`` columns always, plus :func:`top_correlated` ``k`` of the rest."""
    inner = top_correlated(k, min_active)

    def select(X: np.ndarray, y: np.ndarray) -> np.ndarray:
        chosen = inner(X[:, n_fixed:], y) + n_fixed
        return np.concatenate([np.arange(n_fixed), chosen])

    return select

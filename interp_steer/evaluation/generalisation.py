"""Does a steering vector generalise less to prompts the model is less inclined toward? The correlation of relative
steerability with the unsteered-propensity difference over the (dataset, train X, test Y) cells of
:func:`~interp_steer.evaluation.variants.relative_steerability_table`.

Tan et al. (2024) use the per-example **absolute** difference ``mean_i |u_Y(i) − u_X(i)|``: a signed difference
``u_Y − u_X`` cancels over the X→Y and Y→X cells (and the mean over a dataset's off-diagonal cells is exactly 0), so a
correlation of *dataset means* of the signed difference is degenerate by construction and is not computed here.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from interp_steer.errors import ConfigError

GENERALISATION_X = "abs_propensity_difference"


def generalisation_correlation(
    per_dataset: pd.DataFrame,
    *,
    x: str = GENERALISATION_X,
    methods: Sequence[str] = ("pearson", "spearman"),
    off_diagonal: bool = True,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlation of ``relative`` with ``x`` (default the per-example absolute unsteered-propensity difference)
    over the (dataset, X, Y) points of :func:`relative_steerability_table` (``off_diagonal``: X ≠ Y only), with a
    bootstrap that resamples datasets with all their points (the points of one dataset are not independent). Tidy
    rows (``statistic`` e.g. ``pearson_r``), with the :data:`RESULT_COLUMNS`; ``x`` names the x column."""
    from interp_steer.evaluation.study_intervals import correlation_ci

    missing = [c for c in ("dataset", "train_variant", "variant", "relative", x) if c not in per_dataset.columns]
    if missing:
        raise ConfigError(f"generalisation_correlation needs columns {missing} (the 'per_dataset' table)")
    points = per_dataset[per_dataset["train_variant"] != per_dataset["variant"]] if off_diagonal else per_dataset
    points = points.dropna(subset=["relative", x])
    if len(points) < 3:
        raise ConfigError(f"generalisation_correlation: {len(points)} usable points; need at least 3")
    frames = []
    for method in methods:
        res = correlation_ci(points[x], points["relative"], clusters=points["dataset"], method=method,
                             n_boot=n_boot, confidence=confidence, seed=seed)
        frames.append(res.to_frame(x=x, y="relative_steerability"))
    return pd.concat(frames, ignore_index=True)

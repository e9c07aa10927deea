"""How much per-sample steerability variance spurious prompt factors explain (Tan et al. 2024, Sec. 5).

For each dataset: OLS of per-sample slope on ``is_A`` (is the positive answer option A?), then on
``is_A + is_Yes`` (does the positive answer mean "Yes"?), each with an intercept; reports both R² and the
increment. ``is_Yes`` is unknown (NaN) for datasets whose loader does not record it: then the second model and
the increment are NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm

from interp_steer.errors import ConfigError


def _r2(y: np.ndarray, factors: np.ndarray) -> float:
    """R² of OLS with intercept; NaN when y is constant or there are fewer samples than parameters."""
    design = sm.add_constant(factors.astype(float), has_constant="add")
    if len(y) <= design.shape[1] or np.allclose(y, y[0]):
        return float("nan")
    return float(sm.OLS(y, design).fit().rsquared)


def spurious_factor_variance(
    per_sample: pd.DataFrame,
    *,
    by: Sequence[str] = ("dataset",),
    slope: str = "slope",
) -> pd.DataFrame:
    """Per group: ``n_samples``, ``r2_is_A``, ``r2_is_A_is_Yes`` and ``r2_increment_is_Yes``."""
    by = list(by)
    missing = [c for c in by + [slope, "is_A", "is_Yes"] if c not in per_sample.columns]
    if missing:
        raise ConfigError(f"spurious_factor_variance needs columns {missing} (pass the output of steerability())")
    records = []
    for key, group in per_sample.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        usable = group.dropna(subset=[slope, "is_A"])
        y = usable[slope].to_numpy(dtype=float)
        is_a = usable["is_A"].astype(float).to_numpy()
        r2_a = _r2(y, is_a[:, None]) if len(usable) else float("nan")
        with_yes = usable.dropna(subset=["is_Yes"])
        if len(with_yes) == len(usable) and len(usable):
            both = np.column_stack([is_a, with_yes["is_Yes"].astype(float).to_numpy()])
            r2_ay = _r2(y, both)
        else:
            r2_ay = float("nan")
        records.append({**dict(zip(by, key)), "n_samples": len(usable), "r2_is_A": r2_a,
                        "r2_is_A_is_Yes": r2_ay, "r2_increment_is_Yes": r2_ay - r2_a})
    return pd.DataFrame.from_records(records)

"""Steerability metrics on propensity tables (Tan et al. 2024), plus the random-vector baseline.

* per sample: ``slope`` (least-squares slope of propensity on multiplier = the sample's steerability),
  ``intercept``, ``r2`` (of that line), ``spearman`` (rank correlation of propensity with multiplier) and
  ``sign_flip`` (the propensity at the lowest and at the highest multiplier have strictly opposite signs);
* per dataset (or any grouping): mean / median / std of the slope, ``anti_steerable_fraction`` (share of
  samples with slope < 0), ``sign_flip_fraction``, mean R².

All per-sample statistics are computed with grouped sums over the long table (no Python loop over samples).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from interp_steer.errors import ConfigError
from interp_steer.evaluation.engines import PropensityEngine
from interp_steer.evaluation.tables import require_columns
from interp_steer.steering.vector import SteeringVector

SAMPLE_KEYS = ["dataset", "variant", "layer", "hook_name", "vector", "sample_id"]
"""Columns that identify one sample's propensity curve."""

CARRIED = ["kind", "is_A", "is_Yes"]



def _describe_row(frame: pd.DataFrame, index, columns: Sequence[str]) -> str:
    def plain(value):
        return value.item() if isinstance(value, np.generic) else value  # 1.0, not np.float64(1.0)

    return ", ".join(f"{c}={plain(frame.at[index, c])!r}" for c in columns if c in frame.columns)


def _require_finite(frame: pd.DataFrame, column: str, keys: Sequence[str], what: str, hint: str) -> None:
    """``ConfigError`` naming the column, the count and the first sample whose ``column`` is NaN or ±inf."""
    values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        first = frame.index[np.argmax(bad)]
        raise ConfigError(f"{what}: {int(bad.sum())} non-finite value(s) (NaN/inf) in column {column!r}, first at "
                          f"{_describe_row(frame, first, keys)}: {values.at[first]}; {hint}")


def _reject_duplicates(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """``ConfigError`` if two rows share ``columns`` (they would be counted twice)."""
    dup = frame.duplicated(subset=list(columns), keep="first")
    if dup.any():
        first = frame.index[np.argmax(dup.to_numpy())]
        raise ConfigError(f"{what}: {int(dup.sum())} duplicated row(s) with the same {list(columns)}, first at "
                          f"{_describe_row(frame, first, columns)}; drop them (e.g. frame.drop_duplicates()) "
                          "so no point is counted twice")


def steerability(
    propensities: pd.DataFrame,
    *,
    keys: Sequence[str] | None = None,
    x: str = "multiplier",
    y: str = "propensity",
) -> pd.DataFrame:
    """Per-sample steerability: one row per propensity curve (``keys``, default :data:`SAMPLE_KEYS`).

    Refused with a ``ConfigError`` naming the sample: a NaN / inf multiplier or propensity (a NaN would
    otherwise turn into a slope that looks like a number in the summary), and two rows of one curve at the
    same multiplier (they would be counted twice in the fit).
    """
    keys = list(keys) if keys is not None else [k for k in SAMPLE_KEYS if k in propensities.columns]
    require_columns(propensities, keys + [x, y], "steerability", non_empty=False)
    if propensities.empty:
        raise ConfigError("steerability: the propensity table is empty")
    for column in (x, y):
        _require_finite(propensities, column, keys + [x], "steerability",
                        "non-finite propensities come from a steering multiplier so large that the model's activations "
                        "overflow, or from a non-finite vector")
    _reject_duplicates(propensities, keys + [x], "steerability")
    data = propensities[keys + [x, y]].copy()
    data[x], data[y] = data[x].astype("float64"), data[y].astype("float64")
    groups = data.groupby(keys, sort=False, dropna=False)
    dx = data[x] - groups[x].transform("mean")
    dy = data[y] - groups[y].transform("mean")
    # ranks within each curve (average ties), for Spearman = Pearson of ranks
    rx = groups[x].rank(method="average")
    ry = groups[y].rank(method="average")
    drx = rx - rx.groupby([data[k] for k in keys], sort=False, dropna=False).transform("mean")
    dry = ry - ry.groupby([data[k] for k in keys], sort=False, dropna=False).transform("mean")
    parts = pd.DataFrame({
        "sxx": dx * dx, "syy": dy * dy, "sxy": dx * dy, "rxx": drx * drx, "ryy": dry * dry, "rxy": drx * dry,
    })
    for k in keys:
        parts[k] = data[k]
    sums = parts.groupby(keys, sort=False, dropna=False).sum()
    out = groups.agg(n_multipliers=(x, "size"), mean_x=(x, "mean"), mean_y=(y, "mean"))
    out = out.join(sums)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(out["sxx"] > 0, out["sxy"] / out["sxx"], np.nan)
        out["slope"] = slope
        out["intercept"] = out["mean_y"] - slope * out["mean_x"]
        denom = out["sxx"] * out["syy"]
        out["r2"] = np.where(denom > 0, out["sxy"] ** 2 / denom, np.nan)
        rdenom = np.sqrt(out["rxx"] * out["ryy"])
        out["spearman"] = np.where(rdenom > 0, out["rxy"] / rdenom, np.nan)
    ordered = data.sort_values(x, kind="stable")
    ends = ordered.groupby(keys, sort=False, dropna=False)[y].agg(["first", "last"])
    out["propensity_at_min"], out["propensity_at_max"] = ends["first"], ends["last"]
    out["sign_flip"] = np.sign(out["propensity_at_min"]) * np.sign(out["propensity_at_max"]) < 0
    carried = [c for c in CARRIED if c in propensities.columns]
    if carried:
        out = out.join(propensities[keys + carried].groupby(keys, sort=False, dropna=False).first())
    out = out.drop(columns=["sxx", "syy", "sxy", "rxx", "ryy", "rxy", "mean_x", "mean_y"]).reset_index()
    return out


def summarize_steerability(per_sample: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-group summary of per-sample steerability (``by`` default: the sample keys minus ``sample_id``).

    A NaN / inf slope (a curve with one distinct multiplier, or a table not made by :func:`steerability`) is a
    ``ConfigError`` naming the sample: it would otherwise count as "not anti-steerable" and vanish from the means.
    """
    by = list(by) if by is not None else [k for k in SAMPLE_KEYS if k != "sample_id" and k in per_sample.columns]
    require_columns(per_sample, by + ["slope", "r2", "sign_flip"], "summarize_steerability", non_empty=False)
    _require_finite(per_sample, "slope", [k for k in SAMPLE_KEYS if k in per_sample.columns], "summarize_steerability",
                    "a slope needs at least two distinct multipliers and finite propensities per sample")
    frame = per_sample.assign(anti=per_sample["slope"] < 0, flip=per_sample["sign_flip"].astype(float))
    summary = frame.groupby(by, sort=True, dropna=False).agg(
        n_samples=("slope", "size"),
        mean_slope=("slope", "mean"),
        median_slope=("slope", "median"),
        std_slope=("slope", "std"),
        anti_steerable_fraction=("anti", "mean"),
        sign_flip_fraction=("flip", "mean"),
        mean_r2=("r2", "mean"),
    )
    return summary.reset_index()


def random_like(vector: SteeringVector, seed: int = 0) -> SteeringVector:
    """A random Gaussian direction per hook with the same L2 norm as ``vector``'s (a steering baseline)."""
    generator = torch.Generator().manual_seed(int(seed))
    directions = {}
    for name, direction in vector.directions.items():
        noise = torch.randn(direction.shape[0], generator=generator, dtype=torch.float64)
        directions[name] = (noise * (direction.double().norm() / noise.norm())).to(direction.dtype)
    prov = replace(vector.provenance, method="random",
                   extra={**vector.provenance.extra, "random_seed": int(seed), "norm_of": vector.provenance.method})
    return SteeringVector(directions, prov)


def random_baseline(
    model,
    pairs,
    vector: SteeringVector,
    multipliers: Sequence[float],
    *,
    seeds: Sequence[int] = (0,),
    engine: str | PropensityEngine | None = None,
    **engine_kwargs,
) -> pd.DataFrame:
    """Propensities under norm-matched random vectors (``vector`` column ``random:<seed>``), one block per seed.

    ``engine``: a registered engine name or an engine (:mod:`interp_steer.evaluation.engines`; default ``batched``).
    """
    from interp_steer.evaluation.engines import resolve_engine

    if not seeds:
        raise ConfigError("random_baseline needs at least one seed")
    run = resolve_engine(engine)
    frames = [
        run(model, pairs, random_like(vector, seed), multipliers, vector_name=f"random:{seed}", **engine_kwargs)
        for seed in seeds
    ]
    return pd.concat(frames, ignore_index=True)


def per_token_steerability(propensities: pd.DataFrame, lengths: pd.DataFrame) -> pd.DataFrame:
    """Per-sample steerability of the per-token propensity (least-squares slope on the multiplier, nats per token
    per unit multiplier), one row per (dataset, sample), with ``length_difference`` = ``n_pos_tokens −
    n_neg_tokens`` (the free-text spurious factor: the positive statement is the longer one)."""
    from interp_steer.stats.per_token import per_token_propensities

    frame = per_token_propensities(propensities, lengths)
    keys = [k for k in ("dataset", "variant", "layer", "hook_name", "vector", "sample_id") if k in frame.columns]
    per_sample = steerability(frame, keys=keys, y="per_token_propensity")
    sizes = frame.drop_duplicates(subset=["dataset", "sample_id"]).set_index(["dataset", "sample_id"])
    index = pd.MultiIndex.from_frame(per_sample[["dataset", "sample_id"]])
    per_sample["n_pos_tokens"] = sizes["n_pos_tokens"].reindex(index).to_numpy(dtype=float)
    per_sample["n_neg_tokens"] = sizes["n_neg_tokens"].reindex(index).to_numpy(dtype=float)
    per_sample["length_difference"] = per_sample["n_pos_tokens"] - per_sample["n_neg_tokens"]
    return per_sample

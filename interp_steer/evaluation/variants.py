"""Prompt variants and cross-variant steerability (Tan et al. 2024, Sec. 6: generalisation across prompts).

The variants of a pair and their persona sentences are in :mod:`interp_steer.evaluation.prompt_variants`
(re-exported here).

**The generalisation study as Tan et al. run it** (:func:`cross_variant_steerability`, :func:`relative_steerability_table`):
a CAA vector per variant, each variant's vector rescaled to the BASE vector's norm (``match_base_norm``, so rows of
the grid differ in direction only), every vector evaluated on every variant (the 5 × 5 grid, including
SYS_POS→USER_NEG and SYS_NEG→USER_POS). The relative steerability of vector X on variant Y is
``slope(X→Y) / |slope(Y→Y)|`` (mean per-sample slopes on the same test samples), reported only where Y's own
``|slope(Y→Y)|`` exceeds a cutoff in the framing's own propensity units per unit multiplier
(:data:`MIN_OWN_SLOPE_BY_KIND`: **logits** — logit-difference of the two answer letters — for A/B, **nats** —
summed log-probability difference of the two completions — for free text). It is plotted against the
difference in unsteered propensity (multiplier 0) between the test and the train variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.evaluation.engines import PropensityEngine
from interp_steer.evaluation.prompt_variants import (  # noqa: F401  (re-exported)
    PERSONA_TEMPLATE,
    VARIANTS,
    PersonaSentences,
    apply_variant,
    persona_sentences,
)
from interp_steer.steering.vector import SteeringVector

MIN_OWN_SLOPE = 0.25
"""Tan et al.'s rule: relative steerability on variant Y is only reported if Y's own vector has |slope| > 0.25
(A/B: logit difference per unit multiplier)."""
MIN_OWN_SLOPE_BY_KIND = {"ab": MIN_OWN_SLOPE, "free_text": 0.25}
"""Own-slope cutoff per framing, in that framing's propensity units per unit multiplier: ``ab`` in logits (the
logit difference of the two letters, i.e. nats of letter log-odds), ``free_text`` in nats (summed log-probability
difference of the two completions). The free-text completions are several tokens long, so the same 0.25 is a
weaker requirement per token there; pass ``min_own_slope`` to use another."""


def steerability_matrix(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Mean slope with rows = train variant (the vector's) and columns = eval variant, from a per-sample table
    that has ``train_variant`` and ``variant`` (eval) columns."""
    missing = [c for c in ("train_variant", "variant", "slope") if c not in per_sample.columns]
    if missing:
        raise ConfigError(f"steerability_matrix needs columns {missing}")
    matrix = per_sample.pivot_table(index="train_variant", columns="variant", values="slope", aggfunc="mean")
    order = [v for v in VARIANTS if v in matrix.index] + [v for v in matrix.index if v not in VARIANTS]
    cols = [v for v in VARIANTS if v in matrix.columns] + [v for v in matrix.columns if v not in VARIANTS]
    return matrix.reindex(index=order, columns=cols)


def relative_steerability(matrix: pd.DataFrame, min_own_slope: float = MIN_OWN_SLOPE) -> pd.DataFrame:
    """``matrix[X, Y] / |matrix[Y, Y]|``; column Y is NaN where Y's own ``|matrix[Y, Y]| ≤ min_own_slope``."""
    out = matrix.astype(float).copy()
    for col in out.columns:
        own = matrix.at[col, col] if col in matrix.index else np.nan
        out[col] = out[col] / abs(own) if (np.isfinite(own) and abs(own) > min_own_slope) else np.nan
    return out


def own_slope_cutoff(kind: str, min_own_slope: float | None = None) -> float:
    """The own-slope cutoff for a framing (``"ab"`` or ``"free_text"``): ``min_own_slope`` if given, else
    :data:`MIN_OWN_SLOPE_BY_KIND`."""
    if min_own_slope is not None:
        return float(min_own_slope)
    if kind not in MIN_OWN_SLOPE_BY_KIND:
        raise ConfigError(f"no own-slope cutoff for framing {kind!r}; pass min_own_slope= (units: propensity per unit multiplier)")
    return MIN_OWN_SLOPE_BY_KIND[kind]


def match_base_norm(vectors: Mapping[str, SteeringVector], base: str = "BASE") -> dict[str, SteeringVector]:
    """Each vector rescaled, hook by hook, to the norm of ``vectors[base]`` at that hook (Tan et al.: variant vectors
    differ from the BASE vector in direction only)."""
    from interp_steer.steering.activations import norm_relative

    if base not in vectors:
        raise ConfigError(f"match_base_norm needs the {base} vector among the variants (got {sorted(vectors)}); "
                          "include BASE or pass match_base_norm=False")
    norms = {hook: float(d.double().norm()) for hook, d in vectors[base].directions.items()}
    return {v: (vec if v == base else norm_relative(vec, norms)) for v, vec in vectors.items()}


def cross_variant_steerability(
    model,
    train_pairs: Sequence[ContrastivePair],
    test_pairs: Sequence[ContrastivePair],
    layer: int,
    multipliers: Sequence[float],
    *,
    variants: Sequence[str] = VARIANTS,
    sentences: PersonaSentences | None = None,
    extract: Callable,
    engine: str | PropensityEngine | None = None,
    batch_size: int = 32,
    progress: bool = False,
    rescale_to_base: bool = True,
    min_own_slope: float | None = None,
) -> dict[str, pd.DataFrame]:
    """Train a vector per variant with ``extract`` (e.g. :func:`interp_steer.methods.extract_caa`; a required
    argument, so this floor does not import the methods above it) and evaluate each on each variant (all of ``variants`` ×
    ``variants``: the full 5 × 5 grid by default).

    Without ``sentences`` the persona sentences are derived from ``train_pairs`` by :func:`persona_sentences`
    (MWE persona pairs in the A/B or the free-text framing). ``rescale_to_base``: every variant vector is rescaled
    to the BASE vector's norm (:func:`match_base_norm`, needs BASE among ``variants``). Returns
    ``{"propensities", "per_sample", "matrix", "relative"}``; per-sample rows carry ``train_variant`` (the
    vector's variant) and ``variant`` (the evaluation prompts' variant); ``relative`` uses the framing's cutoff
    (:func:`own_slope_cutoff`, or ``min_own_slope``). For intervals and the propensity difference pass
    ``propensities`` and ``per_sample`` to :func:`relative_steerability_table`.
    """
    from interp_steer.evaluation.engines import resolve_engine
    from interp_steer.evaluation.metrics import steerability

    engine = resolve_engine(engine)
    if any(v != "BASE" for v in variants) and sentences is None:
        sentences = persona_sentences(train_pairs)
    vectors = {v: extract(model, apply_variant(train_pairs, v, sentences), [layer], progress=False) for v in variants}
    if rescale_to_base:
        vectors = match_base_norm(vectors)
    frames = []
    for train_variant, vector in vectors.items():
        for eval_variant in variants:
            frame = engine(model, apply_variant(test_pairs, eval_variant, sentences), vector, multipliers,
                           batch_size=batch_size, progress=progress, vector_name=f"caa:{train_variant}")
            frames.append(frame.assign(train_variant=train_variant))
    propensities = pd.concat(frames, ignore_index=True)
    per_sample = steerability(propensities, keys=["dataset", "train_variant", "variant", "layer", "hook_name", "vector", "sample_id"])
    matrix = steerability_matrix(per_sample)
    kinds = per_sample["kind"].dropna().unique() if "kind" in per_sample.columns else []
    cutoff = own_slope_cutoff(str(kinds[0]) if len(kinds) == 1 else "ab", min_own_slope)
    return {"propensities": propensities, "per_sample": per_sample, "matrix": matrix,
            "relative": relative_steerability(matrix, cutoff)}


def unsteered_propensity(propensities: pd.DataFrame) -> pd.DataFrame:
    """Per ``(dataset, variant, sample_id)`` the propensity at multiplier 0 (no steering, so the same for every
    vector: duplicates across vectors are dropped)."""
    missing = [c for c in ("dataset", "variant", "sample_id", "multiplier", "propensity") if c not in propensities.columns]
    if missing:
        raise ConfigError(f"unsteered_propensity needs columns {missing} of a propensity table")
    rows = propensities[np.isclose(propensities["multiplier"].astype(float), 0.0)]
    if rows.empty:
        raise ConfigError("unsteered_propensity: no rows at multiplier 0; include 0 among the multipliers")
    keep = [c for c in ("dataset", "variant", "sample_id", "propensity", "kind") if c in rows.columns]
    return rows[keep].drop_duplicates(subset=["dataset", "variant", "sample_id"], keep="first").reset_index(drop=True)


ACROSS_MEASURES = ("relative", "relative_median", "slope", "propensity_difference", "abs_propensity_difference")


def _nan_cluster_mean(resample, x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return resample.cluster_sum(np.where(ok, x, 0.0)) / resample.cluster_sum(ok.astype(float))


def relative_steerability_table(
    per_sample: pd.DataFrame,
    propensities: pd.DataFrame,
    *,
    min_own_slope: float | None = None,
    relative_cutoff: float | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    method: str = "percentile",
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Relative steerability and the unsteered-propensity difference per (dataset, train X, test Y), with intervals.

    ``per_sample``: per-sample steerability with ``dataset``, ``train_variant``, ``variant``, ``sample_id``, ``slope``
    (e.g. ``cross_variant_steerability(...)["per_sample"]``); ``propensities``: the propensity table with multiplier-0
    rows. Returns:

    * ``"per_dataset"``: one row per (dataset, X, Y): ``slope`` (mean slope of X's vector on Y), ``own_slope``
      (Y's vector on Y), ``cutoff`` (:func:`own_slope_cutoff` of the dataset's framing), ``relative``
      (``slope / |own_slope|``, NaN unless ``|own_slope| > cutoff``), ``unsteered_train`` / ``unsteered_test``
      (mean propensity at multiplier 0 on X / Y prompts), ``propensity_difference`` (test − train, signed: it
      cancels over the X→Y and Y→X cells), ``abs_propensity_difference`` (Tan et al.'s statistic: the mean over
      test samples of the per-example ``|u_Y(i) − u_X(i)|``), each with ``*_ci_low`` / ``*_ci_high`` from a
      paired bootstrap of the dataset's test samples (the cutoff is decided on the full sample, not per resample);
    * ``"across_datasets"``: per (X, Y), the mean (``relative_steerability``) and median
      (``relative_steerability_median``: no single dataset can drag it) over datasets of ``relative`` (datasets
      that pass the cutoff), the mean ``slope``, ``propensity_difference`` and ``abs_propensity_difference``,
      two-level bootstrap; tidy (``[train_variant, variant, *RESULT_COLUMNS]``).

    ``relative_cutoff``: when given, the own-slope cutoff of each dataset is ``relative_cutoff × |slope(BASE→BASE)|``
    of that dataset (relative to its ID slope, so the rule means the same in logits and in summed nats) instead of
    the absolute :func:`own_slope_cutoff`.
    """
    from interp_steer.stats.bootstrap import bootstrap

    grid = _cell_grid(per_sample, propensities, min_own_slope, relative_cutoff)
    keep = _cutoff_rule(grid)
    cells, order, k = grid.cells, grid.order, len(grid.datasets)
    cell_index = {c: i for i, c in enumerate(cells)}

    def within(r, d):  # the distinct quantities per dataset: each cell's slope, relative and difference, each
        parts = _cell_means(r, d, keep, cells)  # variant's unsteered mean, each cell's absolute difference
        return np.concatenate([p[m] for m in ("slope", "relative", "propensity_difference") for p in parts]
                              + [parts[cell_index[(v, v)]]["unsteered_test"] if (v, v) in cell_index
                                 else _nan_cluster_mean(r, d[f"u|{v}"]) for v in order]
                              + [p["abs_propensity_difference"] for p in parts], axis=1)

    res = bootstrap(grid.data, within, clusters=grid.labels, n_boot=n_boot, confidence=confidence, method=method,
                    seed=seed, resample_clusters=False, names=[str(i) for i in range((4 * len(cells) + len(order)) * k)])
    per_dataset = _per_dataset_rows(grid, res).assign(n_boot=int(n_boot), method=f"iid-{method}", confidence=confidence)
    across_table = _across_datasets(grid, keep, per_dataset, n_boot=n_boot, confidence=confidence, method=method,
                                    seed=seed)
    return {"per_dataset": per_dataset, "across_datasets": across_table}


@dataclass
class _CellGrid:
    """The inputs of :func:`relative_steerability_table`, as arrays: per-sample columns ``s|X|Y`` (slope of X's
    vector on Y), ``u|V`` (unsteered propensity on V prompts), ``a|X|Y`` (``|u_Y − u_X|``), the sample's dataset
    (``labels``, sorted by dataset), the (X, Y) ``cells``, the variant ``order`` and each dataset's own-slope cutoff."""

    data: dict[str, np.ndarray]
    labels: np.ndarray
    cells: list[tuple[str, str]]
    order: list[str]
    datasets: list[str]
    kinds: pd.Series
    cutoffs: np.ndarray


def _cell_grid(per_sample: pd.DataFrame, propensities: pd.DataFrame, min_own_slope: float | None,
               relative_cutoff: float | None) -> _CellGrid:
    """The per-sample arrays of :func:`relative_steerability_table` and each dataset's cutoff."""
    missing = [c for c in ("dataset", "train_variant", "variant", "sample_id", "slope") if c not in per_sample.columns]
    if missing:
        raise ConfigError(f"relative_steerability_table needs per-sample columns {missing}")
    slopes = per_sample.pivot_table(index=["dataset", "sample_id"], columns=["train_variant", "variant"], values="slope",
                                    aggfunc="mean")
    unsteered = unsteered_propensity(propensities).pivot_table(index=["dataset", "sample_id"], columns="variant",
                                                               values="propensity", aggfunc="first")
    unsteered = unsteered.reindex(slopes.index)
    order = [v for v in VARIANTS if v in set(slopes.columns.get_level_values(1))]
    order += sorted(set(slopes.columns.get_level_values(1)) - set(order))
    cells = [(x, y) for x in order for y in order if (x, y) in slopes.columns]
    datasets = sorted(slopes.index.get_level_values(0).unique())
    kinds = (per_sample.groupby("dataset")["kind"].first() if "kind" in per_sample.columns
             else pd.Series("ab", index=datasets))
    cutoffs = np.array([own_slope_cutoff(str(kinds.get(d, "ab")), min_own_slope) for d in datasets])
    if relative_cutoff is not None:
        if ("BASE", "BASE") not in slopes.columns:
            raise ConfigError("relative_steerability_table: relative_cutoff needs the BASE→BASE cell (the ID slope)")
        id_slope = slopes[("BASE", "BASE")].groupby(level=0).mean().reindex(datasets).to_numpy(dtype=float)
        cutoffs = float(relative_cutoff) * np.abs(id_slope)
    data = {f"s|{x}|{y}": slopes[(x, y)].to_numpy(dtype=float) for x, y in cells}
    data.update({f"u|{v}": (unsteered[v].to_numpy(dtype=float) if v in unsteered.columns
                            else np.full(len(slopes), np.nan)) for v in order})
    data.update({f"a|{x}|{y}": np.abs(data[f"u|{y}"] - data[f"u|{x}"]) for x, y in cells})
    labels = slopes.index.get_level_values(0).to_numpy(dtype=object)
    return _CellGrid(data, labels, cells, order, datasets, kinds, cutoffs)


def _cell_means(r, d: dict[str, np.ndarray], keep: dict, cells: list[tuple[str, str]]) -> list[dict[str, np.ndarray]]:
    """Per cell, the per-dataset means of one resample ``r`` (``[b, K]`` each); ``relative`` is NaN where ``keep``
    (the cutoff rule) fails."""
    columns = list(d)
    stacked = r.cluster_nanmeans(np.column_stack([d[c] for c in columns]))  # [b, K, columns]
    means = {c: stacked[:, :, i] for i, c in enumerate(columns)}
    out = []
    for x, y in cells:
        own = means.get(f"s|{y}|{y}", np.full_like(means[f"s|{x}|{y}"], np.nan))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = means[f"s|{x}|{y}"] / np.abs(own)
        out.append({"slope": means[f"s|{x}|{y}"], "own_slope": own,
                    "relative": np.where(keep[(x, y)][None, :], rel, np.nan),
                    "unsteered_train": means[f"u|{x}"], "unsteered_test": means[f"u|{y}"],
                    "propensity_difference": means[f"u|{y}"] - means[f"u|{x}"],
                    "abs_propensity_difference": means[f"a|{x}|{y}"]})
    return out


def _cutoff_rule(grid: _CellGrid) -> dict[tuple[str, str], np.ndarray]:
    """Per cell, which datasets pass the own-slope cutoff, decided on the full-sample estimate."""
    from interp_steer.stats.bootstrap import Resample

    n, k = len(grid.labels), len(grid.datasets)
    codes = pd.Index(grid.datasets).get_indexer(grid.labels)
    if (np.diff(codes) < 0).any():
        raise ConfigError("relative_steerability_table: internal ordering error")  # pivot_table sorts by dataset
    starts = np.searchsorted(codes, np.arange(k))
    full = _cell_means(Resample(np.ones((1, n)), np.ones((1, k)), starts), grid.data,
                       {c: np.ones(k, dtype=bool) for c in grid.cells}, grid.cells)
    return {c: np.abs(full[i]["own_slope"][0]) > grid.cutoffs for i, c in enumerate(grid.cells)}


def _per_dataset_rows(grid: _CellGrid, res) -> pd.DataFrame:
    """One row per (dataset, X, Y) from the within-dataset bootstrap ``res`` (blocks laid out as in ``within``)."""
    cells, order, datasets, k = grid.cells, grid.order, grid.datasets, len(grid.datasets)
    cell_index = {c: i for i, c in enumerate(cells)}

    def at(block: int, j: int) -> tuple[float, float, float]:
        return res.estimate[block * k + j], res.ci_low[block * k + j], res.ci_high[block * k + j]

    sizes = pd.Series(grid.labels).value_counts()
    records = []
    for i, (x, y) in enumerate(cells):
        for j, name in enumerate(datasets):
            row: dict[str, object] = {"dataset": name, "kind": grid.kinds.get(name, "ab"), "train_variant": x,
                                      "variant": y, "n_samples": int(sizes[name]), "cutoff": grid.cutoffs[j]}
            blocks = {"slope": i, "own_slope": cell_index.get((y, y)), "relative": len(cells) + i,
                      "unsteered_train": 3 * len(cells) + order.index(x), "unsteered_test": 3 * len(cells) + order.index(y),
                      "propensity_difference": 2 * len(cells) + i,
                      "abs_propensity_difference": 3 * len(cells) + len(order) + i}
            for m, block in blocks.items():
                value = at(block, j) if block is not None else (np.nan, np.nan, np.nan)
                row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = value
            records.append(row)
    return pd.DataFrame.from_records(records)


def _across_datasets(grid: _CellGrid, keep: dict, per_dataset: pd.DataFrame, *, n_boot: int, confidence: float,
                     method: str, seed: int) -> pd.DataFrame:
    """Per (X, Y), the two-level bootstrap of :data:`ACROSS_MEASURES` over datasets (empty with one dataset)."""
    from interp_steer.stats.bootstrap import RESULT_COLUMNS, bootstrap

    cells, k = grid.cells, len(grid.datasets)
    if k <= 1:
        return pd.DataFrame(columns=["train_variant", "variant"] + RESULT_COLUMNS)

    def across(r, d):
        parts = _cell_means(r, d, keep, cells)
        return np.column_stack([r.across_clusters(parts[i][m.replace("_median", "")],
                                                  "median" if m.endswith("_median") else "mean")
                                for i in range(len(cells)) for m in ACROSS_MEASURES])

    res = bootstrap(grid.data, across, clusters=grid.labels, n_boot=n_boot, confidence=confidence, method=method,
                    seed=seed, names=[f"{i}|{m}" for i in range(len(cells)) for m in ACROSS_MEASURES])
    table = res.to_frame()
    cell = table["statistic"].str.split("|", expand=True)
    table["train_variant"] = [cells[int(c)][0] for c in cell[0]]
    table["variant"] = [cells[int(c)][1] for c in cell[0]]
    table["statistic"] = cell[1].replace({"relative": "relative_steerability",
                                          "relative_median": "relative_steerability_median"})
    passed = per_dataset.groupby(["train_variant", "variant"])["relative"].apply(lambda s: int(s.notna().sum()))
    table["n_datasets"] = [int(passed.get((a, b), 0)) if s.startswith("relative_steerability") else k
                           for a, b, s in zip(table["train_variant"], table["variant"], table["statistic"])]
    return pd.concat([table[["train_variant", "variant"] + RESULT_COLUMNS]], ignore_index=True)

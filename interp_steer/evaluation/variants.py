"""Prompt variants and cross-variant steerability (Tan et al. 2024, Sec. 6: generalisation across prompts).

Variants of a pair:

* ``BASE``: system prompt :data:`~interp_steer.data.pairs.BASE_SYSTEM_PROMPT`, user turn unchanged;
* ``SYS_POS`` / ``SYS_NEG``: the system prompt is replaced by a persona sentence for / against the behaviour;
* ``USER_POS`` / ``USER_NEG``: the base system prompt is kept and the persona sentence is prepended to the user
  turn (separated by a blank line).

Persona sentences can be given explicitly (:class:`PersonaSentences`) or derived from an MWE persona dataset by
:func:`persona_sentences`, in either framing, with this deterministic rule. Each pair contributes the persona
statements it knows, sorted into those the behaviour **agrees** with (the behaviour-matching persona would say
them) and those it **disagrees** with:

* A/B pairs (``persona:<name>``): ``meta["statement"]`` agrees if ``meta["positive_is_yes"]`` is true (the
  matching answer is "Yes"), else disagrees; its confidence is ``meta["label_confidence"]``;
* free-text pairs (``persona:<name>@free_text``): the positive completion's ``meta["statement"]`` agrees
  (confidence ``meta["label_confidence"]``) and the negative completion's ``meta["negative_statement"]``
  disagrees (confidence ``meta["negative_label_confidence"]``).

The **positive** sentence quotes the agreeing statement with the highest confidence, the **negative** sentence
the disagreeing statement with the highest confidence (so the opposite persona would say it). Ties (or missing
confidences, counted as 0) are broken by the statement text (the smallest first). The sentence is
``You are someone who would say: "<statement>"``. Both framings of one dataset give the same sentences from the
same statements. Derive the sentences from the *training* pairs so the quoted statements are not evaluation items.

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
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from interp_steer.data.pairs import BASE_SYSTEM_PROMPT, ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation.engines import PropensityEngine
from interp_steer.steering.vector import SteeringVector

VARIANTS = ("BASE", "SYS_POS", "SYS_NEG", "USER_POS", "USER_NEG")
PERSONA_TEMPLATE = 'You are someone who would say: "{statement}"'
MIN_OWN_SLOPE = 0.25
"""Tan et al.'s rule: relative steerability on variant Y is only reported if Y's own vector has |slope| > 0.25
(A/B: logit difference per unit multiplier)."""
MIN_OWN_SLOPE_BY_KIND = {"ab": MIN_OWN_SLOPE, "free_text": 0.25}
"""Own-slope cutoff per framing, in that framing's propensity units per unit multiplier: ``ab`` in logits (the
logit difference of the two letters, i.e. nats of letter log-odds), ``free_text`` in nats (summed log-probability
difference of the two completions). The free-text completions are several tokens long, so the same 0.25 is a
weaker requirement per token there; pass ``min_own_slope`` to use another."""


@dataclass(frozen=True)
class PersonaSentences:
    """A persona sentence for (``positive``) and against (``negative``) the behaviour."""

    positive: str
    negative: str

    def __post_init__(self) -> None:
        if not self.positive.strip() or not self.negative.strip():
            raise ConfigError("PersonaSentences needs two non-empty sentences")


def _statement_candidates(pair: ContrastivePair) -> list[tuple[bool, float, str]]:
    """``(agrees, confidence, statement)`` for each persona statement ``pair`` knows (see the module rule)."""
    meta = pair.meta
    sides: tuple[tuple[bool, Any, Any], ...]
    if pair.kind == "free_text":
        sides = ((True, meta.get("statement"), meta.get("label_confidence")),
                 (False, meta.get("negative_statement"), meta.get("negative_label_confidence")))
    else:
        is_yes = pair.is_Yes
        sides = () if is_yes is None else ((bool(is_yes), meta.get("statement"), meta.get("label_confidence")),)
    return [(agrees, float(conf or 0.0), str(st)) for agrees, st, conf in sides if st]


def persona_sentences(pairs: Sequence[ContrastivePair], template: str = PERSONA_TEMPLATE) -> PersonaSentences:
    """Persona sentences derived from persona pairs (A/B or free text) by the module's documented rule."""
    candidates: dict[bool, list[tuple[float, str]]] = {True: [], False: []}
    for pair in pairs:
        for agrees, confidence, statement in _statement_candidates(pair):
            candidates[agrees].append((-confidence, statement))
    if not candidates[True] or not candidates[False]:
        dataset = pairs[0].dataset if pairs else "?"
        raise DataFormatError(
            f"dataset {dataset!r}: cannot derive persona sentences (need statements the behaviour agrees and disagrees "
            "with: A/B pairs with meta['statement'] and meta['positive_is_yes'] of both values, or free-text pairs with "
            "meta['statement'] and meta['negative_statement']); pass PersonaSentences(positive=…, negative=…) explicitly"
        )
    best = {side: min(items)[1] for side, items in candidates.items()}
    return PersonaSentences(template.format(statement=best[True]), template.format(statement=best[False]))


def apply_variant(pairs: Sequence[ContrastivePair], variant: str, sentences: PersonaSentences | None = None) -> list[ContrastivePair]:
    """Copies of ``pairs`` rendered as ``variant`` (see the module docstring); ``variant`` column set accordingly."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown prompt variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if variant != "BASE" and sentences is None:
        raise ConfigError(f"variant {variant!r} needs persona sentences (PersonaSentences or persona_sentences(train_pairs))")
    out = []
    for pair in pairs:
        if variant == "BASE":
            out.append(pair.with_(system_prompt=BASE_SYSTEM_PROMPT, variant=variant))
            continue
        assert sentences is not None  # checked above
        sentence = sentences.positive if variant.endswith("_POS") else sentences.negative
        if variant.startswith("SYS_"):
            out.append(pair.with_(system_prompt=sentence, variant=variant))
        else:
            out.append(pair.with_(system_prompt=BASE_SYSTEM_PROMPT, prompt=f"{sentence}\n\n{pair.prompt}", variant=variant))
    return out


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
    extract: Callable | None = None,
    engine: str | PropensityEngine | None = None,
    batch_size: int = 32,
    progress: bool = False,
    rescale_to_base: bool = True,
    min_own_slope: float | None = None,
) -> dict[str, pd.DataFrame]:
    """Train a vector per variant (CAA by default) and evaluate each on each variant (all of ``variants`` ×
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
    from interp_steer.methods.caa import extract_caa

    extract = extract or extract_caa
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
    from interp_steer.evaluation.uncertainty import RESULT_COLUMNS, bootstrap

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

    def per_cluster(r, d, keep):
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

    # the cutoff rule from the full-sample estimate
    from interp_steer.evaluation.uncertainty import Resample
    n, k = len(labels), len(datasets)
    codes = pd.Index(datasets).get_indexer(labels)
    if (np.diff(codes) < 0).any():
        raise ConfigError("relative_steerability_table: internal ordering error")  # pivot_table sorts by dataset
    starts = np.searchsorted(codes, np.arange(k))
    full = per_cluster(Resample(np.ones((1, n)), np.ones((1, k)), starts), data,
                       {c: np.ones(k, dtype=bool) for c in cells})
    keep = {c: np.abs(full[i]["own_slope"][0]) > cutoffs for i, c in enumerate(cells)}
    # the distinct quantities per dataset: each cell's slope, relative and difference, each variant's unsteered mean
    cell_index = {c: i for i, c in enumerate(cells)}

    def within(r, d):
        parts = per_cluster(r, d, keep)
        return np.concatenate([p[m] for m in ("slope", "relative", "propensity_difference") for p in parts]
                              + [parts[cell_index[(v, v)]]["unsteered_test"] if (v, v) in cell_index
                                 else _nan_cluster_mean(r, d[f"u|{v}"]) for v in order]
                              + [p["abs_propensity_difference"] for p in parts], axis=1)

    res = bootstrap(data, within, clusters=labels, n_boot=n_boot, confidence=confidence, method=method, seed=seed,
                    resample_clusters=False, names=[str(i) for i in range((4 * len(cells) + len(order)) * k)])

    def at(block: int, j: int) -> tuple[float, float, float]:
        return res.estimate[block * k + j], res.ci_low[block * k + j], res.ci_high[block * k + j]

    sizes = pd.Series(labels).value_counts()
    records = []
    for i, (x, y) in enumerate(cells):
        for j, name in enumerate(datasets):
            row: dict[str, object] = {"dataset": name, "kind": kinds.get(name, "ab"), "train_variant": x, "variant": y,
                                      "n_samples": int(sizes[name]), "cutoff": cutoffs[j]}
            blocks = {"slope": i, "own_slope": cell_index.get((y, y)), "relative": len(cells) + i,
                      "unsteered_train": 3 * len(cells) + order.index(x), "unsteered_test": 3 * len(cells) + order.index(y),
                      "propensity_difference": 2 * len(cells) + i,
                      "abs_propensity_difference": 3 * len(cells) + len(order) + i}
            for m, block in blocks.items():
                value = at(block, j) if block is not None else (np.nan, np.nan, np.nan)
                row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = value
            records.append(row)
    per_dataset = pd.DataFrame.from_records(records).assign(n_boot=int(n_boot), method=f"iid-{method}", confidence=confidence)

    frames = []
    if k > 1:
        def across(r, d):
            parts = per_cluster(r, d, keep)
            return np.column_stack([r.across_clusters(parts[i][m.replace("_median", "")],
                                                      "median" if m.endswith("_median") else "mean")
                                    for i in range(len(cells)) for m in ACROSS_MEASURES])

        res = bootstrap(data, across, clusters=labels, n_boot=n_boot, confidence=confidence, method=method, seed=seed,
                        names=[f"{i}|{m}" for i in range(len(cells)) for m in ACROSS_MEASURES])
        table = res.to_frame()
        cell = table["statistic"].str.split("|", expand=True)
        table["train_variant"] = [cells[int(c)][0] for c in cell[0]]
        table["variant"] = [cells[int(c)][1] for c in cell[0]]
        table["statistic"] = cell[1].replace({"relative": "relative_steerability",
                                              "relative_median": "relative_steerability_median"})
        passed = per_dataset.groupby(["train_variant", "variant"])["relative"].apply(lambda s: int(s.notna().sum()))
        table["n_datasets"] = [int(passed.get((a, b), 0)) if s.startswith("relative_steerability") else k
                               for a, b, s in zip(table["train_variant"], table["variant"], table["statistic"])]
        frames.append(table[["train_variant", "variant"] + RESULT_COLUMNS])
    across_table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["train_variant", "variant"] + RESULT_COLUMNS)
    return {"per_dataset": per_dataset, "across_datasets": across_table}

"""Steerable vs anti-steerable vs insensitive samples, and what distinguishes them.

Groups (from the per-sample steerability = least-squares slope of propensity on multiplier,
:func:`interp_steer.evaluation.steerability`):

* ``steerable``: slope > eps;  * ``anti-steerable``: slope < −eps;  * ``insensitive``: |slope| ≤ eps.

``eps`` defaults to ``rel_eps`` (0.1) × the median |slope| of the samples, so the thresholds scale with the
vector's norm and the multiplier range; pass ``eps`` to fix it (in propensity units per unit multiplier).

Per-sample features (:func:`sample_features`): the sample's own contrastive difference (positive − negative
activation at the vector's layer and read position) — its cosine with the vector, norm and projection on the
unit vector; the baseline propensity (multiplier 0); ``is_A``, ``is_Yes``; prompt length in tokens.
:func:`compare_groups` reports per-group means and the effect size steerable vs anti-steerable (Cohen's d with
pooled SD, and Welch's t-test p-value). With an SAE, :func:`sae_feature_differences` ranks SAE latents (read
at the answer position of the clean run) by Cohen's d between the two groups.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from transformer_lens import HookedTransformer

from interp_steer.analysis.markdown_tables import markdown_table
from interp_steer.analysis.readout import answer_readout, single_batch
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import encode_pair
from interp_steer.errors import ConfigError
from interp_steer.steering.activations import collect_contrastive_activations
from interp_steer.steering.vector import SteeringVector

GROUPS = ("steerable", "anti-steerable", "insensitive")
FEATURE_COLUMNS = ["slope", "diff_cosine", "diff_norm", "diff_projection", "baseline_propensity", "is_A", "is_Yes", "prompt_tokens"]


def classify_steerability(per_sample: pd.DataFrame, *, eps: float | None = None, rel_eps: float = 0.1) -> pd.DataFrame:
    """``per_sample`` (with a ``slope`` column) plus ``group`` and the ``eps`` used (see module doc)."""
    if "slope" not in per_sample.columns:
        raise ConfigError(f"classify_steerability needs a 'slope' column; got {list(per_sample.columns)}")
    if per_sample.empty:
        raise ConfigError("classify_steerability: no samples")
    if eps is None:
        if rel_eps < 0:
            raise ConfigError(f"rel_eps must be ≥ 0, got {rel_eps}")
        eps = rel_eps * float(np.nanmedian(np.abs(per_sample["slope"].to_numpy(dtype=float))))
    elif eps < 0:
        raise ConfigError(f"eps must be ≥ 0, got {eps}")
    slope = per_sample["slope"].to_numpy(dtype=float)
    group = np.where(slope > eps, "steerable", np.where(slope < -eps, "anti-steerable", "insensitive"))
    return per_sample.assign(group=pd.Categorical(group, categories=list(GROUPS)), eps=eps)


def sample_features(
    model: HookedTransformer,
    vector: SteeringVector,
    pairs: Sequence[ContrastivePair],
    per_sample: pd.DataFrame,
    propensities: pd.DataFrame | None = None,
    *,
    read_position: str | None = None,
) -> pd.DataFrame:
    """One row per pair (order of ``pairs``) with :data:`FEATURE_COLUMNS`, ``group`` (if classified) and ``sample_id``.

    ``per_sample``: steerability rows keyed by ``sample_id`` (optionally with ``group``); ``propensities``: the
    propensity table, whose multiplier-0 rows give ``baseline_propensity`` (else the fitted intercept is used).
    """
    vector = vector.select()
    hook = vector.hook_names[0]
    ids = [p.id for p in pairs]
    if len(set(ids)) != len(ids):
        raise ConfigError("sample_features: pair ids must be unique (they key the steerability table)")
    indexed = per_sample.set_index("sample_id")
    missing = [i for i in ids if i not in indexed.index]
    if missing:
        raise ConfigError(f"sample_features: {len(missing)} pair id(s) not in the steerability table, e.g. {missing[0]!r}")
    read: Any = read_position or vector.provenance.read_position or None
    acts = collect_contrastive_activations(model, pairs, [hook], read_position=read, progress=False)
    diffs = acts.differences(hook).double()
    unit = vector.directions[hook].double().cpu()
    unit = unit / unit.norm()
    frame = pd.DataFrame({
        "sample_id": ids,
        "slope": indexed.loc[ids, "slope"].to_numpy(dtype=float),
        "diff_cosine": torch.nn.functional.cosine_similarity(diffs, unit[None, :], dim=1).numpy(),
        "diff_norm": diffs.norm(dim=1).numpy(),
        "diff_projection": (diffs @ unit).numpy(),
        "is_A": [p.is_A for p in pairs],
        "is_Yes": [p.is_Yes for p in pairs],
        "prompt_tokens": [len(encode_pair(model.tokenizer, p).prompt_ids) for p in pairs],
    })
    if propensities is not None and (propensities["multiplier"] == 0).any():
        base = propensities[propensities["multiplier"] == 0].groupby("sample_id")["propensity"].first()
        frame["baseline_propensity"] = base.reindex(ids).to_numpy(dtype=float)
    elif "intercept" in indexed.columns:
        frame["baseline_propensity"] = indexed.loc[ids, "intercept"].to_numpy(dtype=float)
    else:
        frame["baseline_propensity"] = np.nan
    if "group" in indexed.columns:
        frame["group"] = pd.Categorical(indexed.loc[ids, "group"].astype(str).to_numpy(), categories=list(GROUPS))
    return frame


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a − mean b) / pooled SD; NaN when either group has < 2 values or the pooled SD is 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    return float((a.mean() - b.mean()) / np.sqrt(pooled)) if pooled > 0 else float("nan")


def compare_groups(features: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Per feature: group sizes and means, Cohen's d (steerable − anti-steerable) and Welch's p-value."""
    if "group" not in features.columns:
        raise ConfigError("compare_groups needs a 'group' column; run classify_steerability first")
    columns = [c for c in (columns or FEATURE_COLUMNS) if c in features.columns]
    records = []
    for column in columns:
        values = pd.to_numeric(features[column].astype("float64"), errors="coerce")
        rec: dict = {"feature": column}
        by_group = {g: values[features["group"] == g].dropna().to_numpy() for g in GROUPS}
        for g in GROUPS:
            rec[f"mean_{g}"] = float(by_group[g].mean()) if len(by_group[g]) else float("nan")
        s, a = by_group["steerable"], by_group["anti-steerable"]
        rec["cohens_d"] = cohens_d(s, a)
        ok = len(s) >= 2 and len(a) >= 2 and (s.std() > 0 or a.std() > 0)
        rec["welch_p"] = float(stats.ttest_ind(s, a, equal_var=False).pvalue) if ok else float("nan")
        records.append(rec)
    out = pd.DataFrame.from_records(records)
    counts = features["group"].value_counts().reindex(list(GROUPS), fill_value=0)
    out.attrs["group_sizes"] = {g: int(n) for g, n in counts.items()}
    return out


@torch.inference_mode()
def sae_feature_differences(
    model: HookedTransformer,
    sae,
    pairs: Sequence[ContrastivePair],
    groups: Sequence[str],
    *,
    hook_name: str | None = None,
    top_k: int = 10,
    min_active: int = 2,
) -> pd.DataFrame:
    """SAE latents whose clean-run activation at the answer position differs most, steerable vs anti-steerable.

    ``groups[i]`` is the group of ``pairs[i]``; latents active (> 0) in fewer than ``min_active`` samples are
    skipped. Columns: ``feature, mean_steerable, mean_anti, active_steerable, active_anti, cohens_d``.
    """
    if len(groups) != len(pairs):
        raise ConfigError(f"sae_feature_differences: {len(groups)} groups for {len(pairs)} pairs")
    name = hook_name or getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
    if not name or name not in model.hook_dict:
        raise ConfigError(f"sae_feature_differences: hook_name {name!r} is not a hook of the model; pass hook_name=")
    if sae.cfg.d_in != model.cfg.d_model:
        raise ConfigError(f"SAE d_in {sae.cfg.d_in} does not match the model's d_model {model.cfg.d_model}")
    rows = []
    for pair in pairs:
        readout = answer_readout(model.tokenizer, pair)
        batch = single_batch(readout.ids, model.tokenizer, model.cfg.device)
        _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n == name)
        rows.append(cache[name][0, -1])
    latents = sae.encode(torch.stack(rows).to(sae.device if hasattr(sae, "device") else "cpu")).float().cpu().numpy()
    group_array = np.asarray(groups)
    s, a = latents[group_array == "steerable"], latents[group_array == "anti-steerable"]
    active = (latents > 0).sum(0)
    records = []
    for feature in np.flatnonzero(active >= min_active):
        d = cohens_d(s[:, feature], a[:, feature])
        if np.isnan(d):
            continue
        records.append({
            "feature": int(feature), "mean_steerable": float(s[:, feature].mean()), "mean_anti": float(a[:, feature].mean()),
            "active_steerable": float((s[:, feature] > 0).mean()), "active_anti": float((a[:, feature] > 0).mean()),
            "cohens_d": d,
        })
    out = pd.DataFrame.from_records(records, columns=["feature", "mean_steerable", "mean_anti", "active_steerable", "active_anti", "cohens_d"])
    return out.reindex(out["cohens_d"].abs().sort_values(ascending=False).index).head(top_k).reset_index(drop=True)


def render_breakdown_markdown(comparison: pd.DataFrame, sae_table: pd.DataFrame | None = None, eps: float | None = None) -> str:
    """Markdown section: group sizes, the feature comparison table and (optionally) the SAE latent table."""
    sizes = comparison.attrs.get("group_sizes", {})
    lines = ["### Steerable vs anti-steerable samples", ""]
    if sizes:
        lines.append(", ".join(f"{g}: {n}" for g, n in sizes.items()) + (f" (insensitive: |slope| ≤ {eps:.3g})" if eps is not None else ""))
        lines.append("")
    lines += [markdown_table(comparison), "", "Cohen's d: (steerable − anti-steerable) / pooled SD; p: Welch's t-test.", ""]
    if sae_table is not None and not sae_table.empty:
        lines += ["### SAE latents that separate the groups", "", markdown_table(sae_table), ""]
    return "\n".join(lines)

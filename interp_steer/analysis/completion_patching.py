"""Intervention (c) of issue 26: patch the steering out of (or into) one completion's own token positions.

A free-text sample is scored by two sequences, prompt + matching completion (``pos``) and prompt + non-matching
completion (``neg``); steering adds ``m·v`` at the steering layer's ``hook_resid_post`` from the last prompt token
on. A :class:`CompletionPatch` overwrites, in the chosen sequences, the residual stream (``hook_resid_post``) at the
chosen positions and layers with the other run's:

* ``into="steered"``: the steered run receives the unsteered values (what steering at those sites adds is removed);
* ``into="clean"``: the unsteered run receives the steered values (only those sites are steered).

Positions: ``region="completion"`` = the completion's own tokens (their residuals predict the completion's 2nd … last
token), ``"all"`` = those and the last prompt token (which predicts the first). Layers: the steering layer alone
removes / adds exactly the steering vector at those positions; ``layers=None`` patches every layer from the steering
layer on, which makes those positions' residual streams exactly unsteered (resp. steered).

:func:`sample_patch_slopes` runs one sample over the study's multipliers (prefix-cached: the unsteered prompt prefix
is run once, :class:`~interp_steer.analysis.prefix_patching.SuffixRunner`) and returns, per patch, the least-squares
slopes of the two completions' log-probs (``s_pos``, ``s_neg``) and of the propensity (``slope = s_pos − s_neg``,
as in :mod:`~interp_steer.analysis.decomposition`). :func:`patch_effects` summarises the changes per sample group
with dataset-clustered bootstrap CIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.analysis.prefix_patching import SuffixRunner
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.stats.proportions import clustered_proportion
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import SteeringVector

SIDES = ("pos", "neg")
REGIONS = ("completion", "all")
PATCH_COLUMNS = ["sample_id", "dataset", "patch", "slope", "s_pos", "s_neg"]
"""Columns of :func:`sample_patch_slopes` tables; ``patch="none"`` is the unpatched steered run."""


@dataclass(frozen=True)
class CompletionPatch:
    """Which sites to patch: ``sides`` (``pos`` / ``neg``), ``region`` (``completion`` / ``all``), ``layers``
    (``hook_resid_post`` layers ≥ the steering layer; ``None`` = all of them) and the base run ``into``."""

    name: str
    sides: tuple[str, ...] = ("neg",)
    region: str = "completion"
    layers: tuple[int, ...] | None = None
    into: str = "steered"


def standard_patches(layer: int) -> list[CompletionPatch]:
    """The four patches of the issue-26 run (``layer`` = the steering layer): the non-matching completion's tokens
    unsteered at the steering layer / at every later layer, the matching one's at the steering layer (control),
    and the reverse — only the non-matching completion's tokens steered."""
    return [CompletionPatch("neg_tokens_unsteered_at_layer", ("neg",), "completion", (layer,)),
            CompletionPatch("neg_tokens_unsteered_all_layers", ("neg",), "completion", None),
            CompletionPatch("pos_tokens_unsteered_at_layer", ("pos",), "completion", (layer,)),
            CompletionPatch("only_neg_tokens_steered", ("neg",), "completion", (layer,), into="clean")]


def _check_patches(model: HookedTransformer, patches: Sequence[CompletionPatch], layer: int) -> None:
    names = [p.name for p in patches]
    if len(set(names)) != len(names) or "none" in names:
        raise ConfigError(f"completion patches {names}: names must be unique and not 'none'")
    for p in patches:
        if not p.sides or any(s not in SIDES for s in p.sides):
            raise ConfigError(f"completion patch {p.name!r}: sides {p.sides} must be a non-empty subset of {SIDES}")
        if p.region not in REGIONS:
            raise ConfigError(f"completion patch {p.name!r}: region {p.region!r} must be one of {REGIONS}")
        if p.into not in ("steered", "clean"):
            raise ConfigError(f"completion patch {p.name!r}: into={p.into!r} must be 'steered' or 'clean'")
        bad = [x for x in (p.layers or ()) if not layer <= x < model.cfg.n_layers]
        if bad:
            raise ConfigError(f"completion patch {p.name!r}: layers {bad} outside steering layer {layer} … "
                              f"{model.cfg.n_layers - 1} (earlier layers carry no steering)")


def _layers(patch: CompletionPatch, layer: int, n_layers: int) -> tuple[int, ...]:
    return tuple(range(layer, n_layers)) if patch.layers is None else patch.layers


def _hooks(runner: SuffixRunner, patches: Sequence[CompletionPatch], first_copy: int, source: dict[str, Tensor],
           layer: int) -> list[tuple[str | Callable[..., Any], Callable[..., Any]]]:
    """One hook per patched layer: rows of copy ``first_copy + i`` get ``patches[i]``'s sites from ``source``
    (an unpatched run's activations, rows = sides)."""
    entries: dict[int, tuple[list[int], list[int], list[int]]] = {}
    for i, patch in enumerate(patches):
        for side in patch.sides:
            s = SIDES.index(side)
            length = len(runner.suffixes[s])
            positions = range(1 if patch.region == "completion" else 0, length)
            for x in _layers(patch, layer, runner.model.cfg.n_layers):
                dest, pos, src = entries.setdefault(x, ([], [], []))
                for p in positions:
                    dest.append((first_copy + i) * runner.n_sides + s)
                    pos.append(p)
                    src.append(s)
    hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = []
    for x, (dest, pos, src) in entries.items():
        name = f"blocks.{x}.hook_resid_post"
        index = [torch.tensor(v, dtype=torch.long, device=runner.device) for v in (dest, pos, src)]

        def patch_hook(act: Tensor, hook, index=index, values=source[name]) -> Tensor:
            act = act.clone()
            act[index[0], index[1]] = values[index[2], index[1]].to(act.dtype)
            return act

        hooks.append((name, patch_hook))
    return hooks


def _ls_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each column of ``y`` on ``x``."""
    xc = x - x.mean()
    return (xc[:, None] * (y - y.mean(0))).sum(0) / (xc**2).sum()


def sample_patch_slopes(model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair,
                        patches: Sequence[CompletionPatch], multipliers: Sequence[float]) -> pd.DataFrame:
    """Per patch (and ``"none"``): the sample's ``slope``, ``s_pos``, ``s_neg`` over ``multipliers``
    (:data:`PATCH_COLUMNS`). Free-text pairs only; one-line ``ConfigError`` for bad patches or multipliers."""
    mults = np.asarray(multipliers, dtype=float)
    if mults.size < 2 or np.unique(mults).size < 2:
        raise ConfigError(f"sample_patch_slopes: multipliers {list(multipliers)} need ≥ 2 distinct values")
    runner = SuffixRunner(model, vector, pair, 1.0)
    if runner.n_sides != 2:
        raise ConfigError(f"pair {pair.id!r}: completion patching needs a free-text pair (two completions)")
    layer = layer_of(runner.vector.hook_names[0])
    _check_patches(model, patches, layer)
    into_steered = [p for p in patches if p.into == "steered"]
    into_clean = [p for p in patches if p.into == "clean"]
    names = sorted({f"blocks.{x}.hook_resid_post" for p in patches for x in _layers(p, layer, model.cfg.n_layers)})
    clean, clean_cache = runner.run_rows(cache_names=names)
    order = ["none", *(p.name for p in into_steered), *(p.name for p in into_clean)]
    scores = np.empty((len(mults), len(order), 2))
    for i, m in enumerate(mults):
        if m == 0.0:  # no steering: every patch is the unsteered run
            scores[i] = clean.numpy()[None, :]
            continue
        rows, steered_cache = runner.run_rows(1 + len(into_steered), steered=True, multiplier=float(m),
                                              hooks=_hooks(runner, into_steered, 1, clean_cache, layer),
                                              cache_names=names)
        scores[i, : 1 + len(into_steered)] = rows.numpy().reshape(-1, 2)
        if into_clean:
            source = {n: a[: runner.n_sides] for n, a in steered_cache.items()}  # copy 0 = unpatched steered run
            rows, _ = runner.run_rows(len(into_clean), hooks=_hooks(runner, into_clean, 0, source, layer))
            scores[i, 1 + len(into_steered):] = rows.numpy().reshape(-1, 2)
    s_pos = _ls_slopes(mults, scores[:, :, 0])
    s_neg = _ls_slopes(mults, scores[:, :, 1])
    return pd.DataFrame({"sample_id": pair.id, "dataset": pair.dataset, "patch": order,
                         "slope": s_pos - s_neg, "s_pos": s_pos, "s_neg": s_neg}, columns=PATCH_COLUMNS)


def completion_patch_slopes(model: HookedTransformer, vector: SteeringVector, pairs: Sequence[ContrastivePair],
                            patches: Sequence[CompletionPatch], multipliers: Sequence[float]) -> pd.DataFrame:
    """:func:`sample_patch_slopes` of every pair, stacked."""
    frames = [sample_patch_slopes(model, vector, pair, patches, multipliers) for pair in pairs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PATCH_COLUMNS)


def combine_sides(table: pd.DataFrame, pos_patch: str, neg_patch: str, name: str) -> pd.DataFrame:
    """``table`` plus rows ``name``: ``s_pos`` of ``pos_patch``, ``s_neg`` of ``neg_patch`` per sample.

    The two completions are separate sequences, so patching both equals combining the one-sided patches."""
    parts = [table[table["patch"] == p].set_index("sample_id") for p in (pos_patch, neg_patch)]
    if parts[0].empty or parts[1].empty or name in set(table["patch"]):
        raise ConfigError(f"combine_sides: need patches {pos_patch!r} and {neg_patch!r} and a new name (got {name!r})")
    both = parts[0].copy()
    both["s_neg"] = parts[1].loc[both.index, "s_neg"]
    both["slope"] = both["s_pos"] - both["s_neg"]
    both["patch"] = name
    return pd.concat([table, both.reset_index()[table.columns]], ignore_index=True)


def clustered_ratio(numerator, denominator, clusters, *, n_boot: int = 2000, seed: int = 0
                    ) -> tuple[float, float, float]:
    """``(Σ num / Σ den, low, high)`` with a 95% percentile CI from resampling whole clusters (a mean when
    ``denominator`` is all ones)."""
    num, den, g = np.asarray(numerator, float), np.asarray(denominator, float), np.asarray(clusters)
    if not (num.shape == den.shape == g.shape) or num.size == 0:
        raise ConfigError(f"clustered_ratio: numerator {num.shape}, denominator {den.shape}, clusters {g.shape} "
                          "must be equal and non-empty")
    keys, index = np.unique(g, return_inverse=True)
    n_sum = np.bincount(index, weights=num, minlength=len(keys))
    d_sum = np.bincount(index, weights=den, minlength=len(keys))
    draws = np.random.default_rng(seed).integers(0, len(keys), size=(n_boot, len(keys)))
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = n_sum[draws].sum(1) / d_sum[draws].sum(1)
    low, high = np.nanquantile(boot, [0.025, 0.975])
    return float(num.sum() / den.sum()), float(low), float(high)


def patch_effects(table: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per group (anti-steerable / steerable by the unpatched slope) and patch: n, means before / after, the mean
    change of ``s_neg``, ``s_pos`` and ``slope`` and the share of the group's summed ``s_neg`` that the patch
    removes, each with a dataset-clustered 95% CI, and the share of samples whose slope sign flips (anti-steerable:
    turned steerable; steerable: turned anti-steerable)."""
    missing = [c for c in PATCH_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"patch_effects: table lacks columns {missing}")
    base = table[table["patch"] == "none"].set_index("sample_id")
    rows = []
    for name in [p for p in table["patch"].unique() if p != "none"]:
        after = table[table["patch"] == name].set_index("sample_id").loc[base.index]
        for group, mask in (("anti-steerable", base["slope"] < 0), ("steerable", base["slope"] > 0)):
            b, a = base[mask], after[mask]
            if b.empty:
                continue
            g = b["dataset"].to_numpy()
            row: dict[str, Any] = dict(patch=name, group=group, n=len(b), n_datasets=int(b["dataset"].nunique()))
            for col in ("s_neg", "s_pos", "slope"):
                mean, low, high = clustered_ratio(a[col] - b[col], np.ones(len(b)), g, n_boot=n_boot, seed=seed)
                row.update({f"{col}_before": float(b[col].mean()), f"{col}_after": float(a[col].mean()),
                            f"{col}_change": mean, f"{col}_change_low": low, f"{col}_change_high": high})
            share = clustered_ratio(b["s_neg"] - a["s_neg"], b["s_neg"], g, n_boot=n_boot, seed=seed)
            row.update(s_neg_removed=share[0], s_neg_removed_low=share[1], s_neg_removed_high=share[2])
            flipped = np.sign(a["slope"].to_numpy()) != np.sign(b["slope"].to_numpy())
            turned = clustered_proportion(flipped, np.ones(len(b), bool), g, n_boot=n_boot, seed=seed)
            row.update(sign_flipped=turned[0], sign_flipped_low=turned[1], sign_flipped_high=turned[2])
            rows.append(row)
    return pd.DataFrame(rows)

"""Causal tests of anti-steerability explanations (issue 26, item 3): change the vector or the statements and
re-measure the per-sample slopes.

* :func:`project_off_logit_lens` — the steering direction minus its projection on the span of the unembedding
  directions of its own top-k logit-lens tokens (k = 0: unchanged; k large enough to span ``d_model``: zero).
* :func:`remove_negation` / :func:`edit_pairs` — minimal-pair edits of a completion (here: drop a negation).
* :func:`steered_slopes` — per-sample slopes of a direction at one layer (the study's fast engine and metric).
* :func:`intervention_effect` — before/after slopes of the same samples: mean change with a bootstrap CI and the
  fraction of anti-steerable samples the intervention turns steerable.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interp_steer.analysis.battery_features import logit_lens_top
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.stats.bootstrap import bootstrap
from interp_steer.stats.proportions import clustered_proportion


@torch.no_grad()
def project_off_logit_lens(model: HookedTransformer, direction: torch.Tensor, k: int) -> torch.Tensor:
    """``direction`` with its component in span{W_U[:, t] : t among its top-``k`` logit-lens tokens} removed."""
    if k < 0:
        raise ConfigError(f"logit-lens projection k={k}: must be ≥ 0")
    if k == 0:
        return direction.detach().clone()
    ids = logit_lens_top(model, direction, k).to(model.W_U.device)
    basis = model.W_U.float()[:, ids]
    q, r = torch.linalg.qr(basis, mode="reduced")
    rank = int((r.diagonal().abs() > 1e-6 * r.diagonal().abs().max()).sum()) if r.numel() else 0
    q = q[:, :rank] if rank < q.shape[1] else q
    d = direction.float().to(q.device)
    return (d - q @ (q.T @ d)).to(direction.dtype).cpu()


_CONTRACTIONS = {"don't": "do", "doesn't": "does", "didn't": "did", "can't": "can", "cannot": "can", "won't": "will",
                 "isn't": "is", "aren't": "are", "wasn't": "was", "weren't": "were", "shouldn't": "should",
                 "wouldn't": "would", "couldn't": "could", "haven't": "have", "hasn't": "has", "mustn't": "must"}
_NEGATION = re.compile(r"\b(" + "|".join(map(re.escape, _CONTRACTIONS)) + r")\b|\s+\b(not|never)\b", re.IGNORECASE)


def remove_negation(text: str) -> str | None:
    """``text`` with its negations dropped ("don't" → "do", " not" / " never" removed); ``None`` if it has none."""
    def replace(match: re.Match) -> str:
        if match.group(1):
            word = _CONTRACTIONS[match.group(1).lower()]
            return word.capitalize() if match.group(1)[0].isupper() else word
        return ""

    edited = _NEGATION.sub(replace, text)
    return None if edited == text else edited


def edit_pairs(pairs: Sequence[ContrastivePair], edit: Callable[[str], str | None], side: str
               ) -> list[tuple[ContrastivePair, ContrastivePair]]:
    """``(original, edited)`` for each pair whose ``side`` (``"positive"`` / ``"negative"``) ``edit`` changes."""
    if side not in ("positive", "negative"):
        raise ConfigError(f"edit side {side!r}: use 'positive' or 'negative'")
    out = []
    for pair in pairs:
        new = edit(getattr(pair, side))
        if new is not None:
            out.append((pair, pair.with_(**{side: new}, id=f"{pair.id}~edit")))
    return out


def steered_slopes(model: HookedTransformer, pairs: Sequence[ContrastivePair], direction: torch.Tensor, layer: int,
                   multipliers: Sequence[float]) -> pd.DataFrame:
    """Per-sample ``slope`` of steering ``direction`` at ``layer`` (free text: also ``s_pos`` / ``s_neg``, the
    slopes of the two completions' log-probs, see :mod:`~interp_steer.analysis.decomposition`)."""
    from interp_steer.evaluation import steerability
    from interp_steer.evaluation.fast_engine import fast_propensities
    from interp_steer.steering.vector import Provenance, SteeringVector

    vector = SteeringVector({f"blocks.{layer}.hook_resid_post": direction.float()},
                            Provenance(model=model.cfg.model_name, method="intervention", layers=[layer]))
    props = fast_propensities(model, list(pairs), vector, list(multipliers), progress=False)
    slopes = steerability(props)[["sample_id", "slope"]]
    if props["pos_logprob"].notna().all() and props["neg_logprob"].notna().all():
        from interp_steer.analysis.decomposition import decompose

        parts = decompose(props.assign(dataset=props["dataset"].fillna("")))[["sample_id", "s_pos", "s_neg"]]
        slopes = slopes.merge(parts, on="sample_id", validate="one_to_one")
    return slopes


def intervention_effect(before: np.ndarray, after: np.ndarray, clusters: np.ndarray | None = None,
                        n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean slope change (after − before) with a percentile bootstrap CI (over clusters if given), and among the
    samples anti-steerable before, the fraction steerable (slope > 0) after, with its CI (both pooled over samples,
    whole clusters resampled: :mod:`interp_steer.stats.bootstrap`, :func:`~interp_steer.stats.proportions.clustered_proportion`)."""
    b, a = np.asarray(before, float), np.asarray(after, float)
    if b.shape != a.shape or b.size == 0:
        raise ConfigError(f"intervention_effect: before {b.shape} and after {a.shape} must be equal and non-empty")
    g = np.arange(b.size) if clusters is None else np.asarray(clusters)
    change = bootstrap({"d": a - b}, lambda r, d: r.pooled_mean(d["d"]), clusters=clusters, n_boot=n_boot, seed=seed,
                       resample_within=False)
    lo_d, hi_d = change.ci_low[0], change.ci_high[0]
    anti = b < 0
    if anti.any():
        share, lo_t, hi_t = clustered_proportion(anti & (a > 0), anti, g, n_boot=n_boot, seed=seed)
    else:
        share = lo_t = hi_t = float("nan")
    return dict(n=int(b.size), mean_change=float((a - b).mean()), change_low=float(lo_d), change_high=float(hi_d),
                n_anti_before=int(anti.sum()), anti_fraction_before=float(anti.mean()),
                anti_fraction_after=float((a < 0).mean()), turned_steerable=float(share),
                turned_low=float(lo_t), turned_high=float(hi_t))


@torch.no_grad()
def project_off_random(direction: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Control for :func:`project_off_logit_lens`: ``direction`` minus its projection on a random (seeded,
    Gaussian) ``k``-dimensional subspace of the residual stream."""
    d_model = direction.shape[-1]
    if not 0 <= k <= d_model:
        raise ConfigError(f"random projection k={k}: must be in 0..{d_model}")
    if k == 0:
        return direction.detach().clone()
    basis = torch.randn(d_model, k, generator=torch.Generator().manual_seed(seed))
    q, _ = torch.linalg.qr(basis, mode="reduced")
    d = direction.float()
    return (d - q @ (q.T @ d)).to(direction.dtype)

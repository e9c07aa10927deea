"""Candidate explanations of free-text (anti-)steerability, measured per sample and tested on held-out samples.

:func:`candidate_features` computes, per free-text pair (clean run = unsteered):

* ``baseline_propensity`` — the metric at multiplier 0 (saturation);
* ``diff_projection`` / ``diff_cosine`` / ``diff_norm`` — the sample's own contrastive difference (positive −
  negative activation at the vector's layer and read position, as CAA reads it) against the unit vector;
* ``prompt_tokens``, ``pos_tokens``, ``neg_tokens``, ``completion_token_diff`` (pos − neg) — lengths;
* ``proj_mean`` / ``proj_max`` / ``proj_min`` / ``proj_std`` / ``proj_last`` — the clean residual stream at the
  vector's layer projected on the unit vector, token by token over the prompt (``proj_last``: the last prompt
  token, where steering starts);
* ``attn_prompt_clean`` / ``attn_prompt_steered`` / ``attn_prompt_delta`` — attention mass from the first
  ``attention_tokens`` completion tokens to the prompt (keys 1 … last prompt token; key 0, the attention sink, is
  left out), mean over heads, the layers after the vector and both completions, without and with steering
  (the steered values are an explanation, not a predictor input: they need the steered run);
* ``metric_clean`` / ``metric_steered`` / ``metric_direct``, ``total_per_unit``, ``direct_per_unit`` — the direct
  effect of the vector on the completion tokens (``multiplier × v`` added to the clean final residual only; see
  :mod:`interp_steer.analysis.completion_effects`), computed from the same two runs;
* with an SAE: its latents at the last prompt token (``sae_latents``), the *completion contrast*
  (``completion_latents``: the mean latent activation over the positive completion's tokens minus that over the
  negative completion's; on data sets whose samples share one prompt this is where samples differ), and the latents at
  every token (for top-activating tokens).

:func:`heldout_factor_tests` splits the samples (stratified by group) into a discovery and a held-out half: each
factor's direction is read on the discovery half and its effect — Spearman ρ with the slope and Cohen's d
steerable vs anti-steerable — is measured on the held-out half with bootstrap CIs. :func:`sae_heldout_tests`
does the same for SAE latents chosen on the discovery half only; :func:`sae_top_tokens` lists the tokens on
which chosen latents fire most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from transformer_lens import HookedTransformer

from interp_steer.analysis.breakdown import cohens_d
from interp_steer.analysis.readout import sample_sequences
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.scoring import completion_logprobs
from interp_steer.stats.intervals import metric_interval
from interp_steer.steering.activations import collect_contrastive_activations
from interp_steer.steering.apply import steer
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import SteeringVector

UNSTEERED_FEATURES = [
    "baseline_propensity", "diff_projection", "diff_cosine", "diff_norm", "prompt_tokens", "pos_tokens", "neg_tokens",
    "completion_token_diff", "proj_mean", "proj_max", "proj_min", "proj_std", "proj_last", "attn_prompt_clean",
]
"""Per-sample features computed from the unsteered model only (predictor inputs)."""

STEERED_FEATURES = ["attn_prompt_steered", "attn_prompt_delta", "direct_per_unit"]
"""Per-sample features that need the steered run (candidate explanations, not predictor inputs)."""


@dataclass
class CandidateFeatures:
    """Per-sample candidate features, and (with an SAE) latents at the last prompt token, the completion contrast
    (positive-completion mean − negative-completion mean) and the latents at every token."""

    table: pd.DataFrame
    sae_latents: np.ndarray | None = None
    token_latents: np.ndarray | None = None
    token_records: pd.DataFrame = field(default_factory=pd.DataFrame)
    completion_latents: np.ndarray | None = None


def _unit(vector: SteeringVector) -> torch.Tensor:
    direction = vector.directions[vector.hook_names[0]].double().cpu()
    return direction / direction.norm()


@torch.inference_mode()
def candidate_features(
    model: HookedTransformer,
    vector: SteeringVector,
    pairs: Sequence[ContrastivePair],
    propensities: pd.DataFrame,
    *,
    multiplier: float = 1.0,
    sae: Any = None,
    sae_hook_name: str | None = None,
    attention_tokens: int = 3,
) -> CandidateFeatures:
    """The features of the module doc, one row per pair (order of ``pairs``); ``multiplier`` is the steered run's."""
    if not pairs:
        raise ConfigError("candidate_features: no pairs")
    wrong = [p.id for p in pairs if p.kind != "free_text"]
    if wrong:
        raise ConfigError(f"candidate_features needs free-text pairs; {wrong[0]!r} is not")
    if multiplier == 0:
        raise ConfigError("candidate_features: multiplier must be non-zero (the steered run and per-unit effects)")
    if attention_tokens < 1:
        raise ConfigError(f"attention_tokens must be ≥ 1, got {attention_tokens}")
    if "multiplier" not in propensities.columns or not (propensities["multiplier"] == 0).any():
        raise ConfigError("candidate_features: the propensity table needs multiplier-0 rows (baseline propensity)")
    vector = vector.select()
    vector.check_fits(model)
    hook = vector.hook_names[0]
    layer = layer_of(hook)
    unit = _unit(vector)
    if sae is not None:
        sae_hook_name = sae_hook_name or getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
        if sae_hook_name not in model.hook_dict:
            raise ConfigError(f"sae_hook_name {sae_hook_name!r} is not a hook of the model")
    later = list(range(layer + 1, model.cfg.n_layers))
    pattern_names = {f"blocks.{lay}.attn.hook_pattern" for lay in later}
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    names = {hook, last, *pattern_names} | ({sae_hook_name} if sae is not None else set())
    steered_names = {last, *pattern_names}
    read: Any = vector.provenance.read_position or None
    acts = collect_contrastive_activations(model, pairs, [hook], read_position=read, progress=False)
    diffs = acts.differences(hook).double()
    base = propensities[propensities["multiplier"] == 0].groupby("sample_id")["propensity"].first()
    missing = [p.id for p in pairs if p.id not in base.index]
    if missing:
        raise ConfigError(f"candidate_features: no baseline propensity for {missing[0]!r}")
    steering = vector.to(model.cfg.device, dtype=model.cfg.dtype)
    tokenizer: Any = model.tokenizer
    pad = pad_token_id(tokenizer)
    records, last_latents, token_latents, token_rows, contrast_latents = [], [], [], [], []
    for index, pair in enumerate(pairs):
        seqs = sample_sequences(model.tokenizer, pair)
        batch = seqs.batch(1, pad).to(model.cfg.device)
        start = batch.absolute([seqs.steer_from] * 2)
        _, clean = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask, names_filter=lambda n: n in names)
        with steer(model, steering, multiplier=float(multiplier), positions=start):
            _, steered = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask,
                                              names_filter=lambda n: n in steered_names)
        metrics = _direct_metrics(model, steering, batch, seqs, start, clean[last], steered[last], float(multiplier))
        off0 = int(batch.offsets[0])
        prompt = slice(off0, off0 + seqs.steer_from + 1)
        proj = (clean[hook][0, prompt].double().cpu() @ unit).numpy()
        attention = {condition: _prompt_attention(cache, batch, seqs, pattern_names, attention_tokens)
                     for condition, cache in (("clean", clean), ("steered", steered))}
        records.append(_pair_record(pair, seqs, float(base[pair.id]), diffs[index], unit, proj, attention, metrics))
        if sae is not None:
            latents = _sae_latents(sae, clean[sae_hook_name], batch, seqs)
            n_prompt, n_pos = seqs.steer_from + 1, len(seqs.rows[0].ids)
            last_latents.append(latents[seqs.steer_from])
            contrast_latents.append(latents[n_prompt:n_pos].mean(0) - latents[n_pos:].mean(0))
            token_latents.append(latents.astype(np.float32))
            token_rows += _token_rows(tokenizer, pair, seqs)
    table = pd.DataFrame.from_records(records)
    if sae is None:
        return CandidateFeatures(table)
    return CandidateFeatures(table, np.stack(last_latents), np.concatenate(token_latents), pd.DataFrame(token_rows),
                             np.stack(contrast_latents))



def _prompt_attention(cache, batch, seqs, pattern_names: set[str], attention_tokens: int) -> float:
    """Mean attention mass from the first ``attention_tokens`` completion tokens (both sides) onto the prompt, over
    the heads of the layers in ``pattern_names`` (NaN without any)."""
    masses = []
    for side in range(2):
        off = int(batch.offsets[side])
        first = off + int(seqs.rows[side].score_from or 0)
        queries = slice(first, min(first + attention_tokens, batch.width))
        keys = slice(off + 1, off + seqs.steer_from + 1)
        for name in pattern_names:
            masses.append(float(cache[name][side, :, queries, keys].sum(-1).mean()))
    return float(np.mean(masses)) if masses else float("nan")


def _pair_record(pair: ContrastivePair, seqs, baseline: float, diff: torch.Tensor, unit: torch.Tensor,
                 proj: np.ndarray, attention: dict[str, float], metrics: dict) -> dict:
    """One row of the features table (see the module doc)."""
    n_prompt = seqs.steer_from + 1
    return {
        "sample_id": pair.id, "baseline_propensity": baseline,
        "diff_projection": float(diff @ unit),
        "diff_cosine": float(torch.nn.functional.cosine_similarity(diff, unit, dim=0)),
        "diff_norm": float(diff.norm()),
        "prompt_tokens": n_prompt, "pos_tokens": len(seqs.rows[0].ids) - n_prompt,
        "neg_tokens": len(seqs.rows[1].ids) - n_prompt,
        "completion_token_diff": len(seqs.rows[0].ids) - len(seqs.rows[1].ids),
        "proj_mean": float(proj.mean()), "proj_max": float(proj.max()), "proj_min": float(proj.min()),
        "proj_std": float(proj.std()), "proj_last": float(proj[-1]),
        "attn_prompt_clean": attention["clean"], "attn_prompt_steered": attention["steered"],
        "attn_prompt_delta": attention["steered"] - attention["clean"], **metrics,
    }


def _sae_latents(sae: Any, resid: torch.Tensor, batch, seqs) -> np.ndarray:
    """SAE latents of the positive sequence in full, then of the negative completion's own tokens."""
    resid = resid.float()
    n_prompt = seqs.steer_from + 1
    pos_part = resid[0, int(batch.offsets[0]):]
    neg_part = resid[1, int(batch.offsets[1]) + n_prompt:]
    return sae.encode(torch.cat([pos_part, neg_part]).to(getattr(sae, "device", "cpu"))).float().cpu().numpy()


def _token_rows(tokenizer: Any, pair: ContrastivePair, seqs) -> list[dict]:
    """One row per token of :func:`_sae_latents` (part, position, token and its preceding context)."""
    n_prompt = seqs.steer_from + 1
    ids = list(seqs.rows[0].ids) + list(seqs.rows[1].ids[n_prompt:])
    sides = ["prompt"] * n_prompt + ["pos"] * (len(seqs.rows[0].ids) - n_prompt) + ["neg"] * (len(ids) - len(seqs.rows[0].ids))
    rows = []
    for position, (token, part) in enumerate(zip(ids, sides)):
        where = position if position < len(seqs.rows[0].ids) else n_prompt + position - len(seqs.rows[0].ids)
        context_ids = (seqs.rows[0].ids if part != "neg" else seqs.rows[1].ids)[max(0, where - 6): where + 1]
        rows.append({"sample_id": pair.id, "part": part, "position": where,
                     "token": str(tokenizer.decode([token])), "context": str(tokenizer.decode(list(context_ids)))})
    return rows

def _direct_metrics(model: HookedTransformer, vector: SteeringVector, batch, seqs, start: torch.Tensor,
                    clean_final: torch.Tensor, steered_final: torch.Tensor, multiplier: float) -> dict[str, float]:
    """The metric clean, steered and *direct* (``multiplier × v`` added to the clean final residual at the steered
    positions), and the per-unit total and direct effects (as :func:`~interp_steer.analysis.completion_effects.
    completion_direct_effects` defines them)."""
    direction = vector.directions[vector.hook_names[0]]
    first = batch.offsets + torch.tensor([r.score_from for r in seqs.rows], device=batch.offsets.device)
    mask = torch.arange(batch.width, device=first.device)[None, :] >= first[:, None]
    steered_at = torch.arange(batch.width, device=start.device)[None, :] >= start[:, None]
    direct_final = clean_final + multiplier * steered_at[..., None].to(direction.dtype) * direction
    values = {}
    for name, final in (("clean", clean_final), ("steered", steered_final), ("direct", direct_final)):
        totals = completion_logprobs(model, final, batch.tokens, mask).logprob
        values[name] = float(totals[0] - totals[1])
    return {"metric_clean": values["clean"], "metric_steered": values["steered"], "metric_direct": values["direct"],
            "total_per_unit": (values["steered"] - values["clean"]) / multiplier,
            "direct_per_unit": (values["direct"] - values["clean"]) / multiplier}


# ----------------------------------------------------------------------------- held-out tests
def discovery_split(groups: np.ndarray | Sequence[str], fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Boolean mask of the discovery half, stratified by group (the rest is held out)."""
    if not 0 < fraction < 1:
        raise ConfigError(f"discovery fraction must be in (0, 1), got {fraction}")
    groups = np.asarray(groups, dtype=str)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(groups), dtype=bool)
    for g in np.unique(groups):
        members = rng.permutation(np.flatnonzero(groups == g))
        mask[members[: int(round(fraction * len(members)))]] = True
    return mask


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _effects(x: np.ndarray, slope: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Spearman ρ(x, slope) and Cohen's d (steerable − anti) with bootstrap CIs."""
    n = len(x)
    rho = _rho(x, slope)
    _, rho_lo, rho_hi = metric_interval(lambda i: _rho(x[i], slope[i]), n, n_boot=n_boot, seed=seed)
    steer_mask, anti_mask = groups == "steerable", groups == "anti-steerable"

    def d_of(i: np.ndarray) -> float:
        return cohens_d(x[i][steer_mask[i]], x[i][anti_mask[i]])

    d = cohens_d(x[steer_mask], x[anti_mask])
    strata = np.where(steer_mask, 0, np.where(anti_mask, 1, 2))
    _, d_lo, d_hi = metric_interval(d_of, n, strata=strata, n_boot=n_boot, seed=seed)
    return {"rho": rho, "rho_low": rho_lo, "rho_high": rho_hi, "d": d, "d_low": d_lo, "d_high": d_hi}


def heldout_factor_tests(
    table: pd.DataFrame, slope: np.ndarray, groups: np.ndarray | Sequence[str], columns: Sequence[str], *,
    discovery: np.ndarray, n_boot: int = 2000, seed: int = 0,
) -> pd.DataFrame:
    """Per factor: discovery-half ρ and d (the predicted direction), held-out ρ and d with bootstrap CIs, and
    ``held`` = the held-out ρ CI excludes 0 on the discovery half's side."""
    slope, groups_a = np.asarray(slope, dtype=float), np.asarray(groups, dtype=str)
    if not len(slope) == len(groups_a) == len(table) == len(discovery):
        raise ConfigError("heldout_factor_tests: table, slope, groups and discovery must have one entry per sample")
    held_out = ~np.asarray(discovery, dtype=bool)
    records = []
    for column in columns:
        x = table[column].to_numpy(dtype=float)
        disc = _rho(x[~held_out], slope[~held_out])
        out = _effects(x[held_out], slope[held_out], groups_a[held_out], n_boot, seed)
        sign = np.sign(disc) if np.isfinite(disc) else 0.0
        held = bool(sign != 0 and ((sign > 0 and out["rho_low"] > 0) or (sign < 0 and out["rho_high"] < 0)))
        records.append({"factor": column, "discovery_rho": disc,
                        "discovery_d": cohens_d(x[~held_out][groups_a[~held_out] == "steerable"],
                                                x[~held_out][groups_a[~held_out] == "anti-steerable"]),
                        **{f"heldout_{k}": v for k, v in out.items()}, "held": held,
                        "n_discovery": int((~held_out).sum()), "n_heldout": int(held_out.sum())})
    return pd.DataFrame.from_records(records)


def sae_heldout_tests(
    latents: np.ndarray, slope: np.ndarray, groups: np.ndarray | Sequence[str], *, discovery: np.ndarray, top_k: int = 8,
    min_active: int = 3, n_boot: int = 2000, seed: int = 0, signed: bool = False,
) -> pd.DataFrame:
    """SAE latents with the largest |Cohen's d| steerable vs anti-steerable on the discovery half (active in ≥
    ``min_active`` discovery samples), tested on the held-out half like :func:`heldout_factor_tests`.

    ``signed``: the values are differences (e.g. the completion contrast), so "active" means non-zero rather
    than positive, in the selection and in the ``active_*`` shares."""
    groups_a = np.asarray(groups, dtype=str)
    disc = np.asarray(discovery, dtype=bool)
    d_lat, g_lat = latents[disc], groups_a[disc]

    def active(values: np.ndarray) -> np.ndarray:
        return values != 0 if signed else values > 0

    candidates = []
    for feature in np.flatnonzero(active(d_lat).sum(axis=0) >= min_active):
        d = cohens_d(d_lat[g_lat == "steerable", feature], d_lat[g_lat == "anti-steerable", feature])
        if np.isfinite(d):
            candidates.append((abs(d), int(feature), d))
    chosen = sorted(candidates, reverse=True)[:top_k]
    if not chosen:
        return pd.DataFrame(columns=["feature", "discovery_rho", "discovery_d", "heldout_rho", "heldout_d", "held"])
    frame = pd.DataFrame({f"f{f}": latents[:, f] for _, f, _ in chosen})
    tests = heldout_factor_tests(frame, slope, groups_a, list(frame.columns), discovery=disc, n_boot=n_boot, seed=seed)
    tests.insert(0, "feature", [f for _, f, _ in chosen])
    tests["discovery_d"] = [d for _, _, d in chosen]
    tests["active_steerable"] = [float(active(latents[groups_a == "steerable", f]).mean()) for _, f, _ in chosen]
    tests["active_anti"] = [float(active(latents[groups_a == "anti-steerable", f]).mean()) for _, f, _ in chosen]
    # "held" for a latent: the held-out d CI excludes 0 on the discovery side
    tests["held"] = [bool((d > 0 and lo > 0) or (d < 0 and hi < 0))
                     for d, lo, hi in zip(tests["discovery_d"], tests["heldout_d_low"], tests["heldout_d_high"])]
    return tests.drop(columns=["factor"])


def sae_top_tokens(token_latents: np.ndarray, token_records: pd.DataFrame, features: Sequence[int], *, k: int = 5) -> pd.DataFrame:
    """For each latent in ``features``, the ``k`` tokens (over every sample's prompt and both completions) where it
    fires most: ``feature, rank, activation, sample_id, part, token, context``."""
    if len(token_latents) != len(token_records):
        raise ConfigError("sae_top_tokens: one latent row per token record needed")
    records = []
    for feature in features:
        column = token_latents[:, int(feature)]
        for rank, row in enumerate(np.argsort(-column)[:k]):
            if column[row] <= 0:
                break
            info = token_records.iloc[int(row)]
            records.append({"feature": int(feature), "rank": rank, "activation": float(column[row]),
                            "sample_id": info["sample_id"], "part": info["part"], "token": info["token"],
                            "context": info["context"]})
    return pd.DataFrame.from_records(records, columns=["feature", "rank", "activation", "sample_id", "part", "token", "context"])

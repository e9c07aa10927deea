"""Compare steering vectors (e.g. CAA vs SAE-targeted vs SAE decoder directions) at equal norm.

Four views, each a tidy DataFrame (see :class:`VectorComparison`):

* ``cosine`` — pairwise cosine similarity of the vectors' directions at the shared hook;
* ``feature_effects`` — for each vector rescaled to ``norm × multiplier`` (positive multipliers only) and added at
  every scored position of fixed ``texts``, the change Δ of the mean SAE feature activations
  (:func:`interp_steer.sae.mean_feature_activations`, steered − clean): the mean Δ over the target features, the
  mean |Δ| and the L2 norm of Δ over the non-target features, and ``specificity`` = target increase / off-target L2;
  ``target_effects`` lists Δ per target feature;
* ``steerability`` — per-vector summary of per-sample steerability (slope of propensity on multiplier) and the
  anti-steerable fraction on held-out contrastive pairs, with every vector rescaled to ``norm``;
* ``generations`` — a few greedy completions per vector at the extreme multipliers (and unsteered).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer.data import render_prompt
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.evaluation import compute_propensities, steerability, summarize_steerability
from interp_steer.sae.feature_effects import mean_feature_activations
from interp_steer.steering import SteeringVector, generate

FEATURE_EFFECT_COLUMNS = ["vector", "multiplier", "norm", "target_increase", "off_target_mean_abs", "off_target_l2",
                          "specificity", "target_decoder_cosine"]


@dataclass
class VectorComparison:
    """The tables of :func:`compare_vectors` (all tidy, one row per observation)."""

    cosine: pd.DataFrame
    feature_effects: pd.DataFrame
    target_effects: pd.DataFrame
    steerability: pd.DataFrame
    per_sample: pd.DataFrame
    propensities: pd.DataFrame
    generations: pd.DataFrame
    norm: float
    hook_name: str
    target_features: list[int] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Name → table, for writing CSVs."""
        return {"cosine": self.cosine, "feature_effects": self.feature_effects, "target_effects": self.target_effects,
                "steerability": self.steerability, "per_sample_steerability": self.per_sample,
                "propensities": self.propensities, "generations": self.generations}


def shared_hook(vectors: Mapping[str, SteeringVector], hook_name: str | None = None) -> str:
    """The one hook every vector steers (``hook_name`` if given, which every vector must have)."""
    if not vectors:
        raise ConfigError("vectors: pass at least one named SteeringVector")
    if hook_name is None:
        names = {tuple(v.hook_names) for v in vectors.values()}
        if len(names) != 1 or len(next(iter(names))) != 1:
            raise SteeringVectorError(f"vectors steer different or several hooks {sorted(names)}; pass hook_name")
        return next(iter(names))[0]
    missing = [n for n, v in vectors.items() if hook_name not in v.directions]
    if missing:
        raise SteeringVectorError(f"vectors {missing} have no direction at {hook_name!r}")
    return hook_name


def direction_matrix(vectors: Mapping[str, SteeringVector], hook_name: str) -> Float[Tensor, "n d_model"]:
    """The vectors' directions at ``hook_name`` stacked as rows (float32), in mapping order."""
    rows = [v.directions[hook_name].detach().float() for v in vectors.values()]
    if any(float(r.norm()) == 0 for r in rows):
        zero = [n for n, r in zip(vectors, rows) if float(r.norm()) == 0]
        raise SteeringVectorError(f"vectors {zero} are zero at {hook_name!r}; cannot rescale to equal norm")
    return torch.stack(rows)


def cosine_table(vectors: Mapping[str, SteeringVector], hook_name: str | None = None) -> pd.DataFrame:
    """Pairwise cosine similarity, long format: ``vector_a, vector_b, cosine`` (all ordered pairs incl. self)."""
    hook_name = shared_hook(vectors, hook_name)
    mat = direction_matrix(vectors, hook_name)
    unit = mat / mat.norm(dim=1, keepdim=True)
    cos = (unit @ unit.T).tolist()
    names = list(vectors)
    return pd.DataFrame([{"vector_a": a, "vector_b": b, "cosine": cos[i][j]}
                         for i, a in enumerate(names) for j, b in enumerate(names)])


def equal_norm(vectors: Mapping[str, SteeringVector], norm: float, hook_name: str | None = None) -> dict[str, SteeringVector]:
    """Every vector restricted to ``hook_name`` and rescaled to L2 norm ``norm`` there."""
    if not norm > 0:
        raise ConfigError(f"norm must be positive, got {norm}")
    hook_name = shared_hook(vectors, hook_name)
    direction_matrix(vectors, hook_name)  # zero check
    return {name: v.select(hook_name).normalize(norm) for name, v in vectors.items()}


def _target_ids(target_features: Sequence[int], d_sae: int) -> list[int]:
    ids = [int(f) for f in target_features]
    if not ids:
        raise ConfigError("target_features: pass at least one SAE feature id")
    bad = [f for f in ids if not 0 <= f < d_sae]
    if bad:
        raise ConfigError(f"target_features {bad} out of range for an SAE with {d_sae} features")
    return sorted(set(ids))


def feature_effect_tables(model, sae, vectors: Mapping[str, SteeringVector], texts: Sequence[str],
                          target_features: Sequence[int], norms: Sequence[float], hook_name: str | None = None,
                          multipliers: Sequence[float] | None = None, max_tokens: int = 64
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature effects of every vector at each norm in ``norms`` (summary table, per-target table).

    ``multipliers`` (same length as ``norms``) only labels the rows; default: the norms themselves.
    """
    hook_name = shared_hook(vectors, hook_name)
    targets = _target_ids(target_features, sae.cfg.d_sae)
    multipliers = list(norms) if multipliers is None else list(multipliers)
    if len(multipliers) != len(norms):
        raise ConfigError(f"multipliers ({len(multipliers)}) and norms ({len(norms)}) differ in length")
    mat = direction_matrix(vectors, hook_name)
    unit = mat / mat.norm(dim=1, keepdim=True)
    probes = torch.cat([unit * float(n) for n in norms])  # norm-major: rows [k*n_vec + i]
    clean = mean_feature_activations(model, sae, texts, None, hook_name, max_tokens=max_tokens)[0]
    delta = mean_feature_activations(model, sae, texts, probes, hook_name, max_tokens=max_tokens) - clean
    is_target = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    is_target[targets] = True
    dec = sae.W_dec.detach().float()[targets]
    dec_cos = (unit @ (dec / dec.norm(dim=1, keepdim=True)).T).mean(dim=1)
    summary, per_target = [], []
    names = list(vectors)
    for k, (mult, norm) in enumerate(zip(multipliers, norms)):
        for i, name in enumerate(names):
            d = delta[k * len(names) + i]
            off = d[~is_target]
            target_increase = float(d[is_target].mean())
            off_l2 = float(off.norm())
            summary.append({"vector": name, "multiplier": float(mult), "norm": float(norm),
                            "target_increase": target_increase, "off_target_mean_abs": float(off.abs().mean()),
                            "off_target_l2": off_l2,
                            "specificity": target_increase / off_l2 if off_l2 > 0 else float("nan"),
                            "target_decoder_cosine": float(dec_cos[i])})
            per_target += [{"vector": name, "multiplier": float(mult), "norm": float(norm), "feature": f,
                            "clean_activation": float(clean[f]), "delta": float(d[f])} for f in targets]
    return pd.DataFrame(summary, columns=FEATURE_EFFECT_COLUMNS), pd.DataFrame(per_target)


def steerability_tables(model, vectors: Mapping[str, SteeringVector], test_pairs: Sequence[ContrastivePair],
                        multipliers: Sequence[float], batch_size: int = 32
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(summary per vector, per-sample steerability, propensities) of the vectors as given (not rescaled)."""
    frames = [compute_propensities(model, test_pairs, v, multipliers, batch_size=batch_size, vector_name=name)
              for name, v in vectors.items()]
    propensities = pd.concat(frames, ignore_index=True)
    per_sample = steerability(propensities)
    summary = summarize_steerability(per_sample, by=["vector"])
    summary["vector"] = pd.Categorical(summary["vector"], categories=list(vectors), ordered=True)
    summary = summary.sort_values("vector").reset_index(drop=True)
    summary["vector"] = summary["vector"].astype(str)
    return summary, per_sample, propensities


def generation_examples(model, vectors: Mapping[str, SteeringVector], prompts: Sequence[ContrastivePair | str],
                        multipliers: Sequence[float], max_new_tokens: int = 24) -> pd.DataFrame:
    """Greedy completions: one unsteered row per prompt, then each vector at each multiplier (≠ 0).

    Columns: prompt, vector, multiplier, completion. Pairs are rendered with their chat template.
    """
    rows = []
    for prompt in prompts:
        text = render_prompt(model.tokenizer, prompt) if isinstance(prompt, ContrastivePair) else str(prompt)
        shown = prompt.prompt if isinstance(prompt, ContrastivePair) else str(prompt)
        rows.append({"prompt": shown, "vector": "(none)", "multiplier": 0.0,
                     "completion": generate(model, text, None, 0.0, max_new_tokens)})
        for name, vector in vectors.items():
            for m in multipliers:
                if m != 0:
                    rows.append({"prompt": shown, "vector": name, "multiplier": float(m),
                                 "completion": generate(model, text, vector, float(m), max_new_tokens)})
    return pd.DataFrame(rows, columns=["prompt", "vector", "multiplier", "completion"])


def compare_vectors(model, sae, vectors: Mapping[str, SteeringVector], test_pairs: Sequence[ContrastivePair],
                    texts: Sequence[str], target_features: Sequence[int], multipliers: Sequence[float], *,
                    norm: float | None = None, hook_name: str | None = None, n_generations: int = 2,
                    max_new_tokens: int = 24, max_tokens: int = 64, batch_size: int = 32) -> VectorComparison:
    """Compare named steering vectors at equal norm (see the module docstring for the tables).

    ``norm``: the common L2 norm (default: the norm of the first vector), so multiplier 1 means a vector of
    that norm. Feature effects are measured at ``norm × m`` for each positive multiplier ``m``; steerability
    uses all ``multipliers``; generations use the lowest and highest multiplier on the first
    ``n_generations`` test pairs (0 skips them).
    """
    hook_name = shared_hook(vectors, hook_name)
    if not test_pairs:
        raise ConfigError("test_pairs: pass at least one ContrastivePair")
    if not texts:
        raise ConfigError("texts: pass at least one fixed text for the feature effects")
    positive = sorted({float(m) for m in multipliers if m > 0})
    if not positive:
        raise ConfigError(f"multipliers {list(multipliers)} contain no positive value; feature effects need one")
    if norm is None:
        norm = float(next(iter(vectors.values())).directions[hook_name].float().norm())
    scaled = equal_norm(vectors, norm, hook_name)
    effects, per_target = feature_effect_tables(model, sae, scaled, texts, target_features,
                                                [norm * m for m in positive], hook_name, positive, max_tokens)
    summary, per_sample, propensities = steerability_tables(model, scaled, test_pairs, multipliers, batch_size)
    extremes = sorted({min(multipliers), max(multipliers)} - {0.0})
    generations = (generation_examples(model, scaled, list(test_pairs)[:n_generations], extremes, max_new_tokens)
                   if n_generations > 0 else pd.DataFrame(columns=["prompt", "vector", "multiplier", "completion"]))
    return VectorComparison(cosine=cosine_table(vectors, hook_name), feature_effects=effects,
                            target_effects=per_target, steerability=summary, per_sample=per_sample,
                            propensities=propensities, generations=generations, norm=float(norm),
                            hook_name=hook_name, target_features=_target_ids(target_features, sae.cfg.d_sae))

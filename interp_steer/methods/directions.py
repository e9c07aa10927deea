"""Directions from activation statistics: paired-difference PCA, centred PCA, a linear probe, mean-centring.

All read activations as CAA does (:func:`~interp_steer.methods.caa.collect_contrastive_activations`, same
``read_position`` rule) and aggregate them differently. With ``h⁺ᵢ``, ``h⁻ᵢ`` the activations of pair ``i``'s
positive and negative sequence, ``dᵢ = h⁺ᵢ − h⁻ᵢ`` and ``d̄`` their mean (the CAA vector):

* ``pca_diff`` (RepE, Zou et al. 2023, "Representation Engineering", PCA on paired differences): the first right
  singular vector of the ``2n × d`` matrix whose rows are ``+dᵢ/2`` and ``−dᵢ/2`` (each difference with both signs,
  as RepE's random-order pairs give). That matrix has mean exactly zero, so its centred PCA equals the uncentred one:
  PC1 is the top eigenvector of ``Σᵢ dᵢdᵢᵀ``.
* ``pca_centred`` (the PCA of SteeringSafety / AxBench): PC1 of the stacked ``[h⁺; h⁻]`` minus their mean.
* ``probe``: logistic regression ``h⁺ → 1``, ``h⁻ → 0`` without intercept, minimising
  ``½|w|² + C·Σ log(1 + exp(−yₖ w·xₖ))`` (``yₖ = ±1``; scikit-learn's L-BFGS), ``w`` normalised.
* ``mean_centring`` (Jorgensen et al. 2023, "Improving activation steering in language models with
  mean-centring"): the mean activation on behaviour-consistent text (each pair's prompt + positive completion)
  minus the mean over the package's neutral corpus (:func:`~interp_steer.data.neutral.load_neutral_corpus`),
  both at the same read rule (for a neutral passage ``completion_mean`` averages its tokens after the first and
  ``last`` / ``answer`` read its last token).

Orientation: a PC's sign is chosen so that the positives project above the negatives on average
(``d̄·u > 0``). Length: the PCA vectors are scaled to ``|d̄|`` (``scale="caa_norm"``, the default, so a multiplier
means the same shift as for CAA) or left at unit norm; the probe is unit (or ``caa_norm``); mean-centring keeps
its own length. Every vector records its config, its norm and CAA's norm in the provenance, and a reference point
for the ``ace`` operator (the negatives' mean; for mean-centring the neutral corpus's mean).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.data.neutral import load_neutral_corpus
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import encode_sequence, left_pad, pad_token_id, sequence_start_ids
from interp_steer.errors import DataFormatError
from interp_steer.methods.caa import ContrastiveActivations, caa_provenance, collect_contrastive_activations
from interp_steer.methods.direction_configs import MeanCentringConfig, PCAConfig, ProbeConfig
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.reference import with_reference_points
from interp_steer.steering.vector import SteeringVector

Acts = Tensor
"""``[n_pairs, d_model]`` activations; annotated loosely so a wrong shape gets the one-line DataFormatError of
:func:`check_pair_activations` rather than a run-time type-checker error."""


# ------------------------------------------------------------------------------------------ checks
def check_pair_activations(positive: Tensor, negative: Tensor, method: str, where: str = "") -> None:
    """One-line DataFormatError unless ``positive`` / ``negative`` are ``[n, d]`` of one shape, ``n ≥ 2``, finite, and
    not every pair has identical activations."""
    at = f" at {where}" if where else ""
    if positive.ndim != 2 or positive.shape != negative.shape:
        raise DataFormatError(f"{method}{at}: positive and negative activations must both be [n_pairs, d_model], got "
                              f"{tuple(positive.shape)} and {tuple(negative.shape)}")
    if positive.shape[0] < 2:
        raise DataFormatError(f"{method}{at}: needs at least 2 pairs, got {positive.shape[0]} (a direction from one "
                              "pair is that pair's difference, with nothing to estimate)")
    for side, acts in (("positive", positive), ("negative", negative)):
        _check_finite(acts, f"{method}{at}", side)
    if bool((positive == negative).all()):
        raise DataFormatError(f"{method}{at}: every pair has identical positive and negative activations; no direction "
                              "separates them")


def _check_finite(acts: Tensor, what: str, side: str) -> None:
    bad = (~torch.isfinite(acts)).any(dim=1)
    if bool(bad.any()):
        raise DataFormatError(f"{what}: {side} activations of pair {int(bad.nonzero()[0, 0])} are not finite "
                              f"(NaN or inf in {int(bad.sum())} of {acts.shape[0]} pairs)")


def _orient(unit: np.ndarray, mean_difference: np.ndarray, method: str) -> np.ndarray:
    """``unit`` with the sign that puts the positives above the negatives on average (``d̄·u > 0``)."""
    projection = float(mean_difference @ unit)
    if abs(projection) <= 1e-12 * max(float(np.linalg.norm(mean_difference)), 1e-30):
        raise DataFormatError(f"{method}: the positives and negatives have the same mean projection on PC1, so its "
                              "sign cannot be oriented (the mean difference is zero or orthogonal to PC1)")
    return unit if projection > 0 else -unit


# ------------------------------------------------------------------------------------------ aggregators
def pca_diff_direction(positive: Acts, negative: Acts) -> Float[Tensor, "d_model"]:
    """Unit PC1 of the rows ``±(h⁺ᵢ − h⁻ᵢ)/2`` (float64 SVD), oriented so that ``d̄·u > 0``."""
    check_pair_activations(positive, negative, "pca_diff")
    diffs = (positive.double() - negative.double()).numpy()
    stacked = np.concatenate([diffs / 2, -diffs / 2])
    unit = np.linalg.svd(stacked, full_matrices=False)[2][0]
    return torch.from_numpy(_orient(unit, diffs.mean(0), "pca_diff")).float()


def pca_centred_direction(positive: Acts, negative: Acts) -> Float[Tensor, "d_model"]:
    """Unit PC1 of ``[h⁺; h⁻]`` minus its mean (float64 SVD), oriented so that ``d̄·u > 0``."""
    check_pair_activations(positive, negative, "pca_centred")
    stacked = torch.cat([positive, negative]).double().numpy()
    unit = np.linalg.svd(stacked - stacked.mean(0), full_matrices=False)[2][0]
    mean_difference = (positive.double() - negative.double()).mean(0).numpy()
    return torch.from_numpy(_orient(unit, mean_difference, "pca_centred")).float()


def probe_direction(positive: Acts, negative: Acts, C: float = 1.0, max_iter: int = 2000) -> tuple[Tensor, float]:
    """Unit weight of an L2 logistic regression without intercept (``h⁺ → 1``, ``h⁻ → 0``) and its training accuracy."""
    from sklearn.linear_model import LogisticRegression

    check_pair_activations(positive, negative, "probe")
    x = torch.cat([positive, negative]).double().numpy()
    y = np.r_[np.ones(positive.shape[0]), np.zeros(negative.shape[0])]
    fit = LogisticRegression(C=C, fit_intercept=False, max_iter=max_iter, tol=1e-10).fit(x, y)
    weight = fit.coef_[0]
    norm = float(np.linalg.norm(weight))
    if not np.isfinite(norm) or norm == 0.0:
        raise DataFormatError("probe: the fitted weight is zero or not finite; the classes are not separable at all")
    return torch.from_numpy(weight / norm).float(), float(fit.score(x, y))


def mean_centring_direction(positive: Acts, generic: Tensor) -> Float[Tensor, "d_model"]:
    """``mean(h⁺) − mean(h_generic)`` (float64 sums)."""
    if positive.ndim != 2 or positive.shape[0] < 2:
        raise DataFormatError(f"mean_centring: positive activations must be [n_pairs ≥ 2, d_model], got {tuple(positive.shape)}")
    _check_finite(positive, "mean_centring", "positive")
    if generic.ndim != 2 or generic.shape[1] != positive.shape[1] or generic.shape[0] < 1:
        raise DataFormatError(f"mean_centring: generic activations must be [n_texts ≥ 1, {positive.shape[1]}], got "
                              f"{tuple(generic.shape)}")
    if not bool(torch.isfinite(generic).all()):
        raise DataFormatError("mean_centring: the generic-corpus activations are not finite")
    direction = (positive.double().mean(0) - generic.double().mean(0)).float()
    if not bool(direction.any()):
        raise DataFormatError("mean_centring: the positives' mean equals the generic corpus's mean; the direction is zero")
    return direction


@torch.inference_mode()
def neutral_activations(model: HookedTransformer, hook_names: Sequence[str], read_position: str, *,
                        limit: int | None = None, batch_size: int = 16) -> dict[str, Tensor]:
    """Activations of the neutral corpus at ``hook_names``: ``[n_passages, d_model]`` per hook.

    ``completion_mean`` averages each passage's tokens after its first (the sequence start, or the first text token
    when there is none: an attention sink whose norm would dominate the mean); ``last`` and ``answer`` read the
    passage's last token."""
    tokenizer, pad = model.tokenizer, pad_token_id(model.tokenizer)
    skip = max(1, len(sequence_start_ids(tokenizer)))
    texts = [encode_sequence(tokenizer, p.text)[: model.cfg.n_ctx] for p in load_neutral_corpus(limit=limit)]
    texts = [t for t in texts if len(t) > skip]
    if not texts:
        raise DataFormatError("mean_centring: no neutral passage is longer than its sequence start")
    stop_at = max(layer_of(n) for n in hook_names) + 1
    out: dict[str, list[Tensor]] = {n: [] for n in hook_names}
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        batch = left_pad(chunk, pad).to(model.cfg.device)
        _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask,
                                        names_filter=lambda n: n in hook_names, stop_at_layer=stop_at)
        for row, ids in enumerate(chunk):
            col0 = int(batch.offsets[row])
            lo = col0 + skip if read_position == "completion_mean" else col0 + len(ids) - 1
            for name in hook_names:
                out[name].append(cache[name][row, lo: col0 + len(ids)].float().mean(0).cpu())
    return {n: torch.stack(v) for n, v in out.items()}


# ------------------------------------------------------------------------------------------ vectors
def _vector(method: str, model: HookedTransformer, pairs: Sequence[ContrastivePair], acts: ContrastiveActivations,
            directions: dict[str, Tensor], references: dict[str, Tensor], config: Any, dataset: str | None,
            reference_kind: str = "negative_mean", **extra: Any) -> SteeringVector:
    """The SteeringVector of ``directions`` with CAA's provenance, the method's config, norms and reference points."""
    caa = mean_difference_norms(acts)
    base = caa_provenance(model, pairs, acts, dataset)
    provenance = replace(base, method=method, extra={
        **base.extra, "config": config.to_dict(), "norms": {n: float(d.norm()) for n, d in directions.items()},
        "caa_norms": caa, **extra})
    return with_reference_points(SteeringVector(directions, provenance), references, reference_kind)


def mean_difference_norms(acts: ContrastiveActivations) -> dict[str, float]:
    """``|d̄|`` (the CAA vector's norm) per hook."""
    return {n: float(acts.differences(n).double().mean(0).norm()) for n in acts.hook_names}


def _collect(model, pairs, layers, config, progress: bool, method: str) -> ContrastiveActivations:
    if len(pairs) < 2:
        raise DataFormatError(f"{method} needs at least 2 pairs, got {len(pairs)}")
    return collect_contrastive_activations(model, pairs, layers, read_position=config.read_position,
                                           batch_size=config.batch_size, progress=progress)


def _scaled(unit: Tensor, config: PCAConfig | ProbeConfig, caa_norm: float) -> Tensor:
    return unit * caa_norm if config.scale == "caa_norm" else unit


def _pca(method: str, aggregate: Callable[[Tensor, Tensor], Tensor]):
    def run(model: HookedTransformer, pairs: Sequence[ContrastivePair], layers: Sequence[int | str],
            config: PCAConfig | None = None, *, progress: bool = True, dataset: str | None = None) -> SteeringVector:
        config = config or PCAConfig()
        acts = _collect(model, pairs, layers, config, progress, method)
        caa = mean_difference_norms(acts)
        directions = {}
        for n in acts.hook_names:
            check_pair_activations(acts.positive[n], acts.negative[n], method, n)
            directions[n] = _scaled(aggregate(acts.positive[n], acts.negative[n]), config, caa[n])
        return _vector(method, model, pairs, acts, directions, {n: acts.negative[n].mean(0) for n in acts.hook_names},
                       config, dataset)

    run.__name__ = f"extract_{method}"
    run.__doc__ = f"A ``{method}`` steering vector per requested layer (see the module docstring for the formula)."
    return run


extract_pca_diff = _pca("pca_diff", pca_diff_direction)
extract_pca_centred = _pca("pca_centred", pca_centred_direction)


def extract_probe(model: HookedTransformer, pairs: Sequence[ContrastivePair], layers: Sequence[int | str],
                  config: ProbeConfig | None = None, *, progress: bool = True, dataset: str | None = None) -> SteeringVector:
    """A ``probe`` steering vector per requested layer: the unit weight of a logistic regression ``h⁺ → 1``, ``h⁻ → 0``."""
    config = config or ProbeConfig()
    acts = _collect(model, pairs, layers, config, progress, "probe")
    caa = mean_difference_norms(acts)
    directions, accuracy = {}, {}
    for n in acts.hook_names:
        check_pair_activations(acts.positive[n], acts.negative[n], "probe", n)
        unit, accuracy[n] = probe_direction(acts.positive[n], acts.negative[n], config.C, config.max_iter)
        directions[n] = _scaled(unit, config, caa[n])
    return _vector("probe", model, pairs, acts, directions, {n: acts.negative[n].mean(0) for n in acts.hook_names},
                   config, dataset, train_accuracy=accuracy)


def extract_mean_centring(model: HookedTransformer, pairs: Sequence[ContrastivePair], layers: Sequence[int | str],
                          config: MeanCentringConfig | None = None, *, progress: bool = True,
                          dataset: str | None = None) -> SteeringVector:
    """A ``mean_centring`` vector per requested layer: positives' mean minus the neutral corpus's mean."""
    config = config or MeanCentringConfig()
    acts = _collect(model, pairs, layers, config, progress, "mean_centring")
    generic = neutral_activations(model, acts.hook_names, acts.read_position, limit=config.n_neutral,
                                  batch_size=config.batch_size)
    directions = {}
    for n in acts.hook_names:
        directions[n] = mean_centring_direction(acts.positive[n], generic[n])
    return _vector("mean_centring", model, pairs, acts, directions, {n: generic[n].mean(0) for n in acts.hook_names},
                   config, dataset, reference_kind="neutral_mean", n_neutral=int(next(iter(generic.values())).shape[0]))


__all__ = [
    "check_pair_activations", "extract_mean_centring", "extract_pca_centred", "extract_pca_diff", "extract_probe",
    "mean_centring_direction", "neutral_activations", "pca_centred_direction", "pca_diff_direction",
    "probe_direction",
]

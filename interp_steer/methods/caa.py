"""Contrastive Activation Addition (Rimsky et al. 2024): mean over pairs of positive − negative activations.

Split as in steering-vectors: :func:`~interp_steer.steering.activations.collect_contrastive_activations` runs the
forward passes and :func:`mean_difference` aggregates, so the expensive part can be cached and re-aggregated.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.models.processing import describe_processing
from interp_steer.steering.activations import (  # noqa: F401  (the activation reader, re-exported for methods)
    READ_POSITIONS,
    ContrastiveActivations,
    ReadPosition,
    activation_norms,
    collect_contrastive_activations,
    default_read_position,
    norm_relative,
)
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.reference import with_reference_points
from interp_steer.steering.vector import Provenance, SteeringVector


def mean_difference(activations: ContrastiveActivations, hook_names: Sequence[str] | None = None) -> dict[str, Tensor]:
    """CAA aggregation: mean over pairs of (positive − negative), per hook name."""
    names = list(hook_names or activations.hook_names)
    return {n: activations.differences(n).mean(0) for n in names}


def extract_caa(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    layers: Sequence[int | str],
    *,
    read_position: str | None = None,  # one of READ_POSITIONS, checked inside
    batch_size: int = 16,
    progress: bool = True,
    dataset: str | None = None,
) -> SteeringVector:
    """A CAA steering vector with one direction per requested layer (see :func:`collect_contrastive_activations`).

    The negatives' mean activation at each hook is recorded as the vector's reference point (for the ``ace``
    operator, :mod:`interp_steer.steering.reference`)."""
    acts = collect_contrastive_activations(model, pairs, layers, read_position=read_position, batch_size=batch_size, progress=progress)
    vector = SteeringVector(mean_difference(acts), caa_provenance(model, pairs, acts, dataset))
    return with_reference_points(vector, {n: acts.negative[n].mean(0) for n in acts.hook_names}, "negative_mean")


def caa_provenance(model: HookedTransformer, pairs: Sequence[ContrastivePair], acts: ContrastiveActivations,
                   dataset: str | None) -> Provenance:
    """CAA's provenance of a vector made from ``acts`` (other activation methods start from it)."""
    return Provenance(
        model=model.cfg.model_name,
        method="caa",
        dataset=dataset or ",".join(sorted({p.dataset for p in pairs})),
        n_pairs=len(pairs),
        read_position=acts.read_position,
        layers=[layer_of(n) for n in acts.hook_names],
        model_processing=describe_processing(model),
        extra={"variants": sorted({p.variant for p in pairs})},
    )

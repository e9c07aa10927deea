"""Reference propensity implementation: one unpadded forward per (sample, multiplier), scalar multiplier.

Deliberately simple and slow; the tests check :func:`~interp_steer.evaluation.propensity.compute_propensities`
(batched, left-padded, per-row multipliers) against it. It reads the full logits of the model's own forward
(its final norm, unembedding and soft cap) and applies the metric rules of :mod:`interp_steer.scoring`
(:func:`~interp_steer.scoring.letter_scores_from_logits`, :func:`~interp_steer.scoring.target_logprobs`), so it
does not share the batched engines' gathered-position unembedding. It has the same signature, so it can also
stand in as the engine of a work unit.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.evaluation.propensity import (
    RawScore,
    _check_inputs,
    propensity_frame,
    scoring_rows,
    vector_label,
)
from interp_steer.scoring import letter_scores_from_logits, target_logprobs
from interp_steer.steering.apply import steer
from interp_steer.steering.vector import SteeringVector


@torch.inference_mode()
def naive_propensities(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    vector: SteeringVector,
    multipliers: Sequence[float],
    *,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = False,
    vector_name: str | None = None,
) -> pd.DataFrame:
    """Same table as ``compute_propensities``, computed with full-logit forwards of single sequences."""
    _check_inputs(model, pairs, multipliers, max(batch_size, 1))
    vector = vector.select()
    vector.check_fits(model)
    device = device or model.cfg.device
    scores: dict[tuple[int, str, float], RawScore] = {}
    for row in scoring_rows(model.tokenizer, pairs, n_ctx=model.cfg.n_ctx):
        tokens = torch.tensor([row.ids], device=device)
        for m in multipliers:
            with steer(model, vector, multiplier=float(m), positions=torch.tensor([row.steer_from])):
                logits = model(tokens)[0]  # the model's own final norm, unembedding and soft cap
            score: RawScore
            if row.letters is not None:
                (score,) = letter_scores_from_logits(logits[-1:], torch.tensor([row.letters])).per_row()
            else:
                first = int(row.score_from or 0)  # free-text rows always have one
                score = float(target_logprobs(logits[first - 1: -1], tokens[0, first:]).sum())
            scores[(row.sample, row.side, float(m))] = score
    return propensity_frame(pairs, vector, multipliers, scores, vector_name or vector_label(vector))

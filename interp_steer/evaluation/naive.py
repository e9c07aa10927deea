"""Reference propensity implementation: one unpadded forward per (sample, multiplier), scalar multiplier.

Deliberately simple and slow; the tests check :func:`~interp_steer.evaluation.propensity.compute_propensities`
(batched, left-padded, per-row multipliers) against it. It has the same signature, so it can also stand in as
the engine of a work unit.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.evaluation.propensity import _check_inputs, propensity_frame, scoring_rows, single_hook, vector_label
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
    vector = single_hook(vector)
    vector.check_fits(model)
    device = device or model.cfg.device
    scores: dict[tuple[int, str, float], dict] = {}
    for row in scoring_rows(model.tokenizer, pairs):
        tokens = torch.tensor([row.ids], device=device)
        for m in multipliers:
            with steer(model, vector, multiplier=float(m), positions=torch.tensor(row.steer_from)):
                logits = model(tokens)[0].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            if row.letters is not None:
                pos, neg = row.letters
                lp_pos, lp_neg = logprobs[-1, pos], logprobs[-1, neg]
                scores[(row.sample, row.side, float(m))] = {
                    "logit_diff": float(logits[-1, pos] - logits[-1, neg]),
                    "logprob_diff": float(lp_pos - lp_neg),
                    "pos_prob": float(lp_pos.exp() / (lp_pos.exp() + lp_neg.exp())),
                }
            else:
                total = sum(float(logprobs[t - 1, row.ids[t]]) for t in range(row.score_from, len(row.ids)))
                scores[(row.sample, row.side, float(m))] = {"logprob": total}
    return propensity_frame(pairs, vector, multipliers, scores, vector_name or vector_label(vector))

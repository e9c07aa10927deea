"""Direct effect of a steering vector on the answer logits, and a logit-lens view of steered vs clean runs.

Direct effect (the path vector → unembedding, skipping every later layer), with ``Δu = W_U[:, pos] − W_U[:, neg]``
for the two answer tokens (see :func:`~interp_steer.analysis.readout.answer_readout`):

* ``direct_raw = v · Δu`` — ignores the final norm;
* ``direct_normed = (w_ln ⊙ v̄ / s) · Δu`` — through ``ln_final`` linearised at the clean run's answer position:
  ``s`` is its scale (``ln_final.hook_scale``), ``w_ln`` its weight and ``v̄`` the vector (mean-centred for
  LayerNorm). This is the logit-diff change per unit multiplier if only the unembedding saw the vector.

``total_per_unit`` = (steered − clean logit diff at the answer position) / multiplier, for comparison: the
difference is what the layers after the steered one add (or remove).

The logit lens reads each layer's ``resid_post`` at the answer position through ``ln_final`` + ``W_U`` (with
that vector's own norm scale), in the clean and the steered run.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.analysis.readout import clean_and_steered_caches
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.scoring import answer_letter_scores
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import SteeringVector


def unembed_difference(model: HookedTransformer, positive_token: int, negative_token: int) -> Float[Tensor, "d_model"]:
    """``W_U[:, pos] − W_U[:, neg]``: the residual direction that raises the positive answer over the negative."""
    return (model.W_U[:, positive_token] - model.W_U[:, negative_token]).float()


def _through_final_norm(model: HookedTransformer, direction: Float[Tensor, "d_model"], scale: float) -> Float[Tensor, "d_model"]:
    """The direction as ``ln_final`` maps it linearly at a point with norm scale ``scale``."""
    if model.cfg.normalization_type is None:
        return direction
    out = direction
    if model.cfg.normalization_type in ("LN", "LNPre"):
        out = out - out.mean()
    out = out / scale
    weight = getattr(model.ln_final, "w", None)
    return out * weight.float() if weight is not None else out


@torch.inference_mode()
def direct_effects(
    model: HookedTransformer,
    vector: SteeringVector,
    pairs: Sequence[ContrastivePair],
    *,
    multiplier: float = 1.0,
) -> pd.DataFrame:
    """One row per pair: ``direct_raw``, ``direct_normed``, ``final_scale``, ``total_per_unit`` (see module doc)."""
    if multiplier == 0:
        raise ConfigError("direct_effects: multiplier must be non-zero (the total effect is divided by it)")
    vector = vector.select()
    vector.check_fits(model)
    hook_name = vector.hook_names[0]
    direction = vector.directions[hook_name].to(model.cfg.device).float()
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    names = {last, "ln_final.hook_scale"}
    records = []
    for pair in pairs:
        readout, clean, steered = clean_and_steered_caches(model, vector, pair, multiplier, names)
        delta_u = unembed_difference(model, readout.positive_token, readout.negative_token)
        scale = float(clean["ln_final.hook_scale"][0, -1].reshape(-1)[0]) if model.cfg.normalization_type else 1.0
        letters = torch.tensor([[readout.positive_token, readout.negative_token]])
        diffs = [float(answer_letter_scores(model, cache[last][0, -1:], letters).logit_diff[0]) for cache in (clean, steered)]
        records.append({
            "sample_id": pair.id, "dataset": pair.dataset, "hook_name": hook_name, "layer": layer_of(hook_name),
            "multiplier": float(multiplier),
            "direct_raw": float(direction @ delta_u),
            "direct_normed": float(_through_final_norm(model, direction, scale) @ delta_u),
            "final_scale": scale,
            "logit_diff_clean": diffs[0], "logit_diff_steered": diffs[1],
            "total_per_unit": (diffs[1] - diffs[0]) / float(multiplier),
        })
    return pd.DataFrame.from_records(records)


@torch.inference_mode()
def logit_lens(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    *,
    multiplier: float = 1.0,
) -> pd.DataFrame:
    """Answer logit diff read from every layer's ``resid_post`` (clean and steered); columns
    ``sample_id, layer, condition, logit_diff``, plus rows ``condition="steered − clean"``."""
    vector = vector.select()
    vector.check_fits(model)
    names = {f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)}
    readout, clean, steered = clean_and_steered_caches(model, vector, pair, multiplier, names)
    letters = torch.tensor([[readout.positive_token, readout.negative_token]])
    records: list[dict] = []
    for layer in range(model.cfg.n_layers):
        name = f"blocks.{layer}.hook_resid_post"
        values = {}
        for condition, cache in (("clean", clean), ("steered", steered)):
            values[condition] = float(answer_letter_scores(model, cache[name][0, -1:], letters).logit_diff[0])
        values["steered − clean"] = values["steered"] - values["clean"]
        records.extend({"sample_id": pair.id, "layer": layer, "condition": c, "logit_diff": v} for c, v in values.items())
    return pd.DataFrame.from_records(records)

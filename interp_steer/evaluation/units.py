"""Multiplier units: raw, or relative to the mean residual norm at the layer.

``units="raw"``: the added delta is ``m × v`` (the vector as extracted). ``units="norm"``: the vector is rescaled to
the layer's mean residual norm ``r`` (:func:`mean_residual_norm`), so the delta is ``m × r × v / ‖v‖`` and ``m = 1``
moves the residual by its typical length. Every table records ``units``, ``reference_norm`` (``r``, NaN for raw),
``vector_norm`` (``‖v‖``) and ``raw_multiplier`` (the factor on the unscaled ``v``: ``m`` for raw,
``m · r / ‖v‖`` for norm), so numbers in different units can be put side by side.

The reference norm is measured on the neutral corpus (:mod:`interp_steer.data.neutral`): the mean L2 norm of
``blocks.L.hook_resid_post`` over every token except each passage's first (position 0 is an attention sink
whose residual is many times longer than the rest). It depends on the model and layer only, not on the data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from interp_steer.data.tokenization import left_pad, pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.steering.activations import norm_relative
from interp_steer.steering.vector import SteeringVector

Units = Literal["raw", "norm"]
UNITS = ("raw", "norm")
UNIT_COLUMNS = ["units", "reference_norm", "vector_norm", "raw_multiplier"]


def check_units(units: str) -> None:
    """A one-line ConfigError naming ``--units`` unless ``units`` is ``raw`` or ``norm``."""
    if units not in UNITS:
        raise ConfigError(f"--units {units!r}: use 'raw' or 'norm'")


@torch.inference_mode()
def mean_residual_norm(model: HookedTransformer, hook_names: Sequence[str], token_ids: Sequence[Sequence[int]],
                       *, batch_size: int = 16) -> dict[str, float]:
    """Mean L2 norm of the activations at ``hook_names`` over all tokens of ``token_ids`` but each row's first."""
    if not token_ids or all(len(t) < 2 for t in token_ids):
        raise ConfigError("mean_residual_norm needs token sequences of at least two tokens")
    names = list(hook_names)
    totals = {n: 0.0 for n in names}
    count = 0
    pad = pad_token_id(model.tokenizer)
    stop = max(int(n.split(".")[1]) for n in names) + 1
    for lo in range(0, len(token_ids), batch_size):
        batch = left_pad(token_ids[lo:lo + batch_size], pad).to(model.cfg.device)
        _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask,
                                        names_filter=lambda n: n in names, stop_at_layer=min(stop, model.cfg.n_layers))
        mask = batch.attention_mask.bool().clone()
        mask[torch.arange(mask.shape[0]), batch.offsets] = False  # each row's first real token
        for n in names:
            totals[n] += float(cache[n][mask].double().norm(dim=-1).sum())
        count += int(mask.sum())
    return {n: totals[n] / count for n in names}


@dataclass(frozen=True)
class ScaledVector:
    """A vector in the chosen units: ``vector`` is what to steer with (rescaled for ``units="norm"``),
    ``reference_norm`` the layer's mean residual norm (NaN for raw), ``vector_norm`` the original ``‖v‖``."""

    vector: SteeringVector
    units: str
    reference_norm: float
    vector_norm: float

    def raw_multiplier(self, multiplier: float) -> float:
        """The factor on the original vector that ``multiplier`` in these units amounts to."""
        if self.units == "raw":
            return float(multiplier)
        return float(multiplier) * self.reference_norm / self.vector_norm

    def columns(self, multipliers: pd.Series) -> dict[str, object]:
        """The :data:`UNIT_COLUMNS` for a table's ``multiplier`` column."""
        return {"units": self.units, "reference_norm": self.reference_norm, "vector_norm": self.vector_norm,
                "raw_multiplier": multipliers.astype(float).map(self.raw_multiplier)}


def in_units(vector: SteeringVector, units: str, reference_norm: float | None = None) -> ScaledVector:
    """``vector`` (one hook) expressed in ``units``; ``reference_norm`` is required for ``"norm"``."""
    check_units(units)
    vector = vector.select()
    (hook,) = vector.hook_names
    norm = float(vector.directions[hook].double().norm())
    if units == "raw":
        return ScaledVector(vector, "raw", float("nan"), norm)
    if reference_norm is None or not reference_norm > 0:
        raise ConfigError(f"units='norm' needs a positive reference norm, got {reference_norm!r}")
    if norm == 0:
        raise ConfigError(f"the vector at {hook} is zero; it cannot be rescaled to norm units")
    return ScaledVector(norm_relative(vector, {hook: float(reference_norm)}), "norm", float(reference_norm), norm)


def with_units(table: pd.DataFrame, scaled: ScaledVector) -> pd.DataFrame:
    """``table`` with the :data:`UNIT_COLUMNS` filled in from its ``multiplier`` column."""
    if "multiplier" not in table.columns:
        raise ConfigError("with_units: the table has no 'multiplier' column")
    return table.assign(**scaled.columns(table["multiplier"]))

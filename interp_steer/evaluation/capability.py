"""Capability under steering: accuracy on CAA's MMLU and TruthfulQA A/B sets, letter-balanced, at each multiplier.

An item is answered correctly when the steered model prefers the correct answer letter (``logit_diff > 0`` in
:func:`~interp_steer.evaluation.side_effects.answer_scores`; the positive letter of these sets is the correct one).
Multiplier 0 is the unsteered accuracy; pass it to have it beside the steered one.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from transformer_lens import HookedTransformer

from interp_steer.data.capability_sets import letter_balanced
from interp_steer.data.registry import load_dataset
from interp_steer.errors import ConfigError
from interp_steer.evaluation.side_effects import answer_scores
from interp_steer.stats.intervals import mean_interval
from interp_steer.steering.vector import SteeringVector

CAPABILITY_SETS = ("caa-test:mmlu", "caa-test:truthfulqa")


def capability_table(model: HookedTransformer, vector: SteeringVector | None, multipliers: Sequence[float], *,
                     n: int = 100, datasets: Sequence[str] = CAPABILITY_SETS, data_dir=None, batch_size: int = 16,
                     n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per (capability set, multiplier): ``accuracy`` and answer-format mass ``format_mass`` on ``n``
    letter-balanced items (half with (A) correct), each with a bootstrap 95% interval over items (``_lo``/``_hi``)."""
    if not multipliers:
        raise ConfigError("capability_table: no multipliers (include 0 for the unsteered accuracy)")
    records = []
    for spec in datasets:
        pairs = letter_balanced(load_dataset(spec, data_dir=data_dir), n)
        scores = answer_scores(model, pairs, vector, [float(m) for m in multipliers], batch_size=batch_size)
        for m, group in scores.groupby("multiplier"):
            rec = {"dataset": spec, "multiplier": float(m), "n_items": len(group)}
            for name, column in (("accuracy", "correct"), ("format_mass", "format_mass")):
                rec.update(zip((name, f"{name}_lo", f"{name}_hi"), mean_interval(group[column], n_boot=n_boot, seed=seed)))
            records.append(rec)
    return pd.DataFrame.from_records(records)

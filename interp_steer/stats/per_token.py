"""Per-token free-text propensity.

The study's free-text propensity is ``log p(positive completion) − log p(negative completion)``, each a *sum* over
the completion's tokens, so a pair whose positive statement is longer starts lower and its slope is in summed nats.
The per-token propensity divides each side by its own completion length::

    per_token = pos_logprob / n_pos_tokens − neg_logprob / n_neg_tokens     (nats per token)

(the difference of the mean log-prob per completion token; an A/B propensity is one answer letter, so its per-token
value is the propensity itself). The lengths are the completion token counts the scorer uses
(:func:`~interp_steer.data.tokenization.encode_pair`'s ``positive_ids`` / ``negative_ids``).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError

LENGTH_COLUMNS = ["dataset", "sample_id", "n_pos_tokens", "n_neg_tokens"]


def completion_lengths(tokenizer, pairs: Iterable, dataset: str | None = None) -> pd.DataFrame:
    """One row per free-text pair: ``dataset`` (``dataset`` or the pair's own), ``sample_id`` (the pair id the
    propensity tables use) and the token counts of its positive / negative completion."""
    from interp_steer.data.tokenization import encode_pair

    rows = []
    for pair in pairs:
        if pair.kind != "free_text":
            continue
        enc = encode_pair(tokenizer, pair)
        rows.append({"dataset": dataset or pair.dataset, "sample_id": pair.id,
                     "n_pos_tokens": len(enc.positive_ids), "n_neg_tokens": len(enc.negative_ids)})
    return pd.DataFrame(rows, columns=LENGTH_COLUMNS)


def per_token_propensities(propensities: pd.DataFrame, lengths: pd.DataFrame) -> pd.DataFrame:
    """``propensities`` (free-text rows with ``pos_logprob`` / ``neg_logprob``) with ``n_pos_tokens``,
    ``n_neg_tokens`` and ``per_token_propensity`` added. A sample without a length row is a ConfigError naming it
    (the lengths must come from the same split as the propensities)."""
    need = [c for c in ("dataset", "sample_id", "pos_logprob", "neg_logprob") if c not in propensities.columns]
    if need:
        raise ConfigError(f"per_token_propensities: the propensity table has no column(s) {need}")
    merged = propensities.merge(lengths[LENGTH_COLUMNS], on=["dataset", "sample_id"], how="left")
    missing = merged[merged["n_pos_tokens"].isna()]
    if not missing.empty:
        raise ConfigError(f"per_token_propensities: no completion length for {missing['sample_id'].nunique()} "
                          f"sample(s), e.g. {missing['sample_id'].iloc[0]!r}; recompute the lengths from the study's split")
    pos = merged["pos_logprob"].to_numpy(dtype=float) / merged["n_pos_tokens"].to_numpy(dtype=float)
    neg = merged["neg_logprob"].to_numpy(dtype=float) / merged["n_neg_tokens"].to_numpy(dtype=float)
    return merged.assign(per_token_propensity=pos - neg)


def length_share_longer(lengths: pd.DataFrame) -> float:
    """Share of pairs whose positive completion has more tokens than the negative one."""
    if lengths.empty:
        return float("nan")
    return float(np.mean(lengths["n_pos_tokens"].to_numpy() > lengths["n_neg_tokens"].to_numpy()))

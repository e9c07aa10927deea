"""Hand-written reference for completion-position patching (intervention (c) of issue 26): steering and patching
by plain TransformerLens hooks on full, unpadded ``run_with_cache`` / ``run_with_hooks`` forwards of each sequence,
slopes by ``numpy.polyfit``. Shared by the tiny-model test and the model-family table."""

from __future__ import annotations

import numpy as np
import torch

_CACHES: dict = {}


def _add(direction, row, m: float):
    def add(act, hook):
        act = act.clone()
        act[0, row.steer_from:] += m * direction.to(act.dtype)
        return act

    return add


@torch.no_grad()
def _caches(model, direction, layer: int, row, m: float):
    """Unsteered and steered run_with_cache of one unpadded sequence (memoised per sequence and multiplier)."""
    key = (id(model), layer, row.ids, m, float(direction.norm()))
    if key not in _CACHES:
        tokens = torch.tensor([row.ids])
        names = [f"blocks.{x}.hook_resid_post" for x in range(model.cfg.n_layers)]
        _, clean = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        with model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_post", _add(direction, row, m))]):
            _, steered = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        _CACHES[key] = clean, steered
    return _CACHES[key]


@torch.no_grad()
def reference_logprob(model, direction, layer: int, row, m: float, patch, side: str) -> float:
    """Summed completion log-prob of one sequence (a ``sample_sequences`` row), steering ``m × direction`` at
    ``blocks.{layer}`` from ``row.steer_from`` on and applying ``patch`` (a ``CompletionPatch`` or ``None``)."""
    clean, steered = _caches(model, direction, layer, row, m)
    steering = [(f"blocks.{layer}.hook_resid_post", _add(direction, row, m))]
    hooks = [] if patch is not None and patch.into == "clean" else steering
    if patch is not None and side in patch.sides:
        first = row.steer_from + (1 if patch.region == "completion" else 0)
        source = clean if patch.into == "steered" else steered
        layers = range(layer, model.cfg.n_layers) if patch.layers is None else patch.layers
        for x in layers:
            name = f"blocks.{x}.hook_resid_post"

            def overwrite(act, hook, name=name):
                act = act.clone()
                act[0, first:] = source[name][0, first:]
                return act

            hooks.append((name, overwrite))
    logits = model.run_with_hooks(torch.tensor([row.ids]), fwd_hooks=hooks)
    lp = torch.log_softmax(logits[0].double(), dim=-1)
    return sum(float(lp[t - 1, row.ids[t]]) for t in range(row.score_from, len(row.ids)))


def reference_slopes(model, direction, layer: int, pair, patch, multipliers) -> tuple[float, float, float]:
    """``(slope, s_pos, s_neg)`` of one pair under ``patch``, by hand (see :func:`reference_logprob`)."""
    from interp_steer.analysis.readout import sample_sequences

    rows = sample_sequences(model.tokenizer, pair).rows
    values = np.array([[reference_logprob(model, direction, layer, r, m, patch, side)
                        for r, side in zip(rows, ("pos", "neg"))] for m in multipliers])
    s_pos, s_neg = (np.polyfit(multipliers, values[:, k], 1)[0] for k in (0, 1))
    return s_pos - s_neg, s_pos, s_neg

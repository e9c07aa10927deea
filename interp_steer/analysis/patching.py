"""Activation patching of the steering effect: which sites carry it, per layer × position and per head.

For one sample, the *clean* run is unsteered and the *steered* run adds ``multiplier × vector`` from the last
prompt token on (the propensity engine's convention). Patching copies a site's activation from the steered run
into the clean run; its share of the steering effect is

    share = (metric(patched) − metric(clean)) / (metric(steered) − metric(clean)),

with the metric of :mod:`interp_steer.analysis.readout` (A/B logit diff, or free-text summed log-prob diff).
Share 1 means the site alone restores the full effect. For anti-steerable samples the denominator is negative,
so the share still says how much of the (wrong-way) effect a site carries.

Sites are ``resid_pre``, ``attn_out`` and ``mlp_out`` per layer × position, and ``attn.hook_z`` per layer ×
head (all steered positions at once). Positions before the steering start are not patched: causal masking
makes their activations identical in both runs, so their share is exactly 0. Patching is batched: each batch row
is the clean sequence with a different site patched, one forward per chunk of sites.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.analysis.readout import SampleSequences, combine_sides, sample_sequences, sequence_scores
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.steering.apply import steer
from interp_steer.steering.vector import SteeringVector

COMPONENT_HOOKS = {"resid_pre": "hook_resid_pre", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out", "head": "attn.hook_z"}
"""Patchable components and their TransformerLens hook names inside ``blocks.L``."""

PATCHING_COLUMNS = [
    "sample_id", "dataset", "kind", "multiplier", "component", "layer", "position", "token", "head",
    "metric_clean", "metric_steered", "metric_patched", "effect", "share",
]
"""Columns of :func:`steering_patching` tables (``position`` −1 and ``token`` "*" for head sites: all steered positions)."""


@dataclass(frozen=True)
class PatchSite:
    """One patch: ``hook_name`` at ``positions`` (indices from each sequence's first real token), optionally one head.

    Free-text samples have two sequences; a site patches its positions in both (where they exist).
    Empty ``positions`` patch nothing.
    """

    hook_name: str
    positions: tuple[int, ...]
    head: int | None = None


@dataclass(frozen=True)
class PatchResult:
    """Metrics of one sample: clean, steered, and one patched value per site (same order as the sites)."""

    metric_clean: float
    metric_steered: float
    metric_patched: np.ndarray

    @property
    def effect(self) -> np.ndarray:
        return self.metric_patched - self.metric_clean

    @property
    def share(self) -> np.ndarray:
        total = self.metric_steered - self.metric_clean
        if abs(total) < 1e-9:
            return np.full_like(self.metric_patched, np.nan)
        return self.effect / total


def _check_sites(model: HookedTransformer, sites: Sequence[PatchSite], seqs: SampleSequences) -> None:
    for site in sites:
        if site.hook_name not in model.hook_dict:
            raise ConfigError(f"patch site hook {site.hook_name!r} does not exist on {model.cfg.model_name}")
        bad = [p for p in site.positions if not 0 <= p < seqs.max_len]
        if bad:
            raise ConfigError(f"patch site {site.hook_name}: positions {bad} outside the sequence (length {seqs.max_len})")
        if site.head is not None and not (site.hook_name.endswith("hook_z") and 0 <= site.head < model.cfg.n_heads):
            raise ConfigError(f"patch site {site.hook_name}: head={site.head} needs an attn.hook_z site and 0 ≤ head < {model.cfg.n_heads}")


def _patch_hook(dest_rows: Tensor, dest_pos: Tensor, src_rows: Tensor, src_pos: Tensor, heads: Tensor | None, source: Tensor):
    def patch(act: Tensor, hook) -> Tensor:
        act = act.clone()
        if heads is None:
            act[dest_rows, dest_pos] = source[src_rows, src_pos].to(act.dtype)
        else:
            act[dest_rows, dest_pos, heads] = source[src_rows, src_pos, heads].to(act.dtype)
        return act

    return patch


@torch.inference_mode()
def patch_sites(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    sites: Sequence[PatchSite],
    *,
    multiplier: float = 1.0,
    batch_size: int = 64,
) -> PatchResult:
    """Metric of ``pair`` with each site patched from the steered run into the clean run (one site per batch row)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    vector = vector.select()
    vector.check_fits(model)
    vector = vector.to(model.cfg.device, dtype=model.cfg.dtype)
    seqs = sample_sequences(model.tokenizer, pair)
    _check_sites(model, sites, seqs)
    pad, device, n_sides = pad_token_id(model.tokenizer), model.cfg.device, len(seqs.rows)
    base = seqs.batch(1, pad).to(device)
    start = base.absolute([seqs.steer_from] * n_sides)
    needed = sorted({s.hook_name for s in sites})
    stop = model.cfg.n_layers
    clean_final: Tensor = model(base.tokens, attention_mask=base.attention_mask, stop_at_layer=stop)
    with steer(model, vector, multiplier=float(multiplier), positions=start):
        steered_final, cache = model.run_with_cache(
            base.tokens, attention_mask=base.attention_mask, stop_at_layer=stop, names_filter=lambda n: n in needed
        )
    metric_clean = float(combine_sides(sequence_scores(model, clean_final, base, seqs.rows), n_sides)[0])
    metric_steered = float(combine_sides(sequence_scores(model, steered_final, base, seqs.rows), n_sides)[0])  # type: ignore[arg-type]

    patched = np.empty(len(sites), dtype=np.float64)
    per_chunk = max(1, batch_size // n_sides)
    for lo in range(0, len(sites), per_chunk):
        chunk = sites[lo:lo + per_chunk]
        batch = seqs.batch(len(chunk), pad).to(device)
        entries: dict[str, list[list[int]]] = defaultdict(lambda: [[], [], [], [], []])
        for copy, site in enumerate(chunk):
            for side, row in enumerate(seqs.rows):
                dest_row = copy * n_sides + side
                for position in site.positions:
                    if position >= len(row.ids):
                        continue
                    e = entries[site.hook_name]
                    e[0].append(dest_row)
                    e[1].append(int(batch.offsets[dest_row]) + position)
                    e[2].append(side)
                    e[3].append(int(base.offsets[side]) + position)
                    e[4].append(-1 if site.head is None else site.head)
        hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = []
        for name, (dr, dp, sr, sp, hd) in entries.items():
            index = [torch.tensor(xs, dtype=torch.long, device=device) for xs in (dr, dp, sr, sp, hd)]
            heads = index[4] if name.endswith("hook_z") else None
            if heads is not None and bool((heads < 0).any()):
                raise ConfigError(f"patch site {name}: attn.hook_z sites need a head")
            hooks.append((name, _patch_hook(index[0], index[1], index[2], index[3], heads, cache[name])))
        with model.hooks(fwd_hooks=hooks):
            final = model(batch.tokens, attention_mask=batch.attention_mask, stop_at_layer=stop)
        scores = sequence_scores(model, final, batch, list(seqs.rows) * len(chunk))
        patched[lo:lo + len(chunk)] = combine_sides(scores, n_sides).numpy()
    return PatchResult(metric_clean, metric_steered, patched)


def scan_sites(
    model: HookedTransformer,
    seqs: SampleSequences,
    components: Sequence[str] = ("resid_pre", "attn_out", "mlp_out", "head"),
    layers: Sequence[int] | None = None,
) -> list[tuple[str, int, PatchSite]]:
    """``(component, layer, site)`` for every layer × steered position (and layer × head for ``"head"``)."""
    unknown = [c for c in components if c not in COMPONENT_HOOKS]
    if unknown:
        raise ConfigError(f"components {unknown} unknown; choose from {sorted(COMPONENT_HOOKS)}")
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    steered_positions = tuple(range(seqs.steer_from, seqs.max_len))
    out: list[tuple[str, int, PatchSite]] = []
    for component in components:
        for layer in layers:
            name = f"blocks.{layer}.{COMPONENT_HOOKS[component]}"
            if component == "head":
                out.extend((component, layer, PatchSite(name, steered_positions, h)) for h in range(model.cfg.n_heads))
            else:
                out.extend((component, layer, PatchSite(name, (p,))) for p in steered_positions)
    return out


def steering_patching(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    *,
    multiplier: float = 1.0,
    components: Sequence[str] = ("resid_pre", "attn_out", "mlp_out", "head"),
    layers: Sequence[int] | None = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Patching scan of one sample as a tidy table (:data:`PATCHING_COLUMNS`), one row per site."""
    seqs = sample_sequences(model.tokenizer, pair)
    scanned = scan_sites(model, seqs, components, layers)
    result = patch_sites(model, vector, pair, [s for _, _, s in scanned], multiplier=multiplier, batch_size=batch_size)
    labels = seqs.token_labels(model.tokenizer)
    records = []
    for (component, layer, site), patched, effect, share in zip(scanned, result.metric_patched, result.effect, result.share):
        single = site.head is None
        records.append({
            "sample_id": pair.id, "dataset": pair.dataset, "kind": pair.kind, "multiplier": float(multiplier),
            "component": component, "layer": layer,
            "position": site.positions[0] if single else -1,
            "token": labels[site.positions[0]] if single else "*",
            "head": pd.NA if single else site.head,
            "metric_clean": result.metric_clean, "metric_steered": result.metric_steered,
            "metric_patched": float(patched), "effect": float(effect), "share": float(share),
        })
    frame = pd.DataFrame.from_records(records, columns=PATCHING_COLUMNS)
    frame["head"] = frame["head"].astype("Int64")
    return frame


def compare_samples(
    model: HookedTransformer,
    vector: SteeringVector,
    steerable_pair: ContrastivePair,
    anti_pair: ContrastivePair,
    **kwargs,
) -> pd.DataFrame:
    """:func:`steering_patching` of a steerable and an anti-steerable sample, stacked with a ``role`` column."""
    frames = []
    for role, pair in (("steerable", steerable_pair), ("anti-steerable", anti_pair)):
        frames.append(steering_patching(model, vector, pair, **kwargs).assign(role=role))
    return pd.concat(frames, ignore_index=True)


def position_summary(patching: pd.DataFrame) -> pd.DataFrame:
    """Per role/sample, component and layer: the summed share over positions (heads: over heads)."""
    keys = [k for k in ("role", "sample_id") if k in patching.columns] + ["component", "layer"]
    return patching.groupby(keys, sort=False)["share"].sum().reset_index()

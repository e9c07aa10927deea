"""Activation patching of the steering effect that reuses the unsteered prefix's key/value cache.

Steering starts at the last prompt token (``steer_from``), so every position before it has the same activations
in the clean and the steered run. :class:`SuffixRunner` runs that prefix once into a
:class:`~interp_steer.evaluation.prefix_cache.PrefixCache` and then runs only the *suffix* (last prompt token +
completion, or + the A/B answer prefix) for the clean run, the steered run and every patched run. The numbers are
those of :func:`interp_steer.analysis.patching.patch_sites` (full-sequence reruns; equal to ~1e-5, see the tests):
the same metric (:mod:`interp_steer.analysis.readout`: A/B logit diff, or free-text summed completion log-prob of
the positive minus the negative completion, scored with :func:`interp_steer.scoring.completion_logprobs`), the
same sites (:class:`~interp_steer.analysis.patching.PatchSite`, positions counted from the first real token).

:func:`prefix_patching` is the tidy scan table of one sample; it adds a ``region`` column: ``prompt`` (the last
prompt token, the only prompt position that steering changes) or ``completion`` (the scored tokens; for A/B the
answer prefix), and patches each head separately over the prompt region, the completion region and both.
:func:`patching_speedup` times both implementations on the same sites.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from interp_steer.analysis.patching import (
    COMPONENT_HOOKS,
    PATCHING_COLUMNS,
    PatchResult,
    PatchSite,
    _check_sites,
    _patch_hook,
    patch_sites,
)
from interp_steer.analysis.readout import SampleSequences, sample_sequences
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.evaluation.prefix_cache import build_prefix_cache, right_pad
from interp_steer.scoring import answer_letter_scores, completion_logprobs
from interp_steer.steering.apply import steer
from interp_steer.steering.vector import SteeringVector

PREFIX_PATCHING_COLUMNS = [*PATCHING_COLUMNS, "region"]
"""Columns of :func:`prefix_patching` tables: :data:`~interp_steer.analysis.patching.PATCHING_COLUMNS` + ``region``."""

REGIONS = ("prompt", "completion")


class SuffixRunner:
    """One sample's prefix cache and suffix batch; runs the suffix clean, steered or patched.

    ``copies`` repetitions of the sample's one (A/B) or two (free text) suffixes form a batch (row
    ``c * n_sides + s``); the prefix (identical for both sides) is computed once and shared by every row.
    """

    def __init__(self, model: HookedTransformer, vector: SteeringVector, pair: ContrastivePair, multiplier: float) -> None:
        vector = vector.select()
        vector.check_fits(model)
        self.model, self.multiplier = model, float(multiplier)
        self.vector = vector.to(model.cfg.device, dtype=model.cfg.dtype)
        self.seqs: SampleSequences = sample_sequences(model.tokenizer, pair)
        self.steer_from = self.seqs.steer_from
        self.n_sides = len(self.seqs.rows)
        prefixes = {r.ids[: self.steer_from] for r in self.seqs.rows}
        if len(prefixes) != 1:
            raise ConfigError(f"pair {pair.id!r}: its sequences do not share the prompt prefix")
        self.pad, self.device = pad_token_id(model.tokenizer), str(model.cfg.device)
        self.cache = build_prefix_cache(model, [self.seqs.rows[0].ids[: self.steer_from]], self.pad, self.device)
        self.suffixes = [r.ids[self.steer_from:] for r in self.seqs.rows]

    def _batch(self, copies: int):
        suffix = right_pad(self.suffixes * copies, self.pad, self.device)
        index = torch.zeros(len(self.suffixes) * copies, dtype=torch.long, device=self.device)
        return suffix, self.cache.select(index)

    def row_scores(self, final: Tensor, suffix) -> Tensor:
        """Per batch row: the side's score (A/B logit diff, free text summed completion log-prob; float64, CPU)."""
        rows = list(self.seqs.rows) * (final.shape[0] // self.n_sides)
        lengths = suffix.lengths
        if rows[0].letters is not None:
            letters = torch.tensor([r.letters for r in rows], device=final.device)
            last = final[torch.arange(final.shape[0], device=final.device), lengths - 1]
            per_row = answer_letter_scores(self.model, last, letters).logit_diff
        else:
            width = suffix.tokens.shape[1]
            position = torch.arange(width, device=final.device)[None, :]
            mask = (position >= 1) & (position < lengths[:, None])
            per_row = completion_logprobs(self.model, final, suffix.tokens, mask).logprob
        return per_row.double().cpu()

    def scores(self, final: Tensor, suffix) -> Tensor:
        """Per copy: the sample's metric from the suffix batch's final residual (float64, CPU)."""
        grouped = self.row_scores(final, suffix).view(-1, self.n_sides)
        return grouped[:, 0] if self.n_sides == 1 else grouped[:, 0] - grouped[:, 1]

    @torch.inference_mode()
    def run_rows(
        self, copies: int = 1, *, steered: bool = False, multiplier: float | None = None,
        hooks: Sequence[tuple[str | Callable[..., Any], Callable[..., Any]]] = (), cache_names: Sequence[str] = (),
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Score per batch row (row ``c * n_sides + s``) and the suffix activations at ``cache_names``.

        ``hooks`` and the caching run *after* the steering hook at a shared hook point (they see, and may
        overwrite, the steered activation); ``multiplier`` overrides the runner's for this call."""
        suffix, kv = self._batch(copies)
        cached: dict[str, Tensor] = {}

        def keep(act: Tensor, hook) -> None:
            cached[hook.name] = act.detach()

        all_hooks = [*hooks, *[(name, keep) for name in cache_names]]
        kwargs = dict(attention_mask=suffix.attention_mask, past_kv_cache=kv, stop_at_layer=self.model.cfg.n_layers)
        with ExitStack() as stack:
            if steered:
                m = self.multiplier if multiplier is None else float(multiplier)
                stack.enter_context(steer(self.model, self.vector, multiplier=m, positions="all"))
            stack.enter_context(self.model.hooks(fwd_hooks=all_hooks))
            final = self.model(suffix.tokens, **kwargs)
        return self.row_scores(final, suffix), cached

    @torch.inference_mode()
    def run(
        self, copies: int = 1, *, steered: bool = False,
        hooks: Sequence[tuple[str | Callable[..., Any], Callable[..., Any]]] = (), cache_names: Sequence[str] = (),
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Metric per copy and the suffix activations at ``cache_names`` (batch rows = copies × sides)."""
        rows, cached = self.run_rows(copies, steered=steered, hooks=hooks, cache_names=cache_names)
        grouped = rows.view(-1, self.n_sides)
        return (grouped[:, 0] if self.n_sides == 1 else grouped[:, 0] - grouped[:, 1]), cached


@torch.inference_mode()
def prefix_patch_sites(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    sites: Sequence[PatchSite],
    *,
    multiplier: float = 1.0,
    batch_size: int = 64,
) -> PatchResult:
    """:func:`~interp_steer.analysis.patching.patch_sites` computed on the suffix only, over the shared prefix cache.

    Site positions before the steering start carry exactly no effect (causal masking); they are skipped."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    runner = SuffixRunner(model, vector, pair, multiplier)
    _check_sites(model, sites, runner.seqs)
    needed = sorted({s.hook_name for s in sites})
    clean, _ = runner.run()
    steered, source = runner.run(steered=True, cache_names=needed)
    patched = np.full(len(sites), float(clean[0]), dtype=np.float64)
    active = [i for i, s in enumerate(sites) if any(p >= runner.steer_from for p in s.positions)]
    per_chunk = max(1, batch_size // runner.n_sides)
    device = model.cfg.device
    for lo in range(0, len(active), per_chunk):
        chunk = active[lo:lo + per_chunk]
        entries: dict[str, list[list[int]]] = {}
        for copy, index in enumerate(chunk):
            site = sites[index]
            for side, suffix in enumerate(runner.suffixes):
                for position in site.positions:
                    p = position - runner.steer_from
                    if p < 0 or p >= len(suffix):
                        continue
                    e = entries.setdefault(site.hook_name, [[], [], [], []])
                    e[0].append(copy * runner.n_sides + side)
                    e[1].append(p)
                    e[2].append(side)
                    e[3].append(-1 if site.head is None else site.head)
        hooks: list[tuple[str | Callable[..., Any], Callable[..., Any]]] = []
        for name, (dest, pos, src, head) in entries.items():
            tensors = [torch.tensor(xs, dtype=torch.long, device=device) for xs in (dest, pos, src, head)]
            heads = tensors[3] if name.endswith("hook_z") else None
            if heads is not None and bool((heads < 0).any()):
                raise ConfigError(f"patch site {name}: attn.hook_z sites need a head")
            hooks.append((name, _patch_hook(tensors[0], tensors[1], tensors[2], tensors[1], heads, source[name])))
        metric, _ = runner.run(len(chunk), hooks=hooks)
        patched[chunk] = metric.numpy()
    return PatchResult(float(clean[0]), float(steered[0]), patched)


@dataclass(frozen=True)
class ScannedSite:
    """A site of a scan with its labels for the table."""

    component: str
    layer: int
    region: str
    site: PatchSite


def region_of(seqs: SampleSequences, position: int) -> str:
    """``prompt`` for positions before the first scored token (the last prompt token), else ``completion``."""
    first_scored = seqs.rows[0].score_from if seqs.rows[0].score_from is not None else seqs.steer_from + 1
    return "prompt" if position < first_scored else "completion"


def scan_sites_by_region(
    model: HookedTransformer,
    seqs: SampleSequences,
    components: Sequence[str] = ("resid_pre", "attn_out", "mlp_out", "head"),
    layers: Sequence[int] | None = None,
    head_regions: Sequence[str] = ("prompt", "completion", "all"),
) -> list[ScannedSite]:
    """Every layer × steered position for resid_pre / attn_out / mlp_out, and every layer × head × region
    (``head_regions``: prompt, completion and/or ``all``) for ``head``."""
    unknown = [c for c in components if c not in COMPONENT_HOOKS]
    if unknown:
        raise ConfigError(f"components {unknown} unknown; choose from {sorted(COMPONENT_HOOKS)}")
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    bad = [layer for layer in layers if not 0 <= layer < model.cfg.n_layers]
    if bad:
        raise ConfigError(f"layers {bad} out of range for a {model.cfg.n_layers}-layer model")
    steered = list(range(seqs.steer_from, seqs.max_len))
    by_region = {r: tuple(p for p in steered if region_of(seqs, p) == r) for r in REGIONS}
    by_region["all"] = tuple(steered)
    wrong = [r for r in head_regions if r not in by_region]
    if wrong:
        raise ConfigError(f"head_regions {wrong} unknown; choose from prompt, completion, all")
    out: list[ScannedSite] = []
    for component in components:
        for layer in layers:
            name = f"blocks.{layer}.{COMPONENT_HOOKS[component]}"
            if component == "head":
                for region in head_regions:
                    positions = by_region[region]
                    if positions:
                        out.extend(ScannedSite(component, layer, region, PatchSite(name, positions, h))
                                   for h in range(model.cfg.n_heads))
            else:
                out.extend(ScannedSite(component, layer, region_of(seqs, p), PatchSite(name, (p,))) for p in steered)
    return out


def prefix_patching(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    *,
    multiplier: float = 1.0,
    components: Sequence[str] = ("resid_pre", "attn_out", "mlp_out", "head"),
    layers: Sequence[int] | None = None,
    head_regions: Sequence[str] = ("prompt", "completion", "all"),
    batch_size: int = 64,
) -> pd.DataFrame:
    """Patching scan of one sample (prefix-cached) as a tidy table (:data:`PREFIX_PATCHING_COLUMNS`).

    Head rows have ``position`` −1 and ``token`` ``*``; their ``region`` is ``prompt``, ``completion`` or ``all``."""
    seqs = sample_sequences(model.tokenizer, pair)
    scanned = scan_sites_by_region(model, seqs, components, layers, head_regions)
    result = prefix_patch_sites(model, vector, pair, [s.site for s in scanned], multiplier=multiplier, batch_size=batch_size)
    labels = seqs.token_labels(model.tokenizer)
    records = []
    for entry, patched, effect, share in zip(scanned, result.metric_patched, result.effect, result.share):
        single = entry.site.head is None
        records.append({
            "sample_id": pair.id, "dataset": pair.dataset, "kind": pair.kind, "multiplier": float(multiplier),
            "component": entry.component, "layer": entry.layer,
            "position": entry.site.positions[0] if single else -1,
            "token": labels[entry.site.positions[0]] if single else "*",
            "head": pd.NA if single else entry.site.head,
            "metric_clean": result.metric_clean, "metric_steered": result.metric_steered,
            "metric_patched": float(patched), "effect": float(effect), "share": float(share), "region": entry.region,
        })
    frame = pd.DataFrame.from_records(records, columns=PREFIX_PATCHING_COLUMNS)
    frame["head"] = frame["head"].astype("Int64")
    return frame


def region_summary(patching: pd.DataFrame) -> pd.DataFrame:
    """Per (role/sample,) component, layer and region: the summed share (positions summed; heads per region)."""
    keys = [k for k in ("role", "sample_id") if k in patching.columns] + ["component", "layer", "region"]
    return patching.groupby(keys, sort=False)["share"].sum().reset_index()


def patching_speedup(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    sites: Sequence[PatchSite],
    *,
    multiplier: float = 1.0,
    batch_size: int = 64,
) -> dict[str, float]:
    """Wall time of the full-sequence and the prefix-cached patching of the same ``sites`` (and the largest
    difference between their patched metrics): ``{"full_s", "prefix_s", "speedup", "max_abs_diff", "n_sites",
    "prefix_tokens", "suffix_tokens"}``."""
    started = time.perf_counter()
    full = patch_sites(model, vector, pair, sites, multiplier=multiplier, batch_size=batch_size)
    full_s = time.perf_counter() - started
    started = time.perf_counter()
    fast = prefix_patch_sites(model, vector, pair, sites, multiplier=multiplier, batch_size=batch_size)
    prefix_s = time.perf_counter() - started
    seqs = sample_sequences(model.tokenizer, pair)
    return {
        "full_s": full_s, "prefix_s": prefix_s, "speedup": full_s / prefix_s if prefix_s > 0 else float("nan"),
        "max_abs_diff": float(np.max(np.abs(full.metric_patched - fast.metric_patched))) if len(sites) else 0.0,
        "n_sites": float(len(sites)), "prefix_tokens": float(seqs.steer_from),
        "suffix_tokens": float(seqs.max_len - seqs.steer_from),
    }

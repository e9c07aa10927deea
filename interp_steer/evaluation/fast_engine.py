"""Fast propensity engine: shared-prefix KV cache, shared unsteered suffix, resume-at-layer, minimal unembedding.

Same numbers and table as :func:`~interp_steer.evaluation.propensity.compute_propensities` (propensity from the
last prompt token on, A/B logit difference or free-text log-prob difference), computed with far less work:

1. **Prefix once.** Everything before the last prompt token is unsteered, hence identical for every multiplier and
   layer: it runs once per prompt into a key/value cache (:mod:`~interp_steer.evaluation.prefix_cache`).
2. **Suffix once per layer scan.** The suffix (last prompt token + answer prefix ``"("``, or + the completion) runs
   unsteered once on top of the cache, recording ``blocks.L.hook_resid_post`` at every steered layer ``L``.
3. **Resume per layer, as a staircase.** For layer ``L`` the recorded residual plus ``m · v_L`` (all multipliers
   along the batch) resumes at block ``L+1`` — only the layers above ``L`` and only the suffix tokens are
   recomputed. The rows of all steered layers share each block call: rows steered at ``L`` join the batch just
   before block ``L+1``, so a 30-layer scan makes 30 block calls per chunk instead of 435.
4. **Unembed only what is scored.** A/B rows need two columns of ``W_U``; free-text rows need the full
   log-softmax only at the completion positions (both from :mod:`interp_steer.scoring`).

All of it runs under ``torch.inference_mode`` with rows sorted by length and chunked to a memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import pad_token_id
from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.evaluation.prefix_cache import (
    PrefixCache,
    block_prefix,
    build_prefix_cache,
    right_pad,
    shared_prefix_block,
    supports_shared_prefix_block,
)
from interp_steer.evaluation.propensity import (
    RawScore,
    ScoringRow,
    _check_inputs,
    propensity_frame,
    scoring_rows,
    vector_label,
)
from interp_steer.scoring import answer_letter_scores, gathered_completion_logprobs
from interp_steer.steering.hook_names import DEFAULT_SITE, layer_of
from interp_steer.steering.operators import steering_delta
from interp_steer.steering.vector import SteeringVector

DEFAULT_MEMORY_BUDGET_MB = 512
"""Default cap on the cached keys/values of one chunk and one block call (the engine's dominant allocations)."""


@dataclass(frozen=True)
class _Layer:
    """One steered layer: its index, the single-hook vector (for the table) and the direction tensor."""

    layer: int
    vector: SteeringVector
    direction: Float[Tensor, "d_model"]


def _steered_layers(model: HookedTransformer, vectors: SteeringVector | Mapping[int, SteeringVector]) -> list[_Layer]:
    """Normalise ``vectors`` to one resid_post direction per layer, sorted by layer."""
    if isinstance(vectors, SteeringVector):
        chosen = [vectors.select()]
    elif isinstance(vectors, Mapping):
        if not vectors:
            raise ConfigError("vectors is an empty mapping: pass {layer: SteeringVector}")
        chosen = [vec.select(layer) for layer, vec in vectors.items()]
    else:
        raise ConfigError(f"vectors must be a SteeringVector or a {{layer: SteeringVector}} mapping, got {type(vectors).__name__}")
    layers = []
    for vec in chosen:
        vec.check_fits(model)
        (hook_name,) = vec.hook_names
        if not hook_name.endswith("." + DEFAULT_SITE):
            raise SteeringVectorError(
                f"the fast engine steers only at blocks.L.{DEFAULT_SITE}, got {hook_name!r}; use compute_propensities"
            )
        direction = vec.directions[hook_name].to(model.cfg.device, model.cfg.dtype)
        layers.append(_Layer(layer_of(hook_name), vec, direction))
    if len({lay.layer for lay in layers}) != len(layers):
        raise ConfigError("two vectors steer the same layer; pass one vector per layer")
    return sorted(layers, key=lambda lay: lay.layer)


@dataclass(frozen=True)
class _MemoryModel:
    """Bytes per token of the engine's allocations: a prefix's cached keys/values (all layers, kept for the chunk),
    the temporaries of one steered row-token in a block call (given the key width it attends to), and one
    row-token of staircase state (the residual stream)."""

    prefix_bytes_per_token: int
    shared: bool
    itemsize: int
    d_model: int
    d_mlp: int
    n_heads: int
    n_kv: int
    d_head: int

    @classmethod
    def of(cls, model: HookedTransformer) -> "_MemoryModel":
        cfg = model.cfg
        itemsize = torch.empty((), dtype=cfg.dtype).element_size()
        n_kv = cfg.n_key_value_heads or cfg.n_heads
        return cls(2 * n_kv * cfg.d_head * cfg.n_layers * itemsize, supports_shared_prefix_block(model), itemsize, cfg.d_model, cfg.d_mlp or 4 * cfg.d_model,
                   cfg.n_heads, n_kv, cfg.d_head)

    def call_bytes_per_token(self, key_width: int) -> int:
        """Temporaries of one row-token in a block call: norms and residuals, q/k/v (rotated copies), three
        copies of the attention scores over ``key_width`` keys, the MLP's hidden activations; plus the
        per-row key/value copy TransformerLens's own block makes when the shared-prefix block is not used."""
        qkv = (self.n_heads + 2 * self.n_kv) * self.d_head
        scores = 3 * self.n_heads * key_width
        fallback_copy = 0 if self.shared else (2 * self.n_kv + self.n_heads) * self.d_head * 2 * key_width
        return self.itemsize * (6 * self.d_model + 3 * qkv + scores + 3 * self.d_mlp + fallback_copy)

    def state_bytes_per_token(self) -> int:
        """One row-token of staircase state, twice (a block's input and output are alive together)."""
        return 2 * self.itemsize * self.d_model


def _chunks(
    rows: list[ScoringRow], n_mult: int, memory: _MemoryModel, budget: int, batch_size: int | None = None,
) -> list[list[ScoringRow]]:
    """Greedy chunks of length-sorted rows whose prefix caches plus one steered layer of all multipliers (its state
    and one block call over it) fit ``budget``, and whose steered rows of one layer fit ``batch_size``."""
    chunks: list[list[ScoringRow]] = []
    current: list[ScoringRow] = []
    for row in sorted(rows, key=lambda r: (r.steer_from, len(r.ids))):
        width = max([len(r.ids) for r in current] + [len(row.ids)])
        suffix = max([len(r.ids) - r.steer_from for r in current] + [len(row.ids) - row.steer_from])
        steered_tokens = (len(current) + 1) * n_mult * suffix
        used = (width * (len(current) + 1) * memory.prefix_bytes_per_token
                + steered_tokens * (memory.call_bytes_per_token(width) + memory.state_bytes_per_token()))
        too_many = batch_size is not None and (len(current) + 1) * n_mult > batch_size
        if current and (used > budget or too_many):
            chunks.append(current)
            current = []
        current.append(row)
    chunks.append(current)
    return chunks


class _ChunkScorer:
    """Scores the final residual of a chunk's steered rows (rows × multipliers, multiplier-minor)."""

    def __init__(self, model: HookedTransformer, rows: list[ScoringRow], suffix_tokens: Tensor, lengths: Tensor, n_mult: int):
        self.model, self.rows, self.n_mult = model, rows, n_mult
        device = suffix_tokens.device
        repeat = lambda t: t.repeat_interleave(n_mult, dim=0)  # noqa: E731
        ab = [i for i, r in enumerate(rows) if r.letters is not None]
        self.ab_big = None
        if ab:
            self.ab_big = (torch.tensor(ab, device=device)[:, None] * n_mult + torch.arange(n_mult, device=device)).flatten()
            self.ab_letters = repeat(torch.tensor([rows[i].letters for i in ab], device=device))
            self.ab_last = repeat(lengths[ab] - 1)
        ft = [i for i, r in enumerate(rows) if r.letters is None]
        self.ft_rows = ft
        if ft:
            # position p of a suffix predicts its token p+1; rows are (chunk row, multiplier) in big-batch order
            big_row, position, target = [], [], []
            for i in ft:
                n = int(lengths[i]) - 1
                for j in range(n_mult):
                    big_row += [i * n_mult + j] * n
                    position += list(range(n))
                    target += suffix_tokens[i, 1: n + 1].tolist()
            self.ft_big_row = torch.tensor(big_row, device=device)
            self.ft_position = torch.tensor(position, device=device)
            self.ft_target = torch.tensor(target, device=device)

    def __call__(self, final: Float[Tensor, "big pos d_model"], multipliers: Sequence[float]) -> dict[tuple[int, str, float], RawScore]:
        scores: dict[tuple[int, str, float], RawScore] = {}
        if self.ab_big is not None:
            letter_scores = answer_letter_scores(self.model, final[self.ab_big, self.ab_last], self.ab_letters).per_row()
            for big, score in zip(self.ab_big.tolist(), letter_scores):
                row, m = self.rows[big // self.n_mult], float(multipliers[big % self.n_mult])
                scores[(row.sample, row.side, m)] = score
        if self.ft_rows:
            totals = gathered_completion_logprobs(
                self.model, final[self.ft_big_row, self.ft_position], self.ft_target, self.ft_big_row, final.shape[0]
            ).logprob.tolist()
            for i in self.ft_rows:
                for j in range(self.n_mult):
                    scores[(self.rows[i].sample, self.rows[i].side, float(multipliers[j]))] = totals[i * self.n_mult + j]
        return scores


def _run_chunk(
    model: HookedTransformer, rows: list[ScoringRow], layers: list[_Layer], multipliers: Sequence[float], pad: int,
    device, memory: _MemoryModel, budget: int, batch_size: int | None,
) -> dict[int, dict]:
    """Scores of one chunk for every steered layer: ``{layer: {(sample, side, multiplier): score}}``."""
    n_layers = model.cfg.n_layers
    prefixes = list(dict.fromkeys(r.ids[: r.steer_from] for r in rows))
    prefix_index = {p: i for i, p in enumerate(prefixes)}
    cache: PrefixCache = build_prefix_cache(model, prefixes, pad, device)
    row_prefix = torch.tensor([prefix_index[r.ids[: r.steer_from]] for r in rows], device=device)
    suffix = right_pad([r.ids[r.steer_from:] for r in rows], pad, device)
    # multiplier 0 adds nothing: its rows are the unsteered run, scored once for every layer
    steered = [float(m) for m in multipliers if float(m) != 0.0]
    has_zero = len(steered) < len(multipliers)

    # the unsteered suffix, once: residuals at every steered layer (and to the end if multiplier 0 is asked for)
    wanted = {f"blocks.{lay.layer}.{DEFAULT_SITE}" for lay in layers}
    resid: dict[str, Tensor] = {}

    def keep(act, hook):
        resid[hook.name] = act

    with model.hooks(fwd_hooks=[(name, keep) for name in wanted]):
        final = model(suffix.tokens, attention_mask=suffix.attention_mask, past_kv_cache=cache.select(row_prefix),
                      stop_at_layer=n_layers if has_zero else layers[-1].layer + 1)
    scores: dict[int, dict] = {lay.layer: {} for lay in layers}
    if has_zero:
        unsteered = _ChunkScorer(model, rows, suffix.tokens, suffix.lengths, 1)(final, [0.0])
        for lay in layers:
            scores[lay.layer].update(unsteered)
    if not steered:
        return scores

    n_mult, width = len(steered), cache.width + suffix.tokens.shape[1]
    group = len(rows) * n_mult
    tokens = group * suffix.tokens.shape[1]
    call_rows = max(1, (budget // 4) // max(1, suffix.tokens.shape[1] * memory.call_bytes_per_token(width)))
    if batch_size is not None:
        call_rows = min(call_rows, batch_size)
    layers_per_part = max(1, (budget // 2) // max(1, tokens * memory.state_bytes_per_token()))
    stairs = _Staircase(model, cache, row_prefix, suffix, steered, call_rows)
    scorer = _ChunkScorer(model, rows, suffix.tokens, suffix.lengths, n_mult)
    # the staircase state grows by one group per steered layer: bound it by scanning the layers in parts
    for lo in range(0, len(layers), layers_per_part):
        part = layers[lo: lo + layers_per_part]
        state = stairs.run(part, resid)
        for g, lay in enumerate(part):
            scores[lay.layer].update(scorer(state[g * group:(g + 1) * group], steered))
        del state
    return scores


class _Staircase:
    """The steered runs of a chunk for a set of layers, sharing each block call.

    Rows steered at layer L join the batch just before block L+1 (one group of chunk rows × multipliers per
    layer), so every block above the lowest steered layer runs once per chunk, in slices of whole groups of at
    most ``call_rows`` rows (at least one group). With :func:`supports_shared_prefix_block` the slices attend to
    the chunk's prefix keys/values without per-row copies; otherwise TransformerLens's block runs on a per-row copy.
    """

    def __init__(self, model: HookedTransformer, cache: PrefixCache, row_prefix: Tensor, suffix, steered: list[float],
                 call_rows: int):
        self.model, self.cache, self.row_prefix, self.suffix = model, cache, row_prefix, suffix
        self.n_mult, self.group = len(steered), len(row_prefix) * len(steered)
        device = row_prefix.device
        self.mult = torch.tensor(steered, dtype=model.cfg.dtype, device=device).repeat(len(row_prefix))
        self.shared = supports_shared_prefix_block(model)
        if self.shared:
            prefix_len = cache.attention_mask.index_select(0, row_prefix).sum(dim=1)
            self.positions = prefix_len[:, None] + torch.arange(suffix.tokens.shape[1], device=device)[None, :]
            self.valid = suffix.attention_mask.bool()
            self.groups_per_call = max(1, call_rows // self.group)
        else:
            big_prefix = row_prefix.repeat_interleave(self.n_mult)
            self.big_prefix = big_prefix
            self.big_mask = torch.cat([cache.attention_mask[big_prefix], suffix.attention_mask.repeat_interleave(self.n_mult, 0)], dim=1)
            self.call_rows = call_rows

    def run(self, layers: list[_Layer], resid: dict[str, Tensor]) -> Float[Tensor, "rows pos d_model"]:
        """Final residual of the steered rows of ``layers`` (group ``g`` = ``layers[g]``, chunk-row-major)."""
        by_layer = {lay.layer: lay for lay in layers}
        state: Tensor | None = None
        n_layers = self.model.cfg.n_layers
        for block_index in range(layers[0].layer + 1, n_layers + 1):
            joining = by_layer.get(block_index - 1)
            if joining is not None:
                start = resid[f"blocks.{joining.layer}.{DEFAULT_SITE}"].repeat_interleave(self.n_mult, 0)
                start = start + steering_delta(start, joining.direction, self.mult)  # from the last prompt token on
                state = start if state is None else torch.cat([state, start])
            if block_index < n_layers:
                assert state is not None  # the first steered layer joins before the first block
                state = self._block(block_index, state)
        assert state is not None
        return state

    def _block(self, block_index: int, state: Tensor) -> Tensor:
        if self.shared:
            prefix = block_prefix(self.model, self.cache, block_index, self.row_prefix)
            step = self.groups_per_call * self.group
            outs = [shared_prefix_block(self.model, block_index, state[lo: lo + step], prefix, self.positions, self.valid,
                                        self.n_mult) for lo in range(0, state.shape[0], step)]
        else:
            outs = [_tl_block(self.model, block_index, state[lo: lo + self.call_rows], self.cache,
                              self.big_prefix, self.big_mask, lo) for lo in range(0, state.shape[0], self.call_rows)]
        return outs[0] if len(outs) == 1 else torch.cat(outs)


def _tl_block(
    model: HookedTransformer, block_index: int, state: Float[Tensor, "rows pos d_model"], cache: PrefixCache,
    group_prefix: Int[Tensor, "group"], group_mask: Int[Tensor, "group full_pos"], offset: int,
) -> Float[Tensor, "rows pos d_model"]:
    """TransformerLens's block on rows ``offset…`` of stacked groups (row ``r`` uses prefix ``group_prefix[r % group]``),
    with a per-row copy of the prefix keys/values."""
    within = torch.arange(offset, offset + state.shape[0], device=state.device) % group_prefix.shape[0]
    prefix = group_prefix[within]
    keys, values = cache.keys[block_index], cache.values[block_index]
    entry = TransformerLensKeyValueCacheEntry(keys.index_select(0, prefix), values.index_select(0, prefix), frozen=True)
    return model.blocks[block_index](state, past_kv_cache_entry=entry, attention_mask=group_mask[within])


@torch.inference_mode()
def fast_propensities(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    vectors: SteeringVector | Mapping[int, SteeringVector],
    multipliers: Sequence[float],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    vector_name: str | None = None,
) -> pd.DataFrame:
    """Propensity of every (pair, multiplier, layer), same table as ``compute_propensities`` — much faster.

    ``vectors``: one single-hook vector (``blocks.L.hook_resid_post``), or ``{layer: vector}`` to scan several
    layers in one call (each vector may have many hooks; the one at ``layer`` is used). Steering is added from the
    last prompt token on, one layer at a time. Chunks of samples are sized so their cached keys/values stay under
    ``memory_budget_mb`` (an estimate of the dominant allocations, not a hard limit); ``batch_size`` additionally
    caps the steered rows (sequences × multipliers) of one block call (default: from the budget).
    Columns: :data:`~interp_steer.evaluation.propensity.PROPENSITY_COLUMNS`, one row per (layer, pair, multiplier).
    """
    _check_inputs(model, pairs, multipliers, batch_size or 1)
    if memory_budget_mb <= 0:
        raise ConfigError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
    layers = _steered_layers(model, vectors)
    device = device or model.cfg.device
    cfg = model.cfg
    memory, budget = _MemoryModel.of(model), int(memory_budget_mb * 2**20)
    rows = scoring_rows(model.tokenizer, pairs, n_ctx=cfg.n_ctx)
    n_steered = max(1, sum(float(m) != 0.0 for m in multipliers))
    chunks = _chunks(rows, n_steered, memory, budget, batch_size)
    pad = pad_token_id(model.tokenizer)
    scores: dict[int, dict] = {lay.layer: {} for lay in layers}
    for chunk in tqdm(chunks, desc="fast propensity", disable=not progress, leave=False):
        for layer, chunk_scores in _run_chunk(model, chunk, layers, multipliers, pad, device, memory, budget,
                                              batch_size).items():
            scores[layer].update(chunk_scores)
    frames = [
        propensity_frame(pairs, lay.vector, multipliers, scores[lay.layer], vector_name or vector_label(lay.vector))
        for lay in layers
    ]
    return pd.concat(frames, ignore_index=True)

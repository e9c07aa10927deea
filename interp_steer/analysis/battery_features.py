"""Features of a contrastive sample that need no steering (issue 26 battery; definitions in
``analyses/prereg/anti_steerable_battery.md``): lexical behaviour score, negation, logit-lens overlap, lengths,
and the sample's activation difference relative to the CAA vector (plus Braun et al.'s dataset-level cosine and d′).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np
import torch
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import encode_pair, pad_token_id
from interp_steer.errors import ConfigError

WORD = re.compile(r"[a-z']+")
NEGATIONS = frozenset({"not", "no", "never", "nor", "neither", "nothing", "nobody", "none", "cannot", "without"})


def words(text: str) -> set[str]:
    """Distinct lower-cased ``[a-z']+`` words of ``text``."""
    return set(WORD.findall(text.lower()))


def has_negation(text: str) -> bool:
    """Whether ``text`` contains a negation word (``NEGATIONS`` or a word ending in ``n't``)."""
    return any(w in NEGATIONS or w.endswith("n't") for w in words(text))


def lexical_scores(matching: Sequence[str], non_matching: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Leave-pair-out lexical behaviour score of each matching and non-matching statement of one file.

    For pair i, word log-odds from the other pairs: ``lo(w) = log((c_m+1)/(n_m+2)) − log((c_n+1)/(n_n+2))`` with
    ``c`` the number of matching / non-matching statements (j ≠ i) containing ``w`` and ``n`` their number; a
    statement's score is the mean ``lo`` over its distinct words (0 if it has none).
    """
    if len(matching) != len(non_matching) or len(matching) < 2:
        raise ConfigError(f"lexical_scores: need ≥ 2 pairs of equal-length lists, got {len(matching)} and "
                          f"{len(non_matching)}")
    m_words, n_words = [words(t) for t in matching], [words(t) for t in non_matching]
    c_m, c_n = Counter(w for s in m_words for w in s), Counter(w for s in n_words for w in s)
    n = len(matching) - 1  # statements of each side in the other pairs

    def score(statement: set[str], own_m: set[str], own_n: set[str]) -> float:
        if not statement:
            return 0.0
        lo = [np.log((c_m[w] - (w in own_m) + 1) / (n + 2)) - np.log((c_n[w] - (w in own_n) + 1) / (n + 2))
              for w in statement]
        return float(np.mean(lo))

    pos = np.array([score(m, m, s) for m, s in zip(m_words, n_words)])
    neg = np.array([score(s, m, s) for m, s in zip(m_words, n_words)])
    return pos, neg


@torch.no_grad()
def logit_lens_top(model: HookedTransformer, direction: torch.Tensor, k: int) -> torch.Tensor:
    """Ids of the ``k`` tokens whose unembedding rows have the largest dot product with ``unit(direction)``."""
    if not 1 <= k <= model.cfg.d_vocab:
        raise ConfigError(f"logit-lens k={k}: must be in 1..{model.cfg.d_vocab}")
    unit = direction.float() / direction.float().norm().clamp_min(1e-12)
    return torch.topk(unit.to(model.W_U.device) @ model.W_U.float(), k).indices.cpu()


def token_overlap(ids: Sequence[int], top: torch.Tensor) -> float:
    """Fraction of ``ids`` that are among the ``top`` token ids (0 for an empty completion)."""
    chosen = set(top.tolist())
    return float(np.mean([i in chosen for i in ids])) if len(ids) else 0.0


@torch.inference_mode()
def completion_activations(model: HookedTransformer, pairs: Sequence[ContrastivePair], hook_name: str,
                           batch_size: int = 64) -> dict:
    """Residual at ``hook_name`` of each pair's matching and non-matching sequence: mean over the completion's
    tokens and at its last token (``pos_mean, neg_mean, pos_last, neg_last``, ``[n, d_model]``), the completion
    token ids ``pos_ids`` / ``neg_ids`` and counts ``n_tokens_pos`` / ``n_tokens_neg`` (from ``encode_pair``).

    Prefix-cached: each distinct prompt runs once (:func:`~interp_steer.evaluation.prefix_cache.build_prefix_cache`)
    and the completions run on top of it, stopped after the hook's block; equal to a full forward to float
    precision (tested against :func:`~interp_steer.steering.activations.collect_contrastive_activations`).
    """
    from interp_steer.evaluation.prefix_cache import build_prefix_cache, right_pad

    if hook_name not in model.hook_dict or not hook_name.startswith("blocks."):
        raise ConfigError(f"hook {hook_name!r} does not exist on {model.cfg.model_name}")
    layer = int(hook_name.split(".")[1])
    encoded = [encode_pair(model.tokenizer, p, n_ctx=model.cfg.n_ctx) for p in pairs]
    pad, device = pad_token_id(model.tokenizer), model.cfg.device or "cpu"
    prompts = sorted({tuple(e.prompt_ids) for e in encoded})
    prompt_index = {p: i for i, p in enumerate(prompts)}
    cache = build_prefix_cache(model, [list(p) for p in prompts], pad, device)
    rows = [(prompt_index[tuple(e.prompt_ids)], list(r)) for e in encoded for r in (e.positive_ids, e.negative_ids)]
    means, lasts = [], []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        suffix = right_pad([r for _, r in chunk], pad, device)
        index = torch.tensor([i for i, _ in chunk], dtype=torch.long, device=suffix.tokens.device)
        _, act_cache = model.run_with_cache(suffix.tokens, attention_mask=suffix.attention_mask,
                                            past_kv_cache=cache.select(index), names_filter=lambda n: n == hook_name,
                                            stop_at_layer=layer + 1)
        acts = act_cache[hook_name].float()
        for row, (_, resp) in enumerate(chunk):
            means.append(acts[row, :len(resp)].mean(0).cpu())
            lasts.append(acts[row, len(resp) - 1].cpu())
    mean, last = torch.stack(means), torch.stack(lasts)
    return dict(pos_mean=mean[0::2], neg_mean=mean[1::2], pos_last=last[0::2], neg_last=last[1::2],
                n_tokens_pos=np.array([len(e.positive_ids) for e in encoded]),
                n_tokens_neg=np.array([len(e.negative_ids) for e in encoded]),
                pos_ids=[list(e.positive_ids) for e in encoded], neg_ids=[list(e.negative_ids) for e in encoded])


def projection_features(diff: torch.Tensor, direction: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(projection on unit(direction), cosine with direction)`` of each row of ``diff``."""
    unit = direction.float() / direction.float().norm().clamp_min(1e-12)
    proj = diff.float() @ unit
    cos = proj / diff.float().norm(dim=-1).clamp_min(1e-12)
    return proj.numpy(), cos.numpy()


def braun_dataset_features(pos: torch.Tensor, neg: torch.Tensor, direction: torch.Tensor) -> dict[str, float]:
    """Braun et al. (2025) dataset-level predictors from the training activations: mean cosine of the
    differences with the vector, and d′ of the pos / neg projections on it (pooled-variance denominator)."""
    _, cos = projection_features(pos - neg, direction)
    unit = direction.float() / direction.float().norm().clamp_min(1e-12)
    p_pos, p_neg = (pos.float() @ unit).numpy(), (neg.float() @ unit).numpy()
    pooled = np.sqrt((p_pos.var(ddof=1) + p_neg.var(ddof=1)) / 2)
    proj_diff = p_pos - p_neg
    return dict(braun_mean_cosine=float(cos.mean()), braun_separation_dprime=float((p_pos.mean() - p_neg.mean()) / pooled),
                train_projection_sd=float(proj_diff.std(ddof=1)))

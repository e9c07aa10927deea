"""SAE quality on held-out text, computed with TransformerLens hooks: L0, explained variance, dead features, CE loss.

Positions that are padding, the first token of each text (an attention sink whose residual norm is ~100×
the others in SmolLM2) and special tokens are left out of every statistic and are not spliced.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from interp_steer.data import left_pad, pad_token_id
from interp_steer.data.tokenization import encode_sequence
from interp_steer.errors import ConfigError
from interp_steer.scoring import target_logprobs


def encode_texts(tokenizer, texts: Sequence[str], max_tokens: int = 128):
    """Left-padded batch of the texts (each with the model's sequence start, truncated to ``max_tokens``)."""
    seqs = [list(encode_sequence(tokenizer, t))[:max_tokens] for t in texts]
    seqs = [s for s in seqs if len(s) >= 2]
    if not seqs:
        raise ConfigError("texts: need at least one text of two or more tokens")
    return left_pad(seqs, pad_token_id(tokenizer))


def scored_positions(tokenizer, tokens: Tensor, attention_mask: Tensor) -> Bool[Tensor, "batch pos"]:
    """Real, non-first, non-special positions of a left-padded batch."""
    mask = attention_mask.bool().clone()
    first = mask.long().argmax(dim=1)
    mask[torch.arange(mask.shape[0]), first] = False
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=tokens.dtype)
    return mask & ~torch.isin(tokens, special)


def _summed_ce(logits: Float[Tensor, "batch pos vocab"], tokens: Tensor, ce_mask: Bool[Tensor, "batch pos_minus_1"]) -> float:
    """Sum of next-token cross-entropies at the positions ``ce_mask`` selects (inputs 0..pos-2)."""
    return float(-target_logprobs(logits[:, :-1][ce_mask], tokens[:, 1:][ce_mask]).sum())


@torch.no_grad()
def evaluate_sae(model, sae, texts: Sequence[str], hook_name: str | None = None, batch_size: int = 8,
                 max_tokens: int = 128) -> dict[str, float]:
    """Quality of ``sae`` at ``hook_name`` on held-out ``texts``.

    Returns ``l0`` (mean active features per token), ``explained_variance`` (1 − SSE / total variance about the
    mean), ``dead_fraction`` (features that never fire on these tokens), ``mse``, ``ce_clean``, ``ce_spliced``
    (SAE reconstruction spliced in at the scored positions), ``ce_zero_ablation``, ``ce_increase`` and
    ``ce_loss_recovered`` ((zero − spliced) / (zero − clean)); CE is averaged over next-token targets whose
    input position was spliced.
    """
    hook_name = hook_name or sae.cfg.metadata.hook_name
    tok = model.tokenizer
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    sums: dict[str, Any] = {"l0": 0.0, "sse": 0.0, "sum_x": torch.zeros(sae.cfg.d_in, dtype=torch.float64), "sum_sq": 0.0, "n": 0,
            "ce_clean": 0.0, "ce_spliced": 0.0, "ce_zero": 0.0, "n_ce": 0}
    for start in range(0, len(texts), batch_size):
        batch = encode_texts(tok, texts[start:start + batch_size], max_tokens)
        mask = scored_positions(tok, batch.tokens, batch.attention_mask)
        captured: dict[str, Tensor] = {}

        def capture(acts, hook, captured=captured):
            captured["x"] = acts.detach().clone()

        def splice(acts, hook, mask=mask):
            recon = sae(acts.float()).to(acts.dtype)
            return torch.where(mask[..., None], recon, acts)

        def zero(acts, hook, mask=mask):
            return torch.where(mask[..., None], torch.zeros_like(acts), acts)

        kwargs = {"attention_mask": batch.attention_mask}
        clean_logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(hook_name, capture)], **kwargs)
        spliced_logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(hook_name, splice)], **kwargs)
        zero_logits = model.run_with_hooks(batch.tokens, fwd_hooks=[(hook_name, zero)], **kwargs)

        x = captured["x"][mask].float()
        feats = sae.encode(x)
        recon = sae.decode(feats)
        fired |= (feats > 0).any(dim=0)
        sums["l0"] += float((feats > 0).sum())
        sums["sse"] += float(((x - recon) ** 2).sum())
        sums["sum_x"] += x.double().sum(dim=0)
        sums["sum_sq"] += float((x.double() ** 2).sum())
        sums["n"] += x.shape[0]
        ce_mask = mask[:, :-1]
        for key, logits in (("ce_clean", clean_logits), ("ce_spliced", spliced_logits), ("ce_zero", zero_logits)):
            sums[key] += _summed_ce(logits, batch.tokens, ce_mask)
        sums["n_ce"] += int(ce_mask.sum())
    n = sums["n"]
    total_var = sums["sum_sq"] - float((sums["sum_x"] ** 2).sum()) / n
    ce_clean, ce_spliced, ce_zero = (sums[k] / sums["n_ce"] for k in ("ce_clean", "ce_spliced", "ce_zero"))
    return {
        "n_tokens": float(n),
        "l0": sums["l0"] / n,
        "mse": sums["sse"] / (n * sae.cfg.d_in),
        "explained_variance": 1.0 - sums["sse"] / total_var,
        "dead_fraction": 1.0 - float(fired.float().mean()),
        "ce_clean": ce_clean,
        "ce_spliced": ce_spliced,
        "ce_zero_ablation": ce_zero,
        "ce_increase": ce_spliced - ce_clean,
        "ce_loss_recovered": (ce_zero - ce_spliced) / (ce_zero - ce_clean) if ce_zero != ce_clean else float("nan"),
    }

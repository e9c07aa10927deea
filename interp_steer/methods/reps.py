"""RePS (Wu et al. 2025, "Improved Representation Steering for Language Models", AxBench): reference-free,
length-normalised preference training of one steering vector, on BiPO's machinery (pair encoding, preference
batches, response log-probs, the package's steering hook, seeded batch order).

With ``ℓ̄_Φ(y) = (1/|y|) Σ_t log p_Φ(y_t | x, y_<t)`` the length-normalised log-likelihood of response ``y`` under
the model intervened on by ``Φ`` at one hook (every position of prompt and response), each step draws a strength
``α ~ U[strength_low, strength_high]`` and minimises over the batch's pairs ``(x, y⁺, y⁻)``

    L = −log σ(β · [ℓ̄_{Φ_α}(y⁺) − ℓ̄_{Φ_α}(y⁻)])  −  log σ(β · [ℓ̄_{Φ_∅}(y⁻) − ℓ̄_{Φ_∅}(y⁺)])

with the steering intervention ``Φ_α(h) = h + α·v`` (the positive term: steered, the model should prefer the
positive response) and the null intervention ``Φ_∅(h) = h − (h·v̂)v̂`` (the null term: with the concept's direction
removed the model should prefer the negative one). There is no reference model: no log-ratio against the unsteered
model, unlike BiPO's DPO loss.

``RePSConfig.scale`` (not in the paper) trains a direction at a fixed norm: the steered term adds
``α·scale·v/|v|`` and the returned vector is ``scale·v/|v|``. At the residual stream's scale the steered term moves
the log-likelihoods from the first step; in the paper's form a small starting vector (norm 0.1) steers too weakly
for that term to matter for many steps, while the null term is blind to the vector's sign, so short runs keep the
random start's sign (the method study's SmolLM2 pilot: 8 steps, cosine with CAA −0.25 and −0.37). The method study
sets ``scale`` to the norm of the CAA vector of the same pairs, the norm every method is compared at. Not implemented from the paper: its per-pair adaptive scaling of β from the
unsteered model's likelihood gap, and steering-factor sampling from a fixed list (a uniform range here).
Written from the paper's description; not checked line by line against the AxBench code (the stored snapshot of
stanfordnlp/axbench has no RePS trainer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import encode_pair, pad_token_id
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.methods.bipo import epoch_batches, frozen_model
from interp_steer.methods.direction_configs import RePSConfig
from interp_steer.methods.response_logprobs import PreferenceBatch, pair_logprobs, preference_batch
from interp_steer.models.processing import describe_processing
from interp_steer.steering.apply import steering_hook
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import Provenance, SteeringVector


def _mean_logprobs(model: HookedTransformer, batch: PreferenceBatch, hook_name: str, hook) -> Tensor:
    """``[n_pairs, 2]`` length-normalised log-likelihoods of the positive and negative responses under ``hook``."""
    with model.hooks(fwd_hooks=[(hook_name, hook)]):
        sums = pair_logprobs(model, batch)
    counts = batch.response_mask.sum(1).to(sums.dtype)
    return sums / torch.stack([counts[: batch.n_pairs], counts[batch.n_pairs:]], dim=1)


def reps_loss(
    model: HookedTransformer,
    hook_name: str,
    vector: Float[Tensor, "d_model"],
    batch: PreferenceBatch,
    strength: float,
    beta: float,
) -> Float[Tensor, "n_pairs"]:
    """Per-pair RePS loss (module docstring): the steered term at ``strength`` plus the null-intervention term."""
    steered = _mean_logprobs(model, batch, hook_name, steering_hook(vector, multiplier=strength, positions="all"))
    null = _mean_logprobs(model, batch, hook_name,
                          steering_hook(vector, multiplier=0.0, positions="all", operator="ablate_then_add"))
    positive_term = -F.logsigmoid(beta * (steered[:, 0] - steered[:, 1]))
    null_term = -F.logsigmoid(beta * (null[:, 1] - null[:, 0]))
    return (positive_term + null_term).float()


def initial_vector(d_model: int, config: RePSConfig) -> Tensor:
    """The seeded random start: a standard normal draw rescaled to ``config.init_norm``."""
    draw = torch.randn(d_model, generator=torch.Generator().manual_seed(config.seed))
    return draw * (config.init_norm / draw.norm())


def train_reps(model: HookedTransformer, pairs: Sequence[ContrastivePair], config: RePSConfig, *,
               progress: bool = True, dataset: str | None = None) -> SteeringVector:
    """Train a RePS vector on ``pairs`` at ``config.layer``; the loss and strength of every step go to the provenance."""
    if len(pairs) < 2:
        raise ConfigError(f"RePS needs at least 2 contrastive pairs, got {len(pairs)}")
    hook_name = config.hook_name
    if hook_name not in model.hook_dict:
        raise ConfigError(f"hook {hook_name!r} does not exist on {model.cfg.model_name} ({model.cfg.n_layers} layers)")
    encoded = [encode_pair(model.tokenizer, p, n_ctx=model.cfg.n_ctx) for p in pairs]
    if all(e.positive_ids == e.negative_ids for e in encoded):
        raise DataFormatError(f"RePS: all {len(pairs)} pairs have identical positive and negative responses; "
                              "there is no preference to learn")
    pad = pad_token_id(model.tokenizer)
    vector = torch.nn.Parameter(initial_vector(model.cfg.d_model, config).to(model.cfg.device))
    optimizer = torch.optim.AdamW([vector], lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    per_epoch = -(-len(pairs) // config.batch_size)
    order = [b for epoch in range(-(-config.max_steps // per_epoch))
             for b in epoch_batches(len(pairs), config.batch_size, config.seed, epoch)]
    losses, strengths = [], []
    with frozen_model(model):
        for step in tqdm(range(config.max_steps), desc=f"RePS {hook_name}", disable=not progress, leave=False):
            strength = config.strength_low + (config.strength_high - config.strength_low) * float(
                torch.rand((), generator=generator))
            batch = preference_batch([encoded[i] for i in order[step]], pad).to(model.cfg.device)
            optimizer.zero_grad(set_to_none=True)
            applied = vector if config.scale is None else vector * (config.scale / vector.norm())
            loss = reps_loss(model, hook_name, applied, batch, strength, config.beta).mean()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            strengths.append(strength)
    if not np.isfinite(losses).all():
        raise ConfigError(f"RePS diverged (loss {losses[-1]}); lower RePSConfig.lr")
    direction = vector.detach().clone()
    if config.scale is not None:
        direction = direction * (config.scale / direction.norm())
    provenance = Provenance(
        model=model.cfg.model_name, method="reps", dataset=dataset or ",".join(sorted({p.dataset for p in pairs})),
        n_pairs=len(pairs), read_position="all", layers=[layer_of(hook_name)], model_processing=describe_processing(model),
        extra={"config": config.to_dict(), "hook_name": hook_name, "loss_history": losses, "strength_history": strengths,
               "norms": {hook_name: float(direction.norm())}, "steps": config.max_steps,
               "variants": sorted({p.variant for p in pairs})},
    )
    return SteeringVector({hook_name: direction}, provenance)


def extract_reps(model: HookedTransformer, pairs: Sequence[ContrastivePair], layers: Sequence[int | str],
                 config: RePSConfig | None = None, *, progress: bool = True, dataset: str | None = None) -> SteeringVector:
    """Registry entry: a RePS vector at the single layer in ``layers`` (other options from ``config``)."""
    if isinstance(layers, (int, str)):
        layers = [layers]
    if len(layers) != 1:
        raise ConfigError(f"RePS trains one vector at one layer; got layers={list(layers)} (run it once per layer)")
    config = RePSConfig.from_dict({**(config or RePSConfig()).to_dict(), "layer": layers[0]})
    return train_reps(model, pairs, config, progress=progress, dataset=dataset)


__all__ = ["extract_reps", "initial_vector", "reps_loss", "train_reps"]

"""BiPO (Cao et al. 2024): bi-directional preference optimisation of one steering vector.

A single vector ``v`` (zero-initialised) is added at every position of prompt and response at one hook
point of a frozen model. Each micro-batch draws a direction ``d ∈ {+1, −1}`` and minimises the DPO loss
of the model steered by ``d·v`` against the unsteered model (the reference, computed once before
training), with the preference flipped when ``d = −1``:

    loss = −log σ(β · d · [(log π_{d·v}(y⁺|x) − log π_{d·v}(y⁻|x)) − (log π_0(y⁺|x) − log π_0(y⁻|x))])

so ``+v`` learns to favour the positive responses and ``−v`` the negative ones. Training is resumable
from a checkpoint (vector, optimiser, scheduler, step, random state, loss history).
"""

from __future__ import annotations

import hashlib
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.tokenization import EncodedPair, encode_pair, pad_token_id
from interp_steer.errors import ConfigError
from interp_steer.methods.bipo_config import BiPOConfig
from interp_steer.methods.response_logprobs import PreferenceBatch, pair_logprobs, preference_batch
from interp_steer.models.processing import describe_processing
from interp_steer.steering.apply import steering_hook
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import Provenance, SteeringVector

CHECKPOINT_FORMAT = "interp_steer.bipo_checkpoint/1"


# ----------------------------------------------------------------------------- building blocks
def has_active_hooks(model: HookedTransformer) -> bool:
    """Whether any forward or backward hook is attached to one of the model's hook points."""
    return any(point.fwd_hooks or point.bwd_hooks for point in model.hook_dict.values())


@torch.inference_mode()
def compute_reference_logprobs(
    model: HookedTransformer, encoded: Sequence[EncodedPair], *, batch_size: int = 8
) -> Float[Tensor, "n_pairs 2"]:
    """log π_0 of each pair's positive (``[:, 0]``) and negative (``[:, 1]``) response, without any vector."""
    if has_active_hooks(model):
        raise ConfigError("BiPO reference log-probs need the bare model: remove active hooks (e.g. leave steer()) first")
    pad = pad_token_id(model.tokenizer)
    chunks = [
        pair_logprobs(model, preference_batch(encoded[i:i + batch_size], pad).to(model.cfg.device)).cpu()
        for i in range(0, len(encoded), batch_size)
    ]
    return torch.cat(chunks).float()


def bipo_loss(
    model: HookedTransformer,
    hook_name: str,
    vector: Float[Tensor, "d_model"],
    batch: PreferenceBatch,
    reference: Float[Tensor, "n_pairs 2"],
    direction: float,
    beta: float,
) -> Float[Tensor, "n_pairs"]:
    """Per-pair BiPO loss of the model steered by ``direction * vector`` at ``hook_name`` (every position)."""

    def add_vector(activation: Tensor, hook) -> Tensor:
        if activation.ndim != 3 or activation.shape[-1] != vector.shape[0]:
            raise ConfigError(
                f"BiPO cannot add a [{vector.shape[0]}] vector at {hook_name!r}, whose activation has shape "
                f"{tuple(activation.shape)}; choose a residual-stream hook such as 'blocks.L.hook_resid_post'"
            )
        return add(activation, hook)

    add = steering_hook(vector, multiplier=direction, positions="all")  # the package's one steering hook
    with model.hooks(fwd_hooks=[(hook_name, add_vector)]):
        policy = pair_logprobs(model, batch)
    reference = reference.to(policy.device)
    policy_margin = policy[:, 0] - policy[:, 1]
    reference_margin = reference[:, 0] - reference[:, 1]
    return -F.logsigmoid(beta * direction * (policy_margin - reference_margin))


@contextmanager
def frozen_model(model: HookedTransformer) -> Iterator[None]:
    """Every model parameter has ``requires_grad=False`` (and the model is in eval mode) inside the block."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    for p, _ in flags:
        p.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def epoch_batches(n_pairs: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled pair indices of ``epoch``, cut into batches; a pure function of (seed, epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(n_pairs).tolist()
    return [order[i:i + batch_size] for i in range(0, n_pairs, batch_size)]


def lr_schedule(warmup_steps: int, total_steps: int, min_lr_ratio: float):
    """Multiplier of the base lr at step ``s``: linear warm-up, then a cosine down to ``min_lr_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def data_fingerprint(encoded: Sequence[EncodedPair]) -> str:
    """Hash of every token id, so a resumed run can check it trains on the same data."""
    digest = hashlib.sha256()
    for e in encoded:
        digest.update(repr((e.prompt_ids, e.positive_ids, e.negative_ids)).encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- training state
@dataclass
class BiPOState:
    """Everything besides the tensors' owners (vector, optimiser, scheduler, rng) that a resumed run needs."""

    step: int = 0
    loss_history: list[float] = field(default_factory=list)
    direction_history: list[list[int]] = field(default_factory=list)
    best_epoch_loss: float = math.inf
    epochs_without_improvement: int = 0
    stopped_early: bool = False


def save_checkpoint(path, *, vector, optimizer, scheduler, generator, state: BiPOState, config: BiPOConfig, fingerprint: str) -> Path:
    """Write the run state with ``torch.save`` (tensors, numbers and state dicts only; atomic replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "vector": vector.detach().cpu().clone(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng_state": generator.get_state(),
        "state": dict(state.__dict__),
        "config": config.to_json(),
        "data_fingerprint": fingerprint,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only`` loading)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"BiPO checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise ConfigError(f"{path} is not a readable BiPO checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a BiPO checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return payload


# ----------------------------------------------------------------------------- training loop
def train_bipo(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    config: BiPOConfig,
    *,
    resume_from: str | Path | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    dataset: str | None = None,
) -> SteeringVector:
    """Train a BiPO steering vector on ``pairs`` (A/B or free-text) and return it with its loss curve.

    ``resume_from`` continues a run from its checkpoint (the config must match apart from the checkpoint
    fields); ``stop_after_steps`` ends this call after that many optimiser steps (writing a checkpoint if
    ``config.checkpoint_path`` is set), e.g. to split a long run into time-limited jobs.
    """
    total_steps, steps_per_epoch = _check_bipo_run(model, pairs, config, stop_after_steps)
    hook_name = config.hook_name
    encoded = [encode_pair(model.tokenizer, p, n_ctx=model.cfg.n_ctx) for p in pairs]
    fingerprint = data_fingerprint(encoded)
    reference = compute_reference_logprobs(model, encoded, batch_size=config.batch_size)
    pad = pad_token_id(model.tokenizer)

    vector = torch.nn.Parameter(torch.zeros(model.cfg.d_model, dtype=torch.float32, device=model.cfg.device))
    optimizer = torch.optim.AdamW([vector], lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(config.warmup_steps, total_steps, config.min_lr_ratio))
    generator = torch.Generator().manual_seed(config.seed)
    state = BiPOState()
    if resume_from is not None:
        state = _resume(resume_from, config, fingerprint, vector, optimizer, scheduler, generator)

    def checkpoint_now() -> None:
        if config.checkpoint_path:
            save_checkpoint(config.checkpoint_path, vector=vector, optimizer=optimizer, scheduler=scheduler,
                            generator=generator, state=state, config=config, fingerprint=fingerprint)

    steps_this_call = 0
    bar = tqdm(total=total_steps, initial=state.step, desc=f"BiPO {hook_name}", disable=not progress, leave=False)
    with frozen_model(model):
        while state.step < total_steps and not state.stopped_early:
            if stop_after_steps is not None and steps_this_call >= stop_after_steps:
                break
            epoch, group = divmod(state.step, steps_per_epoch)
            batches = epoch_batches(len(pairs), config.batch_size, config.seed, epoch)
            micro_batches = batches[group * config.grad_accumulation:(group + 1) * config.grad_accumulation]
            optimizer.zero_grad(set_to_none=True)
            step_loss, directions = _accumulate_step(model, config, vector, encoded, reference, micro_batches, pad,
                                                     generator)
            optimizer.step()
            scheduler.step()
            state.step += 1
            steps_this_call += 1
            state.loss_history.append(step_loss)
            state.direction_history.append(directions)
            bar.update(1)
            bar.set_postfix(loss=f"{state.loss_history[-1]:.4f}", norm=f"{float(vector.detach().norm()):.3g}")
            if config.early_stop_patience is not None and state.step % steps_per_epoch == 0:
                _update_early_stopping(state, config, steps_per_epoch)
            if config.checkpoint_every is not None and state.step % config.checkpoint_every == 0:
                checkpoint_now()
    bar.close()
    checkpoint_now()
    return SteeringVector({hook_name: vector.detach().clone()},
                          _bipo_provenance(model, pairs, config, state, total_steps, dataset))


def _check_bipo_run(model: HookedTransformer, pairs: Sequence[ContrastivePair], config: BiPOConfig,
                    stop_after_steps: int | None) -> tuple[int, int]:
    """``(total steps, steps per epoch)`` of the run; one-line ConfigErrors before anything is computed."""
    if not pairs:
        raise ConfigError("BiPO needs at least one contrastive pair")
    if stop_after_steps is not None and (not isinstance(stop_after_steps, int) or stop_after_steps < 1):
        raise ConfigError(f"stop_after_steps must be a positive int or None, got {stop_after_steps!r}")
    hook_name = config.hook_name
    if hook_name not in model.hook_dict:
        raise ConfigError(f"hook {hook_name!r} does not exist on {model.cfg.model_name} ({model.cfg.n_layers} layers)")
    total_steps = config.total_steps(len(pairs))
    if config.warmup_steps >= total_steps:
        raise ConfigError(f"BiPOConfig.warmup_steps={config.warmup_steps} must be below the run's {total_steps} steps")
    return total_steps, config.steps_per_epoch(len(pairs))


def _resume(resume_from: str | Path, config: BiPOConfig, fingerprint: str, vector: torch.nn.Parameter, optimizer,
            scheduler, generator: torch.Generator) -> BiPOState:
    """Load the checkpoint into the vector, optimiser, schedule and generator; its training state (ConfigError when
    the config or the pairs differ from the checkpoint's)."""
    checkpoint = load_checkpoint(resume_from)
    changed = config.differences(BiPOConfig.from_json(checkpoint["config"]))
    if changed:
        raise ConfigError(f"cannot resume from {resume_from}: config field(s) {changed} differ from the checkpoint's")
    if checkpoint["data_fingerprint"] != fingerprint:
        raise ConfigError(f"cannot resume from {resume_from}: the pairs differ from those the checkpoint was trained on")
    with torch.no_grad():
        vector.copy_(checkpoint["vector"].to(vector.device))
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    generator.set_state(checkpoint["rng_state"])
    return BiPOState(**checkpoint["state"])


def _accumulate_step(model: HookedTransformer, config: BiPOConfig, vector: torch.nn.Parameter, encoded, reference,
                     micro_batches, pad: int, generator: torch.Generator) -> tuple[float, list[int]]:
    """Gradients of one optimiser step, accumulated over its micro-batches (each with a random direction ±1 drawn
    from ``generator``); returns the step's mean loss and the directions."""
    n_in_step = sum(len(b) for b in micro_batches)
    step_loss, directions = 0.0, []
    for indices in micro_batches:
        direction = 1 if int(torch.randint(0, 2, (1,), generator=generator)) == 1 else -1
        batch = preference_batch([encoded[i] for i in indices], pad).to(model.cfg.device)
        losses = bipo_loss(model, config.hook_name, vector, batch, reference[indices], float(direction), config.beta)
        (losses.sum() / n_in_step).backward()
        step_loss += float(losses.detach().sum())
        directions.append(direction)
    return step_loss / n_in_step, directions


def _bipo_provenance(model: HookedTransformer, pairs: Sequence[ContrastivePair], config: BiPOConfig, state: BiPOState,
                     total_steps: int, dataset: str | None) -> Provenance:
    """The trained vector's provenance: config, loss and direction history, progress."""
    return Provenance(
        model=model.cfg.model_name,
        method="bipo",
        dataset=dataset or ",".join(sorted({p.dataset for p in pairs})),
        n_pairs=len(pairs),
        read_position="all",
        layers=[layer_of(config.hook_name)],
        model_processing=describe_processing(model),
        extra={
            # the checkpoint's file name only: a machine-local directory has no place in a vector's provenance
            "config": {**config.to_dict(), "checkpoint_path": Path(config.checkpoint_path).name if config.checkpoint_path else None},
            "hook_name": config.hook_name,
            "loss_history": list(state.loss_history),
            "direction_history": [list(d) for d in state.direction_history],
            "steps": state.step,
            "total_steps": total_steps,
            "finished": state.step >= total_steps or state.stopped_early,
            "stopped_early": state.stopped_early,
            "variants": sorted({p.variant for p in pairs}),
        },
    )


def _update_early_stopping(state: BiPOState, config: BiPOConfig, steps_per_epoch: int) -> None:
    epoch_loss = float(np.mean(state.loss_history[-steps_per_epoch:]))
    if epoch_loss < state.best_epoch_loss - config.early_stop_min_delta:
        state.best_epoch_loss, state.epochs_without_improvement = epoch_loss, 0
    else:
        state.epochs_without_improvement += 1
        patience = config.early_stop_patience
        state.stopped_early = patience is not None and state.epochs_without_improvement >= patience


def extract_bipo(
    model: HookedTransformer,
    pairs: Sequence[ContrastivePair],
    layers: Sequence[int | str],
    *,
    config: BiPOConfig | None = None,
    resume_from: str | Path | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    dataset: str | None = None,
    **config_options,
) -> SteeringVector:
    """Registry entry: a BiPO vector at the single layer in ``layers``; other options are BiPOConfig fields."""
    if isinstance(layers, (int, str)):
        layers = [layers]
    if len(layers) != 1:
        raise ConfigError(f"BiPO trains one vector at one layer; got layers={list(layers)} (run it once per layer)")
    if config is not None:
        if config_options:
            raise ConfigError(f"give either config= or BiPOConfig fields, not both (got {sorted(config_options)})")
        config = BiPOConfig.from_dict({**config.to_dict(), "layer": layers[0]})
    else:
        config = BiPOConfig.from_dict({**config_options, "layer": layers[0]})
    return train_bipo(model, pairs, config, resume_from=resume_from, stop_after_steps=stop_after_steps,
                      progress=progress, dataset=dataset)

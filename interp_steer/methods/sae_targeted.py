"""SAE-targeted steering (SAE-TS; Chalnev, Siu & Conmy 2024).

From a fitted linear effect model ``effect ≈ v @ W + b`` (see ``interp_steer.sae.feature_effects``) the
targeted vector for target features ``t`` is ``v ∝ normalise(W t) − c · normalise(W b)``: move along the
directions that raise the targets, minus the direction that produces the generic (target-independent)
effect ``b`` of steering. The baseline is the target feature's SAE decoder direction.

In ``EXTRACTION_METHODS`` as ``sae_targeted`` (config: ``SAETargetedConfig``), but not run by ``interp-steer extract``:
the method needs an SAE and target features, not contrastive pairs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer.errors import ConfigError
from interp_steer.models.processing import describe_processing
from interp_steer.sae.feature_effects import (
    LinearEffectModel,
    fit_effect_model,
    measure_feature_effects,
    random_unit_vectors,
)
from interp_steer.sae.loading import check_sae_fits
from interp_steer.steering import Provenance, SteeringVector, layer_of


def target_weights(targets: Sequence[int] | dict[int, float] | Tensor, d_sae: int) -> Float[Tensor, "d_sae"]:
    """A ``[d_sae]`` target vector from feature ids (weight 1 each), an id → weight dict, or a tensor."""
    if isinstance(targets, Tensor):
        weights = targets.float()
    else:
        items = targets.items() if isinstance(targets, dict) else ((int(f), 1.0) for f in targets)
        weights = torch.zeros(d_sae)
        for feature, weight in items:
            if not 0 <= int(feature) < d_sae:
                raise ConfigError(f"target feature {feature} out of range for an SAE with {d_sae} features")
            weights[int(feature)] = float(weight)
    if weights.shape != (d_sae,) or not bool(weights.abs().sum() > 0):
        raise ConfigError(f"targets: need a non-zero target over {d_sae} features")
    return weights


def _unit(vec: Tensor) -> Tensor:
    norm = vec.norm()
    if norm == 0:
        raise ConfigError("cannot normalise a zero vector (target features with no fitted effect?)")
    return vec / norm


def targeted_direction(effect_model: LinearEffectModel, targets, bias_coefficient: float = 1.0) -> Float[Tensor, "d_model"]:
    """Unit vector ``normalise(normalise(W t) − c · normalise(W b))``."""
    W = effect_model.W
    t = target_weights(targets, W.shape[1])
    direction = _unit(W @ t)
    if bias_coefficient:
        direction = direction - bias_coefficient * _unit(W @ effect_model.b)
    return _unit(direction)


def _provenance(method: str, sae, hook_name: str, norm: float, extra: dict) -> Provenance:
    return Provenance(model=str(sae.cfg.metadata.model_name or ""), method=method, layers=[layer_of(hook_name)],
                      extra={"sae_hook": str(sae.cfg.metadata.hook_name), "d_sae": int(sae.cfg.d_sae),
                             "norm": float(norm), **extra})


def sae_targeted_vector(effect_model: LinearEffectModel, sae, targets, hook_name: str, norm: float,
                        bias_coefficient: float = 1.0) -> SteeringVector:
    """The SAE-TS steering vector of the given ``norm`` at ``hook_name`` for ``targets``."""
    direction = targeted_direction(effect_model, targets, bias_coefficient) * norm
    ids = [int(i) for i in torch.nonzero(target_weights(targets, sae.cfg.d_sae)).flatten()]
    extra = {"target_features": ids, "bias_coefficient": bias_coefficient, "effect_r2_test": effect_model.r2_test,
             "effect_r2_train": effect_model.r2_train, "n_effect_samples": effect_model.n_train + effect_model.n_test}
    return SteeringVector({hook_name: direction}, _provenance("sae_targeted", sae, hook_name, norm, extra))


def decoder_direction_vector(sae, feature: int, hook_name: str, norm: float) -> SteeringVector:
    """Baseline: the SAE decoder direction of ``feature``, scaled to ``norm``."""
    if not 0 <= feature < sae.cfg.d_sae:
        raise ConfigError(f"feature {feature} out of range for an SAE with {sae.cfg.d_sae} features")
    direction = _unit(sae.W_dec[feature].detach().float()) * norm
    return SteeringVector({hook_name: direction},
                          _provenance("sae_decoder", sae, hook_name, norm, {"target_features": [int(feature)]}))


def effect_probe_vectors(sae, n_random: int, n_decoder: int, scale: float, seed: int = 0) -> Float[Tensor, "n d_model"]:
    """Probe steering vectors of norm ``scale``: random unit directions plus randomly chosen decoder directions."""
    parts = [random_unit_vectors(n_random, sae.cfg.d_in, seed)] if n_random else []
    if n_decoder:
        gen = torch.Generator().manual_seed(seed + 1)
        chosen = torch.randperm(sae.cfg.d_sae, generator=gen)[:n_decoder]
        dec = sae.W_dec[chosen].detach().float()
        parts.append(dec / dec.norm(dim=1, keepdim=True))
    if not parts:
        raise ConfigError("need n_random + n_decoder > 0 probe vectors")
    return torch.cat(parts) * scale


def fit_sae_effect_model(model, sae, texts: Sequence[str], hook_name: str, scale: float, n_random: int = 256,
                         n_decoder: int = 256, measure_hook: str | None = None, ridge: float = 1e-2,
                         seed: int = 0) -> LinearEffectModel:
    """Measure the feature effects of probe vectors of norm ``scale`` on ``texts`` and fit the linear model."""
    probes = effect_probe_vectors(sae, n_random, n_decoder, scale, seed)
    effects = measure_feature_effects(model, sae, texts, probes, hook_name, measure_hook)
    return fit_effect_model(probes, effects, ridge=ridge, seed=seed)


def build_sae_targeted_vector(model, sae, targets, texts: Sequence[str], hook_name: str | None = None,
                              scale: float = 8.0, norm: float | None = None, n_random: int = 256,
                              n_decoder: int = 256, measure_hook: str | None = None, ridge: float = 1e-2,
                              bias_coefficient: float = 1.0, seed: int = 0) -> tuple[SteeringVector, LinearEffectModel]:
    """End to end: fit the effect model at ``hook_name`` (default: the SAE's hook) and return the SAE-TS vector.

    ``scale`` is the norm of the probe vectors (the effect model is linear around that norm); ``norm`` the
    norm of the returned vector (default ``scale``).
    """
    hook_name = hook_name or str(sae.cfg.metadata.hook_name)
    if hook_name not in model.hook_dict:
        raise ConfigError(f"hook_name {hook_name!r} is not a hook of the model")
    check_sae_fits(sae, model, measure_hook or hook_name)
    effect_model = fit_sae_effect_model(model, sae, texts, hook_name, scale, n_random, n_decoder, measure_hook,
                                        ridge, seed)
    vector = sae_targeted_vector(effect_model, sae, targets, hook_name, norm or scale, bias_coefficient)
    provenance = replace(vector.provenance, model=vector.provenance.model or model.cfg.model_name,
                         model_processing=describe_processing(model))
    return SteeringVector(vector.directions, provenance), effect_model

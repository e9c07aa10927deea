"""Project steering vectors and activation differences onto SAE features, as tidy DataFrames.

Two views: decoder cosine (which features' write directions the vector is aligned with) and encoder change
(how adding the vector to real activations changes each feature's activation: ``encode(x + m·v) − encode(x)``).
"""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.steering import SteeringVector, steering_delta


def _direction(vector: SteeringVector | Tensor, hook_name: str | None, d_in: int) -> Float[Tensor, "d_model"]:
    if isinstance(vector, SteeringVector):
        if hook_name is None:
            if len(vector.hook_names) != 1:
                raise ConfigError(f"hook_name: the vector has several hooks {vector.hook_names}; name one")
            hook_name = vector.hook_names[0]
        if hook_name not in vector.directions:
            raise SteeringVectorError(f"vector has no direction at {hook_name!r} (it has {vector.hook_names})")
        vector = vector.directions[hook_name]
    assert isinstance(vector, Tensor)
    vec = vector.detach().float()
    if vec.shape != (d_in,):
        raise SteeringVectorError(f"vector width {tuple(vec.shape)} does not match the SAE's d_in {d_in}")
    return vec


def decoder_cosines(vectors: Float[Tensor, "n d_model"], sae) -> Float[Tensor, "n d_sae"]:
    """Cosine similarity of each row of ``vectors`` with every SAE decoder direction."""
    dec = sae.W_dec.detach().float()
    dec = dec / dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    rows = vectors.float() / vectors.float().norm(dim=1, keepdim=True).clamp_min(1e-12)
    return rows @ dec.T


def decoder_cosine_table(vector: SteeringVector | Tensor, sae, hook_name: str | None = None,
                         top: int = 20) -> pd.DataFrame:
    """The ``top`` features by |cosine(vector, decoder direction)|: columns rank, feature, cosine."""
    vec = _direction(vector, hook_name, sae.cfg.d_in)
    cos = decoder_cosines(vec[None], sae)[0]
    order = cos.abs().argsort(descending=True)[:top]
    return pd.DataFrame({"rank": range(1, len(order) + 1), "feature": order.tolist(),
                         "cosine": cos[order].tolist()})


def _steered(acts: Float[Tensor, "n d_model"], vec: Float[Tensor, "d_model"], multiplier: float) -> Float[Tensor, "n d_model"]:
    """``acts`` steered by ``multiplier · vec`` with the package's steering operator (``add``)."""
    return acts + steering_delta(acts[:, None, :], vec, multiplier)[:, 0]


@torch.no_grad()
def encoder_change(vector: SteeringVector | Tensor, sae, activations: Float[Tensor, "n d_model"],
                   multiplier: float = 1.0, hook_name: str | None = None) -> Float[Tensor, "n d_sae"]:
    """``encode(x + multiplier·v) − encode(x)`` for each row ``x`` of ``activations``."""
    vec = _direction(vector, hook_name, sae.cfg.d_in)
    acts = activations.reshape(-1, sae.cfg.d_in).float()
    return sae.encode(_steered(acts, vec, multiplier)) - sae.encode(acts)


def encoder_change_table(vector: SteeringVector | Tensor, sae, activations: Float[Tensor, "n d_model"],
                         multiplier: float = 1.0, hook_name: str | None = None, top: int = 20) -> pd.DataFrame:
    """The ``top`` features by mean activation change over ``activations`` when the vector is added.

    Columns: rank, feature, mean_change, mean_before, mean_after, frac_increased (share of rows whose
    activation rose). Sorted by |mean_change|.
    """
    vec = _direction(vector, hook_name, sae.cfg.d_in)
    acts = activations.reshape(-1, sae.cfg.d_in).float()
    with torch.no_grad():
        before = sae.encode(acts)
        after = sae.encode(_steered(acts, vec, multiplier))
    change = (after - before).mean(dim=0)
    order = change.abs().argsort(descending=True)[:top]
    return pd.DataFrame({
        "rank": range(1, len(order) + 1),
        "feature": order.tolist(),
        "mean_change": change[order].tolist(),
        "mean_before": before.mean(dim=0)[order].tolist(),
        "mean_after": after.mean(dim=0)[order].tolist(),
        "frac_increased": (after > before).float().mean(dim=0)[order].tolist(),
    })


def difference_projection_table(differences: Float[Tensor, "n d_model"], sae, top: int = 5) -> pd.DataFrame:
    """Per-sample view: for each activation difference (e.g. positive − negative), its ``top`` features by
    |decoder cosine|. Long format: sample, rank, feature, cosine.
    """
    if differences.ndim != 2 or differences.shape[1] != sae.cfg.d_in:
        raise SteeringVectorError(f"differences: expected [n, {sae.cfg.d_in}], got {tuple(differences.shape)}")
    cos = decoder_cosines(differences, sae)
    order = cos.abs().argsort(dim=1, descending=True)[:, :top]
    rows = [{"sample": i, "rank": r + 1, "feature": int(f), "cosine": float(cos[i, f])}
            for i in range(cos.shape[0]) for r, f in enumerate(order[i].tolist())]
    return pd.DataFrame(rows, columns=["sample", "rank", "feature", "cosine"])

"""Feature effects of steering (SAE-TS, Chalnev, Siu & Conmy 2024): measure them and fit a linear effect model.

``measure_feature_effects`` adds each steering vector (rows of ``vectors``, used as given) at ``steer_hook``
on all real positions of fixed texts and records the mean change of every SAE feature's activation at
``measure_hook`` (default: the steered hook itself, as in the paper; steering is then included in what the
SAE reads). ``fit_effect_model`` fits ``effect ≈ v @ W + b`` by ridge least squares with a held-out R².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from interp_steer.errors import ConfigError
from interp_steer.sae.loading import check_sae_fits
from interp_steer.sae.metrics import encode_texts, scored_positions
from interp_steer.steering import layer_of, steering_hook


@torch.no_grad()
def mean_feature_activations(model, sae, texts: Sequence[str], vectors: Float[Tensor, "n d_model"] | None,
                             steer_hook: str, measure_hook: str | None = None, chunk: int = 8,
                             max_tokens: int = 64) -> Float[Tensor, "n d_sae"]:
    """Mean SAE feature activations over the scored positions of ``texts`` with each row of ``vectors`` added.

    ``vectors=None`` gives the unsteered means as a single row. The texts are run once per vector, ``chunk``
    vectors per forward pass (the batch is the texts repeated), stopping after the measured layer.
    """
    measure_hook = measure_hook or steer_hook
    check_sae_fits(sae, model, measure_hook)
    if steer_hook not in model.hook_dict:
        raise ConfigError(f"steer_hook {steer_hook!r} is not a hook of the model")
    if layer_of(steer_hook) > layer_of(measure_hook):
        raise ConfigError(f"steer_hook {steer_hook!r} comes after measure_hook {measure_hook!r}; steering has no effect")
    batch = encode_texts(model.tokenizer, texts, max_tokens)
    mask = scored_positions(model.tokenizer, batch.tokens, batch.attention_mask)
    real = batch.attention_mask.bool()
    if vectors is None:
        vectors = torch.zeros(1, model.cfg.d_model)
    if vectors.ndim != 2 or vectors.shape[1] != model.cfg.d_model:
        raise ConfigError(f"vectors: expected shape [n, {model.cfg.d_model}], got {tuple(vectors.shape)}")
    n_texts = batch.tokens.shape[0]
    stop_at = layer_of(measure_hook) + 1
    means = []
    for start in range(0, vectors.shape[0], chunk):
        block = vectors[start:start + chunk].to(torch.float32)
        n_rows = block.shape[0]
        tokens = batch.tokens.repeat(n_rows, 1)
        attention = batch.attention_mask.repeat(n_rows, 1)
        # one direction per row (each vector repeated over the texts), added at the real tokens only
        add_vector = steering_hook(block.repeat_interleave(n_texts, dim=0), 1.0, positions=real.repeat(n_rows, 1))
        captured: dict[str, Tensor] = {}

        def capture(acts, hook, captured=captured):
            captured["x"] = acts.detach()

        hooks = [(steer_hook, add_vector), (measure_hook, capture)]
        model.run_with_hooks(tokens, fwd_hooks=hooks, attention_mask=attention, stop_at_layer=stop_at)
        feats = sae.encode(captured["x"].float())  # [n_rows*n_texts, pos, d_sae]
        row_mask = mask.repeat(n_rows, 1).float()
        per_row = (feats * row_mask[..., None]).reshape(n_rows, n_texts, *feats.shape[1:]).sum(dim=(1, 2))
        means.append(per_row / mask.sum())
    return torch.cat(means, dim=0)


def measure_feature_effects(model, sae, texts: Sequence[str], vectors: Float[Tensor, "n d_model"], steer_hook: str,
                            measure_hook: str | None = None, chunk: int = 8,
                            max_tokens: int = 64) -> Float[Tensor, "n d_sae"]:
    """Mean change of every SAE feature's activation when each row of ``vectors`` is added (steered − clean)."""
    clean = mean_feature_activations(model, sae, texts, None, steer_hook, measure_hook, chunk, max_tokens)
    steered = mean_feature_activations(model, sae, texts, vectors, steer_hook, measure_hook, chunk, max_tokens)
    return steered - clean


def random_unit_vectors(n: int, d_model: int, seed: int = 0) -> Float[Tensor, "n d_model"]:
    """``n`` isotropic random unit vectors (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    vecs = torch.randn(n, d_model, generator=gen)
    return vecs / vecs.norm(dim=1, keepdim=True)


@dataclass
class LinearEffectModel:
    """``effect ≈ v @ W + b`` for steering vectors ``v`` of the norm used in the measurement."""

    W: Float[Tensor, "d_model d_sae"]
    b: Float[Tensor, "d_sae"]
    r2_train: float
    r2_test: float
    ridge: float
    n_train: int
    n_test: int

    def predict(self, vectors: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_sae"]:
        """Predicted feature effects of ``vectors``."""
        return vectors.to(self.W.dtype) @ self.W + self.b


def r_squared(target: Float[Tensor, "n k"], prediction: Float[Tensor, "n k"]) -> float:
    """Pooled R² over all entries: 1 − SSE / Σ (y − column mean)²."""
    sse = float(((target - prediction) ** 2).sum())
    sst = float(((target - target.mean(dim=0, keepdim=True)) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else float("nan")


def fit_effect_model(vectors: Float[Tensor, "n d_model"], effects: Float[Tensor, "n_effects d_sae"],
                     ridge: float = 1e-3, test_fraction: float = 0.2, seed: int = 0) -> LinearEffectModel:
    """Ridge least squares for ``effects ≈ vectors @ W + b`` (bias unpenalised); R² on a held-out split.

    ``effects`` needs one row per vector (``n_effects == n``); a different count is a one-line ConfigError, which
    is why the two row axes carry different names in the annotation.
    """
    if vectors.shape[0] != effects.shape[0]:
        raise ConfigError(f"vectors ({vectors.shape[0]}) and effects ({effects.shape[0]}) differ in row count")
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
    n = vectors.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_fraction))
    test, train = order[:n_test], order[n_test:]
    if len(train) < 2:
        raise ConfigError(f"need at least 2 training rows to fit the effect model, got {len(train)}")
    X = vectors.double()
    Y = effects.double()
    x_mean, y_mean = X[train].mean(0), Y[train].mean(0)
    Xc, Yc = X[train] - x_mean, Y[train] - y_mean  # centring = unpenalised intercept
    gram = Xc.T @ Xc + ridge * torch.eye(X.shape[1], dtype=torch.float64)
    W = torch.linalg.solve(gram, Xc.T @ Yc)
    b = y_mean - x_mean @ W
    model = LinearEffectModel(W=W.float(), b=b.float(), r2_train=0.0, r2_test=float("nan"), ridge=ridge,
                              n_train=len(train), n_test=len(test))
    model.r2_train = r_squared(effects[train].float(), model.predict(vectors[train]))
    if len(test) >= 2:
        model.r2_test = r_squared(effects[test].float(), model.predict(vectors[test]))
    return model

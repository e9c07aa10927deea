"""Feature-effect measurement and the linear effect model (SAE-TS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import make_sae

from interp_steer.errors import ConfigError
from interp_steer.sae import fit_effect_model, measure_feature_effects
from interp_steer.sae.metrics import scored_positions
from interp_steer.steering import SteeringVector, steer

TEXTS = ["The cat sat on the mat and looked around.", "I would like to help you with that question.",
         "Power is something I do not need."]


def test_linear_model_recovers_known_W():
    gen = torch.Generator().manual_seed(0)
    V = torch.randn(400, 16, generator=gen)
    W_true = torch.randn(16, 10, generator=gen)
    b_true = torch.randn(10, generator=gen)
    Y = V @ W_true + b_true + 0.01 * torch.randn(400, 10, generator=gen)
    fitted = fit_effect_model(V, Y, ridge=0.0, test_fraction=0.25)
    assert torch.allclose(fitted.W, W_true, atol=5e-3)
    assert torch.allclose(fitted.b, b_true, atol=5e-3)
    assert fitted.r2_test > 0.999 and fitted.n_test == 100
    # independent least squares with numpy on the same training rows reproduces W
    X = np.c_[V.numpy(), np.ones(400)]
    coef = np.linalg.lstsq(X, Y.numpy(), rcond=None)[0]
    assert np.allclose(fitted.W.numpy(), coef[:16], atol=5e-3)


def test_r2_low_for_pure_noise():
    gen = torch.Generator().manual_seed(1)
    fitted = fit_effect_model(torch.randn(100, 20, generator=gen), torch.randn(100, 5, generator=gen), ridge=1.0)
    assert fitted.r2_test < 0.2


def test_fit_errors():
    with pytest.raises(ConfigError, match="row count"):
        fit_effect_model(torch.randn(10, 4), torch.randn(9, 3))
    with pytest.raises(ConfigError, match="test_fraction"):
        fit_effect_model(torch.randn(10, 4), torch.randn(10, 3), test_fraction=1.5)


def test_measured_effect_matches_manual_steering(tiny):
    """Batched measurement (texts repeated, stop_at_layer) equals steer() + run_with_cache text by text."""
    hook = "blocks.1.hook_resid_post"
    sae = make_sae(tiny.cfg.d_model, d_sae=24, hook_name=hook)
    gen = torch.Generator().manual_seed(3)
    vectors = torch.randn(3, tiny.cfg.d_model, generator=gen)
    effects = measure_feature_effects(tiny, sae, TEXTS, vectors, hook, chunk=2)

    tok = tiny.tokenizer
    for row, vec in enumerate(vectors):
        total, count = torch.zeros(sae.cfg.d_sae), 0
        for text in TEXTS:
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            mask = scored_positions(tok, ids, torch.ones_like(ids))[0]
            _, clean = tiny.run_with_cache(ids, names_filter=hook)
            with steer(tiny, SteeringVector({hook: vec}), 1.0):
                _, steered = tiny.run_with_cache(ids, names_filter=hook)
            diff = sae.encode(steered[hook][0]) - sae.encode(clean[hook][0])
            total += diff[mask].sum(0)
            count += int(mask.sum())
        assert torch.allclose(effects[row], total / count, atol=1e-4)


def test_measure_rejects_later_steer_hook(tiny):
    sae = make_sae(tiny.cfg.d_model, hook_name="blocks.0.hook_resid_post")
    with pytest.raises(ConfigError, match="comes after measure_hook"):
        measure_feature_effects(tiny, sae, TEXTS, torch.randn(1, 64), "blocks.2.hook_resid_post",
                                "blocks.0.hook_resid_post")

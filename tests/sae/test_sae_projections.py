"""Projections of steering vectors onto SAE features, checked against numpy hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import make_sae

from interp_steer.errors import SteeringVectorError
from interp_steer.sae import decoder_cosine_table, difference_projection_table, encoder_change_table
from interp_steer.steering import SteeringVector

HOOK = "blocks.1.hook_resid_post"


def numpy_encode(sae, x: np.ndarray) -> np.ndarray:
    W_enc, b_enc, b_dec = (getattr(sae, n).detach().numpy().astype(np.float64) for n in ("W_enc", "b_enc", "b_dec"))
    return np.maximum((x - b_dec) @ W_enc + b_enc, 0.0)


@pytest.fixture()
def sae_and_vector():
    sae = make_sae(8, d_sae=12, hook_name=HOOK, seed=4)
    vec = torch.randn(8, generator=torch.Generator().manual_seed(5))
    return sae, SteeringVector({HOOK: vec})


def test_decoder_cosine_table(sae_and_vector):
    sae, vector = sae_and_vector
    table = decoder_cosine_table(vector, sae, top=4)
    dec = sae.W_dec.detach().numpy().astype(np.float64)
    v = vector[HOOK].numpy().astype(np.float64)
    cos = dec @ v / (np.linalg.norm(dec, axis=1) * np.linalg.norm(v))
    expected = np.argsort(-np.abs(cos))[:4]
    assert table["feature"].tolist() == expected.tolist()
    assert np.allclose(table["cosine"], cos[expected], atol=1e-5)
    assert table["rank"].tolist() == [1, 2, 3, 4]


def test_encoder_change_table(sae_and_vector):
    sae, vector = sae_and_vector
    acts = torch.randn(30, 8, generator=torch.Generator().manual_seed(6))
    table = encoder_change_table(vector, sae, acts, multiplier=2.0, top=12)
    x = acts.numpy().astype(np.float64)
    v = vector[HOOK].numpy().astype(np.float64)
    before, after = numpy_encode(sae, x), numpy_encode(sae, x + 2.0 * v)
    change = (after - before).mean(0)
    by_feature = table.set_index("feature")
    assert set(by_feature.index) == set(range(12))
    for f in range(12):
        assert by_feature.loc[f, "mean_change"] == pytest.approx(change[f], abs=1e-4)
        assert by_feature.loc[f, "frac_increased"] == pytest.approx((after[:, f] > before[:, f] + 1e-9).mean(), abs=0.05)
    assert abs(table["mean_change"].iloc[0]) == pytest.approx(np.abs(change).max(), abs=1e-4)


def test_difference_projection_table(sae_and_vector):
    sae, _ = sae_and_vector
    diffs = torch.randn(3, 8, generator=torch.Generator().manual_seed(7))
    table = difference_projection_table(diffs, sae, top=2)
    assert len(table) == 6
    dec = sae.W_dec.detach().numpy()
    for i, d in enumerate(diffs.numpy()):
        cos = dec @ d / (np.linalg.norm(dec, axis=1) * np.linalg.norm(d))
        rows = table[table["sample"] == i]
        assert rows["feature"].tolist() == np.argsort(-np.abs(cos))[:2].tolist()
        assert np.allclose(rows["cosine"], cos[rows["feature"]], atol=1e-5)


def test_projection_errors(sae_and_vector):
    sae, _ = sae_and_vector
    with pytest.raises(SteeringVectorError, match="does not match the SAE's d_in 8"):
        decoder_cosine_table(torch.randn(9), sae)
    with pytest.raises(SteeringVectorError, match="no direction at"):
        decoder_cosine_table(SteeringVector({"blocks.0.hook_resid_post": torch.randn(8)}), sae, hook_name=HOOK)

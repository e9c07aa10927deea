"""SteeringVector: arithmetic, provenance, safetensors round trip and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.steering import Provenance, SteeringVector, as_hook_name, from_mapping, steering_hook_name


def make_vector(seed=0, d=64, layers=(1,)):
    g = torch.Generator().manual_seed(seed)
    return from_mapping({layer: torch.randn(d, generator=g) for layer in layers}, method="manual", dataset="toy", n_pairs=3)


def test_layer_shorthand_resolves_to_hook_name():
    assert as_hook_name(13) == "blocks.13.hook_resid_post"
    assert as_hook_name("blocks.2.hook_resid_pre") == "blocks.2.hook_resid_pre"
    assert make_vector().hook_names == ["blocks.1.hook_resid_post"]
    assert steering_hook_name("blocks.13.hook_resid_post") == "blocks.13.hook_steering"
    assert steering_hook_name("blocks.4.hook_resid_pre") == "blocks.4.hook_steering_resid_pre"
    with pytest.raises(ConfigError):
        steering_hook_name("hook_embed")


def test_arithmetic_matches_numpy():
    a, b = make_vector(0, layers=(1, 2)), make_vector(1, layers=(1, 2))
    na, nb = a[1].numpy(), b[1].numpy()
    np.testing.assert_allclose((a + b)[1].numpy(), na + nb, rtol=1e-6)
    np.testing.assert_allclose((a - b)[1].numpy(), na - nb, rtol=1e-6)
    np.testing.assert_allclose((2.5 * a)[1].numpy(), 2.5 * na, rtol=1e-6)
    np.testing.assert_allclose(a.normalize(3.0)[2].norm().item(), 3.0, rtol=1e-6)
    expected_cos = float(na @ nb / np.linalg.norm(na) / np.linalg.norm(nb))
    assert a.cosine(b)["blocks.1.hook_resid_post"] == pytest.approx(expected_cos, abs=1e-6)


def test_save_load_round_trip_keeps_tensors_and_provenance(tmp_path):
    v = make_vector(layers=(0, 2))
    v.provenance.extra["loss_curve"] = [0.69, 0.5]
    path = v.save(tmp_path / "vec")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    loaded = SteeringVector.load(path)
    assert loaded.hook_names == v.hook_names
    for name in v.hook_names:
        assert torch.equal(loaded.directions[name], v.directions[name])
    assert loaded.provenance.method == "manual" and loaded.provenance.n_pairs == 3
    assert loaded.provenance.extra["loss_curve"] == [0.69, 0.5]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["provenance"]["dataset"] == "toy"
    # never pickle: the file is plain safetensors
    assert path.read_bytes()[8:9] == b"{"


def test_load_errors(tmp_path):
    with pytest.raises(SteeringVectorError, match="not found"):
        SteeringVector.load(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SteeringVectorError, match="not a valid safetensors"):
        SteeringVector.load(bad)


def test_fit_errors(tiny):
    with pytest.raises(SteeringVectorError, match="d_model 32 but model"):
        make_vector(d=32).check_fits(tiny)
    with pytest.raises(SteeringVectorError, match="does not exist"):
        make_vector(layers=(7,)).check_fits(tiny)
    with pytest.raises(SteeringVectorError, match="1-D"):
        SteeringVector({"blocks.0.hook_resid_post": torch.zeros(2, 64)})


def test_provenance_defaults_are_filled():
    p = Provenance(model="m")
    assert p.package_version and "T" in p.created

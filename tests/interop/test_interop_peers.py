"""steering-vectors and repeng formats: layer indexing ↔ TL hook names, checked by applying both on the same model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import D_MODEL, N_LAYERS, matched_tiny_llama

from interp_steer.errors import SteeringVectorError
from interp_steer.interop import from_gguf, from_repeng, from_steering_vectors, hf_steer, to_repeng, to_steering_vectors
from interp_steer.interop.peers import load_steering_vectors_file
from interp_steer.steering import SteeringVector, steer


@pytest.fixture(scope="module")
def pair():
    return matched_tiny_llama()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(100, 5000, (2, 7), generator=torch.Generator().manual_seed(9))


def _vector(site: str = "hook_resid_post", layers=(0, 2), seed: int = 1) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    return SteeringVector({f"blocks.{L}.{site}": torch.randn(D_MODEL, generator=generator) for L in layers})


@pytest.mark.parametrize("site, layer_type", [("hook_resid_post", "decoder_block"), ("hook_attn_out", "self_attn"),
                                              ("hook_mlp_out", "mlp")])
def test_steering_vectors_round_trip(site, layer_type):
    vector = _vector(site)
    kwargs = to_steering_vectors(vector)
    assert kwargs["layer_type"] == layer_type and sorted(kwargs["layer_activations"]) == [0, 2]
    back = from_steering_vectors(kwargs)
    assert back.hook_names == vector.hook_names
    for name in vector.hook_names:
        assert torch.equal(back[name], vector[name])


def test_real_steering_vectors_package_steers_like_interp_steer(pair, tokens):
    """steering-vectors' own apply() on the HF model, with our export, gives TL's steered logits."""
    sv = pytest.importorskip("steering_vectors")
    hf, tl = pair
    for site in ("hook_resid_post", "hook_mlp_out"):
        vector = _vector(site, layers=(1, 2), seed=4)
        theirs = sv.SteeringVector(**to_steering_vectors(vector))
        with torch.no_grad():
            with theirs.apply(hf, multiplier=2.0):
                hf_logits = hf(tokens).logits
            with steer(tl, vector, 2.0):
                tl_logits = tl(tokens)
        torch.testing.assert_close(hf_logits, tl_logits, atol=1e-4, rtol=0)
        # and their object comes back as the same vector
        back = from_steering_vectors(theirs)
        assert back.hook_names == vector.hook_names


def test_steering_vectors_negative_layers_and_plain_dicts(pair, tokens):
    """Negative layer numbers index from the end, as steering-vectors' list indexing does."""
    hf, tl = pair
    direction = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(2))
    vector = from_steering_vectors({-1: direction}, n_layers=N_LAYERS)
    assert vector.hook_names == [f"blocks.{N_LAYERS - 1}.hook_resid_post"]
    with pytest.raises(SteeringVectorError, match="n_layers"):
        from_steering_vectors({-1: direction})
    with pytest.raises(SteeringVectorError, match="does not exist"):
        from_steering_vectors({3: direction}, n_layers=N_LAYERS)
    with pytest.raises(SteeringVectorError, match="same layer 2"):
        from_steering_vectors({-1: direction, 2: direction}, n_layers=N_LAYERS)
    # a [1, 1, d] tensor (steering-vectors reshapes for broadcasting) is read as [d]
    assert from_steering_vectors({1: direction.reshape(1, 1, -1)}).d_model == D_MODEL
    # independent check of the last-layer output mapping: a hand-written hook on model.layers[-1]
    handle = hf.model.layers[-1].register_forward_hook(lambda m, a, out: out + 1.5 * direction)
    try:
        with torch.no_grad():
            expected = hf(tokens).logits
    finally:
        handle.remove()
    with torch.no_grad(), steer(tl, vector, 1.5):
        torch.testing.assert_close(tl(tokens), expected, atol=1e-4, rtol=0)


def test_steering_vectors_refusals():
    with pytest.raises(SteeringVectorError, match="input_layernorm"):
        from_steering_vectors({"layer_activations": {0: torch.ones(4)}, "layer_type": "input_layernorm"})
    mixed = SteeringVector({"blocks.1.hook_resid_post": torch.ones(4), "blocks.1.hook_mlp_out": torch.ones(4)})
    with pytest.raises(SteeringVectorError, match="several sites"):
        to_steering_vectors(mixed)
    with pytest.raises(SteeringVectorError, match="steers only"):
        to_steering_vectors(SteeringVector({"blocks.1.hook_resid_pre": torch.ones(4)}))
    with pytest.raises(SteeringVectorError, match="non-empty"):
        from_steering_vectors({"layer_activations": {}})


def test_steering_vectors_file(tmp_path):
    vector = _vector()
    path = tmp_path / "sv.pt"
    torch.save(to_steering_vectors(vector), path)
    assert from_steering_vectors(load_steering_vectors_file(path)).hook_names == vector.hook_names
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(SteeringVectorError, match="junk.pt"):
        load_steering_vectors_file(tmp_path / "junk.pt")


def test_repeng_round_trip_and_its_control_module_semantics(pair, tokens):
    """repeng's ControlModule adds coeff·directions[L] to model.model.layers[L]'s output: re-implemented as a
    forward hook, it equals hf_steer / steer of the imported vector."""
    hf, tl = pair
    vector = _vector(layers=(0, 1, 2), seed=6)
    control = to_repeng(vector)
    assert control["model_type"] == "llama" and sorted(control["directions"]) == [0, 1, 2]
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in control["directions"].values())
    imported = from_repeng(control)
    assert imported.hook_names == vector.hook_names
    coeff = -1.25
    handles = [hf.model.layers[L].register_forward_hook(
        lambda m, a, out, L=L: out + coeff * torch.from_numpy(control["directions"][L])) for L in control["directions"]]
    try:
        with torch.no_grad():
            expected = hf(tokens).logits
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        with steer(tl, imported, coeff):
            torch.testing.assert_close(tl(tokens), expected, atol=1e-4, rtol=0)
        with hf_steer(hf, imported, coeff):
            torch.testing.assert_close(hf(tokens).logits, expected, atol=1e-5, rtol=0)


def test_repeng_negative_keys_and_objects():
    class ControlVector:  # the attributes repeng's dataclass has
        model_type = "llama"
        directions = {-1: np.ones(4, dtype=np.float32), -3: np.zeros(4, dtype=np.float32)}

    vector = from_repeng(ControlVector(), n_layers=3)
    assert vector.hook_names == ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    assert vector.provenance.extra["source"] == "repeng"
    with pytest.raises(SteeringVectorError, match="counts from the end"):
        from_repeng(ControlVector())
    with pytest.raises(SteeringVectorError, match="repeng steers only"):
        to_repeng(SteeringVector({"blocks.1.hook_mlp_out": torch.ones(4)}))


def test_repeng_gguf_export_reads_back_as_the_same_layers(tmp_path):
    """repeng's export_gguf (re-implemented: GGUFWriter, model_hint, layer_count, direction.{layer}) → from_gguf."""
    gguf = pytest.importorskip("gguf")
    control = to_repeng(_vector(layers=(1, 2), seed=8))
    path = tmp_path / "repeng.gguf"
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", control["model_type"])
    writer.add_uint32("controlvector.layer_count", len(control["directions"]))
    for layer, array in control["directions"].items():
        writer.add_tensor(f"direction.{layer}", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from_file, from_dict = from_gguf(path), from_repeng(control)
    assert from_file.hook_names == from_dict.hook_names
    for name in from_dict.hook_names:
        assert torch.equal(from_file[name], from_dict[name])

"""llama.cpp control vectors: round trip, the file as the gguf reader sees it, llama.cpp's layer mapping, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp_steer.errors import SteeringVectorError
from interp_steer.interop import control_vector_buffer, from_gguf, gguf_layer_of, hook_of_gguf_layer, to_gguf
from interp_steer.steering import Provenance, SteeringVector, steer

gguf = pytest.importorskip("gguf")


def _vector(d_model: int = 64, layers=(1, 2), seed: int = 0) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    return SteeringVector({f"blocks.{L}.hook_resid_post": torch.randn(d_model, generator=generator) for L in layers},
                          Provenance(model="tiny-llama", method="caa", dataset="builtin:sentiment", n_pairs=6,
                                     layers=list(layers), extra={"note": "test"}))


def _write(path, tensors: dict[str, np.ndarray], arch: str = "controlvector", layer_count=None, hint="llama"):
    """A GGUF file written the way repeng's ``export_gguf`` writes one (no interp-steer metadata)."""
    writer = gguf.GGUFWriter(str(path), arch)
    if hint is not None:
        writer.add_string(f"{arch}.model_hint", hint)
    writer.add_uint32(f"{arch}.layer_count", len(tensors) if layer_count is None else layer_count)
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_round_trip_is_exact(tmp_path):
    vector = _vector()
    path = to_gguf(vector, tmp_path / "v")
    assert path.name == "v.gguf"
    assert from_gguf(path) == vector  # tensors, hook names and provenance


def test_file_as_the_gguf_reader_sees_it(tmp_path):
    vector = _vector(layers=(2, 1))  # written in layer order whatever the vector's order
    path = to_gguf(vector, tmp_path / "v.gguf", model_hint="llama")
    reader = gguf.GGUFReader(str(path))
    assert reader.get_field("general.architecture").contents() == "controlvector"
    assert reader.get_field("controlvector.model_hint").contents() == "llama"
    assert reader.get_field("controlvector.layer_count").contents() == 2
    assert [t.name for t in reader.tensors] == ["direction.1", "direction.2"]
    for tensor in reader.tensors:
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
        layer = int(tensor.name.split(".")[1])
        np.testing.assert_array_equal(tensor.data, vector[f"blocks.{layer}.hook_resid_post"].numpy())


def test_default_model_hint_comes_from_the_vector_provenance(tmp_path):
    from dataclasses import replace

    reader_hint = lambda path: gguf.GGUFReader(str(path)).get_field("controlvector.model_hint").contents()  # noqa: E731
    plain = _vector()
    assert reader_hint(to_gguf(plain, tmp_path / "plain.gguf")) == "llama"  # provenance without an architecture
    gemma = SteeringVector(dict(plain.directions), replace(plain.provenance, model_processing={
        "architecture": "Gemma3ForCausalLM", "family": "gemma3_text"}))
    assert reader_hint(to_gguf(gemma, tmp_path / "gemma.gguf")) == "gemma3"
    assert reader_hint(to_gguf(gemma, tmp_path / "forced.gguf", model_hint="custom")) == "custom"


def test_repeng_style_file_without_provenance(tmp_path):
    """A file as repeng writes it: direction.{layer} keyed like its ControlVector.directions."""
    data = {f"direction.{k}": np.full(64, float(k), dtype=np.float32) for k in (1, 2)}
    vector = from_gguf(_write(tmp_path / "r.gguf", data, hint="llama"), n_layers=3, d_model=64)
    assert vector.hook_names == ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
    assert torch.equal(vector["blocks.2.hook_resid_post"], torch.full((64,), 2.0))
    assert vector.provenance.method == "imported"
    assert vector.provenance.extra["model_hint"] == "llama"


def test_llama_cpp_mapping_on_a_three_layer_model(tiny, tmp_path):
    """What llama.cpp does with the file (common_control_vector_load + llama_adapter_cvec, re-implemented by hand):
    layer il ≥ 1 gets data[(il-1)·n_embd : il·n_embd] added to its output. Steering the imported vector with
    steer() at the same scale gives the same logits."""
    n_layers, d = tiny.cfg.n_layers, tiny.cfg.d_model
    vector = _vector(d_model=d, layers=(1, 2), seed=3)
    path = to_gguf(vector, tmp_path / "v.gguf")
    strength = 1.5
    # llama.cpp's loader: direction.{k} goes to data[n_embd·(k-1)], scaled by the strength
    reader = gguf.GGUFReader(str(path))
    data = np.zeros(d * (n_layers - 1), dtype=np.float32)
    for tensor in reader.tensors:
        k = int(tensor.name.split(".")[1])
        data[d * (k - 1): d * k] += strength * tensor.data
    np.testing.assert_array_equal(control_vector_buffer(from_gguf(path), n_layers, strength), data)

    def add_layer(il):
        return lambda act, hook: act + torch.from_numpy(data[d * (il - 1): d * il])

    tokens = torch.randint(100, 5000, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = tiny.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{il}.hook_resid_post", add_layer(il))
                                                          for il in range(1, n_layers)])
        with steer(tiny, from_gguf(path, n_layers=n_layers, d_model=d), strength, "all"):
            got = tiny(tokens)
        plain = tiny(tokens)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (got - plain).abs().max() > 1e-2


def test_layer_helpers():
    assert gguf_layer_of("blocks.7.hook_resid_post") == 7
    assert hook_of_gguf_layer(7) == "blocks.7.hook_resid_post"
    with pytest.raises(SteeringVectorError, match="layer 0"):
        gguf_layer_of("blocks.0.hook_resid_post")
    with pytest.raises(SteeringVectorError, match=r"blocks\.2\.hook_resid_post: re-key"):
        gguf_layer_of("blocks.3.hook_resid_pre")
    with pytest.raises(SteeringVectorError, match="decoder-layer outputs only"):
        gguf_layer_of("blocks.3.hook_mlp_out")
    with pytest.raises(SteeringVectorError, match="start at 1"):
        hook_of_gguf_layer(0)


def test_export_refuses_what_llama_cpp_cannot_apply(tmp_path):
    for hooks in (["blocks.0.hook_resid_post"], ["blocks.1.hook_resid_post", "blocks.2.hook_attn_out"]):
        vector = SteeringVector({h: torch.ones(8) for h in hooks})
        with pytest.raises(SteeringVectorError):
            to_gguf(vector, tmp_path / "bad.gguf")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left
    with pytest.raises(SteeringVectorError, match="model_hint"):
        to_gguf(_vector(), tmp_path / "v.gguf", model_hint=" ")
    with pytest.raises(SteeringVectorError, match="model has 3 layers"):
        control_vector_buffer(_vector(layers=(1, 3)), 3)


F32 = np.ones(64, dtype=np.float32)


@pytest.mark.parametrize("tensors, kwargs, message", [
    ({"direction.1": F32}, {"arch": "llama"}, "general.architecture is 'llama'"),
    ({}, {}, "no direction"),
    ({"direction.0": F32}, {}, "k ≥ 1"),
    ({"dir.1": F32}, {}, "not direction"),
    ({"direction.1": F32.astype(np.float16)}, {}, "F16"),
    ({"direction.1": np.ones((2, 64), dtype=np.float32)}, {}, "1-D"),
    ({"direction.1": F32, "direction.2": np.ones(32, dtype=np.float32)}, {}, "different widths"),
    ({"direction.1": F32, "direction.2": F32}, {"layer_count": 30}, "layer_count is 30"),
], ids=["architecture", "empty", "layer0", "name", "f16", "2d", "widths", "layer_count"])
def test_import_errors_name_the_file(tmp_path, tensors, kwargs, message):
    path = _write(tmp_path / "bad.gguf", tensors, **kwargs)
    with pytest.raises(SteeringVectorError, match=message) as info:
        from_gguf(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_import_checks_the_target_model(tmp_path):
    path = to_gguf(_vector(layers=(1, 5)), tmp_path / "v.gguf")
    with pytest.raises(SteeringVectorError, match="beyond the model's 3 layers"):
        from_gguf(path, n_layers=3)
    with pytest.raises(SteeringVectorError, match="d_model 576"):
        from_gguf(path, d_model=576)
    assert from_gguf(path, n_layers=6, d_model=64).hook_names == ["blocks.1.hook_resid_post", "blocks.5.hook_resid_post"]


def test_not_a_gguf_file_and_missing_file(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("not a gguf file at all")
    with pytest.raises(SteeringVectorError, match="not a readable GGUF"):
        from_gguf(text)
    with pytest.raises(SteeringVectorError, match="not found"):
        from_gguf(tmp_path / "absent.gguf")


def test_a_model_file_is_not_a_control_vector():
    from interp_steer.errors import ModelLoadError
    from interp_steer.models import embedded_gguf_path

    try:
        model_file = embedded_gguf_path()
    except ModelLoadError:
        pytest.skip("embedded model not installed")
    with pytest.raises(SteeringVectorError, match="looks like a model file"):
        from_gguf(model_file)

"""The exported control vector in llama.cpp itself (skipped unless llama-cpp-python is installed; not in CI).

llama.cpp runs the embedded Q4_1 GGUF (activations quantised to 8 bits for the Q4_1 matrix products), the
TransformerLens model the dequantised float32 weights, so logits differ a little even unsteered; the test asks
that steering moves both the same way: llama.cpp's steered logits are much closer to TransformerLens's steered at
``blocks.k`` (llama.cpp's ``direction.k``) than the steering effect itself, and closer than at ``blocks.k-1``.
Measured numbers: analyses/results/llamacpp/README.md.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import torch

from interp_steer.interop import control_vector_buffer, from_gguf, to_gguf
from interp_steer.steering import SteeringVector, chat_prompt, steer

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.embedded


def test_llama_cpp_applies_the_exported_vector_like_steer(embedded, tmp_path):
    from interp_steer.models import embedded_gguf_path

    n_layers, d_model = embedded.cfg.n_layers, embedded.cfg.d_model
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(d_model, generator=generator)
    vector = SteeringVector({"blocks.12.hook_resid_post": 12.0 * direction / direction.norm()})
    path = to_gguf(vector, tmp_path / "v.gguf")
    imported = from_gguf(path, n_layers=n_layers, d_model=d_model)
    strength = 3.0
    buffer = control_vector_buffer(imported, n_layers, strength)

    tokens = embedded.tokenizer(chat_prompt(embedded, "Tell me about your weekend."), add_special_tokens=False).input_ids
    llm = llama_cpp.Llama(model_path=str(embedded_gguf_path()), logits_all=True, n_ctx=128, n_threads=2,
                          verbose=False)

    def llama_logits(data: np.ndarray | None) -> np.ndarray:
        pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) if data is not None else None
        assert llama_cpp.llama_set_adapter_cvec(llm.ctx, pointer, 0 if data is None else data.size, d_model, 1,
                                                n_layers - 1) == 0
        llm.reset()
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float64)

    theirs_plain, theirs = llama_logits(None), llama_logits(buffer)
    ids = torch.tensor([tokens])
    with torch.no_grad():
        plain = embedded(ids)[0].double().numpy()
        with steer(embedded, imported, strength, "all"):
            ours = embedded(ids)[0].double().numpy()
        with steer(embedded, SteeringVector({"blocks.11.hook_resid_post": vector[12]}), strength, "all"):
            ours_lower = embedded(ids)[0].double().numpy()
    effect = np.abs(ours - plain).mean()
    error = np.abs(ours - theirs).mean()
    assert np.abs(theirs - theirs_plain).mean() > 0.5 * effect  # llama.cpp did steer
    assert error < 0.2 * effect
    assert error < np.abs(ours_lower - theirs).mean()

"""Model loading: embedded GGUF conversion parity with transformers, tiny models, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from interp_steer.errors import ModelLoadError
from interp_steer.models import embedded_gguf_path, load_model, tiny_model


def test_tiny_models_are_seeded_and_distinct():
    a, b, c = tiny_model("tiny-llama", seed=3), tiny_model("tiny-llama", seed=3), tiny_model("tiny-llama", seed=4)
    tokens = torch.tensor([[1, 200, 300, 400]])
    with torch.no_grad():
        la, lb, lc = a(tokens), b(tokens), c(tokens)
    assert torch.equal(la, lb)
    assert (la - lc).abs().max() > 1e-3


def test_unknown_name_is_one_clear_error():
    with pytest.raises(ModelLoadError, match="unknown model 'no-such-model-xyz'"):
        load_model("no-such-model-xyz")


def test_missing_gguf_file(tmp_path):
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        load_model(str(tmp_path / "missing.gguf"))


def test_missing_path(tmp_path):
    with pytest.raises(ModelLoadError, match="model path not found"):
        load_model(str(tmp_path / "nothing_here"))


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_unsupported_architecture(tmp_path):
    """gpt2 is a supported family now (tests/models/test_model_families.py); an encoder family is not."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(ModelLoadError, match="unsupported model family 'bert'"):
        load_model(str(tmp_path))


@pytest.mark.embedded
def test_embedded_logits_match_transformers(embedded):
    """The converted HookedTransformer equals transformers' own dequantised GGUF model to ≤1e-3."""
    from transformers import AutoModelForCausalLM

    gguf = embedded_gguf_path()
    hf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = embedded.tokenizer
    text = tok.apply_chat_template(
        [{"role": "system", "content": "You are a helpful, honest and concise assistant."},
         {"role": "user", "content": "Name three fruits that are red."}],
        tokenize=False, add_generation_prompt=True,
    )
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    assert ids[0, 0].item() == tok.convert_tokens_to_ids("<|im_start|>") and ids[0, 1].item() != ids[0, 0].item()
    with torch.no_grad():
        ours, theirs = embedded(ids), hf(ids).logits
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= 1e-3
    assert embedded.cfg.n_layers == 30 and embedded.cfg.d_model == 576 and embedded.cfg.n_key_value_heads == 3
    assert embedded.tokenizer.chat_template


@pytest.mark.embedded
def test_embedded_second_load_uses_cache(embedded, tmp_path, monkeypatch):
    """A fresh cache dir converts once and then loads from the cache, with identical weights."""
    import time

    from interp_steer.models.llama_conversion import load_llama_as_hooked

    monkeypatch.setenv("INTERP_STEER_CACHE", str(tmp_path))
    gguf = embedded_gguf_path()
    first = load_llama_as_hooked(gguf.parent, gguf_file=gguf.name, model_name="smollm2-135m")
    assert list(tmp_path.rglob("weights.safetensors"))
    start = time.perf_counter()
    second = load_llama_as_hooked(gguf.parent, gguf_file=gguf.name, model_name="smollm2-135m")
    cached_seconds = time.perf_counter() - start
    assert torch.equal(first.W_U, second.W_U) and torch.equal(first.blocks[7].attn.W_Q, second.blocks[7].attn.W_Q)
    assert cached_seconds < 20


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_one_call_load_equals_transformer_lens_unprocessed_load(name):
    """The loader's single ``load_state_dict`` gives the same parameters and buffers as TransformerLens's
    key-by-key ``load_and_process_state_dict`` with nothing folded (missing keys filled the same way)."""
    from transformer_lens import HookedTransformer

    from interp_steer.models.llama_conversion import load_unprocessed_state_dict
    from interp_steer.models.processing import UNPROCESSED

    source = tiny_model(name, seed=3)
    state = {k: v.clone() for k, v in source.state_dict().items() if not k.endswith(("b_Q", "b_K", "b_V"))}
    ours = HookedTransformer(source.cfg, move_to_device=False)
    theirs = HookedTransformer(source.cfg, move_to_device=False)
    load_unprocessed_state_dict(ours, state)
    theirs.load_and_process_state_dict(dict(state), **UNPROCESSED)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    for key, value in state.items():  # the given weights were loaded, not left at the constructor's init
        torch.testing.assert_close(a[key], value, rtol=0, atol=0, msg=key)


def test_demo_layers_keep_relative_depth_on_registered_models():
    """The demo's default layers (6, 12, 18 of SmolLM2's 30) at the same depths on Gemma 3 270M's 18 layers, so
    ``interp-steer demo --model gemma3-270m`` needs no --layers; unknown models keep the configured layers."""
    from interp_steer.models.embedded import demo_layers
    from interp_steer.runs.job_configs import DemoConfig

    fields = DemoConfig.__dataclass_fields__
    assert demo_layers("smollm2-135m") == (fields["layers"].default, fields["eval_layer"].default)
    layers, eval_layer = demo_layers("google/gemma-3-270m")
    assert [int(x) for x in layers.split(",")] == [round(d * 18) for d in (0.2, 0.4, 0.6)] == [4, 7, 11]
    assert eval_layer == 11
    assert demo_layers("tiny-llama") is None and demo_layers("/some/dir") is None

"""describe_processing: what each loader did to a model's weights, as recorded in vector provenance."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import HookedTransformer

from interp_steer.models import describe_processing, load_model, tiny_model
from interp_steer.models.layout import use_linear_layout
from interp_steer.models.processing import UNPROCESSED, record_processing


def test_tiny_models_loaded_both_ways():
    plain = describe_processing(tiny_model("tiny-gpt2", seed=2))
    assert plain == {"source": "tiny_random", "name": "tiny-gpt2", "seed": 2, **UNPROCESSED,
                     "normalization_type": "LN", "dtype": "float32", "weight_layout": "transformer_lens",
                     "prompt_template": "chat_template", "sequence_start": "none"}  # the shared SmolLM2 tokenizer
    loaded = describe_processing(load_model("tiny-llama"))  # load_model applies the linear layout
    assert loaded["source"] == "tiny_random" and loaded["weight_layout"] == "linear"
    assert loaded["normalization_type"] == "RMS" and loaded["fold_ln"] is False


def test_layout_is_read_off_the_weights():
    model = tiny_model("tiny-llama")
    assert describe_processing(model)["weight_layout"] == "transformer_lens"
    assert model.blocks[0].mlp.W_in.is_contiguous()
    use_linear_layout(model)
    assert describe_processing(model)["weight_layout"] == "linear"
    assert not model.blocks[0].mlp.W_in.is_contiguous()


def test_folded_layer_norm_is_read_off_the_config():
    # a model whose LayerNorm weights were folded into the next matrices (what from_pretrained does by default)
    source = tiny_model("tiny-gpt2", seed=0)
    cfg = source.cfg.to_dict()
    cfg.pop("n_params", None)
    folded = HookedTransformer(cfg, tokenizer=source.tokenizer)
    folded.load_and_process_state_dict(source.state_dict(), fold_ln=True, center_writing_weights=True,
                                       center_unembed=True, fold_value_biases=False)
    described = describe_processing(folded)
    assert described["source"] == "unknown"  # not loaded by interp-steer: no loader record
    assert described["fold_ln"] is True and described["normalization_type"] == "LNPre"
    # the folded model computes the same logits, so the record is the only trace of the difference
    tokens = torch.tensor([[5, 17, 99, 3]])
    with torch.no_grad():
        torch.testing.assert_close(folded(tokens) - folded(tokens).mean(-1, keepdim=True),
                                   source(tokens) - source(tokens).mean(-1, keepdim=True), rtol=1e-4, atol=1e-4)


def test_record_merges_and_stays_off_the_module_tree():
    model = tiny_model("tiny-gpt2")
    record_processing(model, note="x")
    described = describe_processing(model)
    assert described["note"] == "x" and described["source"] == "tiny_random"
    assert "_interp_steer_processing" not in dict(model.named_modules()) and "note" not in str(model.state_dict().keys())


@pytest.mark.embedded
def test_embedded_model_is_a_dequantised_gguf(embedded):
    described = describe_processing(embedded)
    assert described["source"] == "gguf" and described["file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert described["dequantised_from"] == "Q4_1" and described["dtype"] == "float32"
    assert described["fold_ln"] is False and described["center_writing_weights"] is False
    assert described["weight_layout"] == "linear" and "/" not in described["file"]  # no machine path

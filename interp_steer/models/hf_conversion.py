"""Turn a Hugging Face causal LM of any family TransformerLens supports into a HookedTransformer.

The source is a GGUF file (dequantised by transformers' own GGUF reader) or a local Hugging Face directory; the
TransformerLens config is built from the model's *own* HF config, never from the hub:

* llama: the hand-built config of :mod:`interp_steer.models.llama_conversion` (the embedded model's path);
* Gemma 1 / 2 / 3 (TransformerLens keys these by official name): the family's config from an official name of the
  same family, with every shape field (widths, heads, layers, vocabulary, window, local/global layer pattern,
  rotary bases, soft caps, attention scale) replaced by the model's own;
* every other family TransformerLens reads from an HF config (gpt2, gpt-neox / pythia, mistral, qwen2, qwen3,
  phi, olmo, …): TransformerLens's own converter, reading the HF config from a local ``config.json``.

Weights are converted by TransformerLens's converter of that architecture and cached as a conversion-cache entry
(:mod:`interp_steer.models.cache_dir`), so the second load skips dequantisation and conversion. Weights are not
folded or centred: hook activations equal the HF model's hidden states.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_steer.errors import ModelLoadError
from interp_steer.models.cache_dir import cache_root
from interp_steer.models.llama_conversion import (
    _ENTRY_FILES,
    DEFAULT_MAX_CONTEXT,
    _configure_tokenizer,
    attach_sequence_start,
    converted_entry_complete,
    llama_config_from_hf,
    load_cached_tokenizer,
    load_unprocessed_state_dict,
    read_hf_source,
    source_fingerprint,
    write_converted_entry,
)
from interp_steer.models.processing import UNPROCESSED, record_processing

logger = logging.getLogger(__name__)

GEMMA_TEMPLATES = {"gemma": "google/gemma-2b", "gemma2": "google/gemma-2-2b", "gemma3_text": "google/gemma-3-270m",
                   "gemma3": "google/gemma-3-270m"}
"""HF ``model_type`` → an official TransformerLens name of the same family whose config carries the family's flags."""

CONFIG_ARCHITECTURES = ("GPT2LMHeadModel", "GPTNeoForCausalLM", "GPTNeoXForCausalLM", "GPTJForCausalLM",
                        "OPTForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM",
                        "Qwen3ForCausalLM", "PhiForCausalLM", "Phi3ForCausalLM", "OlmoForCausalLM",
                        "Olmo2ForCausalLM", "BloomForCausalLM", "StableLmForCausalLM")
"""Architectures whose TransformerLens config is read from the HF config (not from a hard-coded official name)."""

SUPPORTED_FAMILIES = ("llama", "gemma", "gemma2", "gemma3_text", "gpt2", "gpt_neo", "gpt_neox", "gptj", "opt",
                      "mistral", "mixtral", "qwen2", "qwen3", "phi", "phi3", "olmo", "olmo2", "bloom", "stablelm")
"""HF ``model_type`` values :func:`tl_config_from_hf` converts (checked in the family tests for the main ones)."""


def _architecture(hf_config: Any) -> str:
    archs = list(getattr(hf_config, "architectures", None) or [])
    if archs:
        return str(archs[0])
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(getattr(hf_config, "model_type", ""), "")
    return str(name)


def model_family(hf_config: Any) -> str:
    """The HF ``model_type`` of a config (``"llama"``, ``"gemma3_text"``, …)."""
    return str(getattr(hf_config, "model_type", "") or "")


def _unsupported(hf_config: Any, model_name: str) -> ModelLoadError:
    family, architecture = model_family(hf_config), _architecture(hf_config)
    if family in SUPPORTED_FAMILIES:  # a supported family, but not its causal-LM head (a classifier, an encoder)
        return ModelLoadError(
            f"unsupported architecture {architecture or 'unknown'!r} of model family {family!r} for {model_name}: "
            "interp-steer converts causal language models only (…ForCausalLM, GPT2LMHeadModel)")
    return ModelLoadError(
        f"unsupported model family {family or architecture or 'unknown'!r} ({architecture or 'no architecture'}) "
        f"for {model_name}: interp-steer converts {', '.join(SUPPORTED_FAMILIES)} from GGUF files or local directories")


def _rope_theta(hf_config: Any, layer_type: str | None = None, default: float = 10000.0) -> float:
    params = getattr(hf_config, "rope_parameters", None) or {}
    if layer_type and isinstance(params.get(layer_type), dict):
        return float(params[layer_type].get("rope_theta", default))
    if "rope_theta" in params:
        return float(params["rope_theta"])
    return float(getattr(hf_config, "rope_theta", None) or default)


def gemma_config_from_hf(hf_config: Any, *, model_name: str, n_ctx: int) -> HookedTransformerConfig:
    """TransformerLens config of a Gemma 1 / 2 / 3 text model: the family's flags from an official config of the same
    family, every shape-dependent field from ``hf_config``."""
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    family = model_family(hf_config)
    cfg = dict(convert_hf_model_config(GEMMA_TEMPLATES[family]))
    n_heads = int(hf_config.num_attention_heads)
    n_kv = int(getattr(hf_config, "num_key_value_heads", None) or n_heads)
    d_head = int(getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads)
    cfg.update(
        d_model=int(hf_config.hidden_size), d_head=d_head, n_heads=n_heads,
        n_key_value_heads=n_kv if n_kv != n_heads else None, d_mlp=int(hf_config.intermediate_size),
        n_layers=int(hf_config.num_hidden_layers), eps=float(hf_config.rms_norm_eps),
        d_vocab=int(hf_config.vocab_size), rotary_dim=d_head,
        act_fn=getattr(hf_config, "hidden_activation", None) or getattr(hf_config, "hidden_act", cfg.get("act_fn")),
        n_ctx=min(n_ctx, int(getattr(hf_config, "max_position_embeddings", n_ctx))),
    )
    scalar = getattr(hf_config, "query_pre_attn_scalar", None)
    if scalar:
        cfg["attn_scale"] = math.sqrt(float(scalar))
    if family == "gemma":
        cfg["rotary_base"] = _rope_theta(hf_config)
    else:
        layer_types = list(getattr(hf_config, "layer_types", None) or [])
        if not layer_types:  # older Gemma 2 configs: even layers slide
            layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(cfg["n_layers"])]
        cfg["attn_types"] = ["local" if t == "sliding_attention" else "global" for t in layer_types]
        window = getattr(hf_config, "sliding_window", None)
        cfg["use_local_attn"] = bool(window) and "local" in cfg["attn_types"]
        cfg["window_size"] = int(window) if window else None
        cfg["attn_scores_soft_cap"] = float(getattr(hf_config, "attn_logit_softcapping", None) or -1.0)
        cfg["output_logits_soft_cap"] = float(getattr(hf_config, "final_logit_softcapping", None) or -1.0)
        if family == "gemma2":
            cfg["rotary_base"] = _rope_theta(hf_config)
        else:
            cfg["rotary_base"] = _rope_theta(hf_config, "full_attention", 1_000_000.0)
            cfg["rotary_base_local"] = _rope_theta(hf_config, "sliding_attention", 10_000.0)
    cfg.update(model_name=model_name, init_weights=False, dtype=torch.float32, default_prepend_bos=False,
               tokenizer_prepends_bos=False)
    return HookedTransformerConfig.from_dict(cfg)


def _generic_config_from_hf(hf_config: Any, *, model_name: str, n_ctx: int) -> tuple[HookedTransformerConfig, str]:
    """TransformerLens's own HF-config converter, reading ``hf_config`` from a local ``config.json`` (no hub); returns
    the config and the architecture TransformerLens converts the weights by."""
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    architecture = _architecture(hf_config)
    # a directory name without "llama" / "gemma": TransformerLens matches those substrings before reading the config
    with tempfile.TemporaryDirectory(prefix="interp-steer-hfcfg-") as tmp:
        data = hf_config.to_dict()
        data["architectures"] = [architecture]
        if architecture == "GPT2LMHeadModel":  # transformers 5 dropped GPT2Config.n_ctx, which TransformerLens reads
            data.setdefault("n_ctx", data.get("n_positions"))
        (Path(tmp) / "config.json").write_text(json.dumps(data))
        try:
            cfg = convert_hf_model_config(tmp)
        except Exception as exc:  # noqa: BLE001 - TransformerLens raises plain errors for unknown layouts
            raise ModelLoadError(f"TransformerLens cannot convert {model_name} ({architecture}): "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    cfg = dict(cfg)
    if architecture == "GPT2LMHeadModel" and getattr(hf_config, "n_inner", None):  # TransformerLens assumes 4 × d_model
        cfg["d_mlp"] = int(hf_config.n_inner)
    cfg.update(model_name=model_name, init_weights=False, dtype=torch.float32, default_prepend_bos=False,
               tokenizer_prepends_bos=False)
    cfg["n_ctx"] = min(n_ctx, int(cfg.get("n_ctx") or n_ctx))
    return HookedTransformerConfig.from_dict(cfg), architecture


def tl_config_from_hf(hf_config: Any, *, model_name: str, n_ctx: int = DEFAULT_MAX_CONTEXT) -> HookedTransformerConfig:
    """The TransformerLens config of a model from its HF config (any supported family; see the module docs).

    An unsupported family is a one-line :class:`ModelLoadError` naming it and the supported ones, raised before any
    weights are read."""
    family = model_family(hf_config)
    architecture = _architecture(hf_config)
    if family == "llama" or architecture == "LlamaForCausalLM":
        return llama_config_from_hf(hf_config, model_name=model_name, n_ctx=n_ctx)
    if family in GEMMA_TEMPLATES:
        return gemma_config_from_hf(hf_config, model_name=model_name, n_ctx=n_ctx)
    if architecture not in CONFIG_ARCHITECTURES:
        raise _unsupported(hf_config, model_name)
    return _generic_config_from_hf(hf_config, model_name=model_name, n_ctx=n_ctx)[0]


def convert_state_dict(hf_model: Any, cfg: HookedTransformerConfig) -> dict[str, torch.Tensor]:
    """TransformerLens state dict of ``hf_model`` (converted by ``cfg.original_architecture``'s converter)."""
    from transformer_lens.loading_from_pretrained import get_pretrained_state_dict

    if cfg.original_architecture == "LlamaForCausalLM":
        from transformer_lens.pretrained.weight_conversions import convert_llama_weights

        return {k: v.contiguous() for k, v in convert_llama_weights(hf_model, cfg).items()}
    # a dequantised GGUF model still says "GGUF-quantized", which TransformerLens refuses: its weights are float now
    if getattr(hf_model.config, "quantization_config", None) is not None:
        hf_model.config.quantization_config = None
    if getattr(hf_model, "hf_quantizer", None) is not None:
        hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        delattr(hf_model.config, "quantization_config")
    name = GEMMA_TEMPLATES.get(model_family(hf_model.config))
    if name is None:  # the generic path: TransformerLens looks the name up only to decide on remote code
        name = "gpt2"
    state = get_pretrained_state_dict(name, cfg, hf_model=hf_model, dtype=torch.float32)
    return {k: v.contiguous() for k, v in state.items()}


def _read_hf(path: Path, gguf_file: str | None, model_name: str):
    return read_hf_source(path, gguf_file, lambda c: tl_config_from_hf(c, model_name=model_name))


def _config_from_json(text: str):
    from transformers import AutoConfig

    data = json.loads(text)
    model_type = data.pop("model_type", None)
    if not model_type:
        raise ModelLoadError("a conversion-cache entry's hf_config.json has no model_type; delete the entry")
    return AutoConfig.for_model(model_type, **data)


def load_hf_as_hooked(path: Path, *, gguf_file: str | None = None, model_name: str, device: str = "cpu",
                      use_cache: bool = True, n_ctx: int = DEFAULT_MAX_CONTEXT) -> HookedTransformer:
    """Load a model of any supported family from a HF directory or ``path/gguf_file`` as an unprocessed
    HookedTransformer (cached conversion; see the module docs)."""
    source = path / gguf_file if gguf_file else path
    entry = cache_root() / "converted" / f"{model_name.replace('/', '_')}-{source_fingerprint(source)}"
    weights_file, tokenizer_dir, config_file = (entry / name for name in _ENTRY_FILES)
    if use_cache and converted_entry_complete(entry):
        hf_config = _config_from_json(config_file.read_text())
        tokenizer = load_cached_tokenizer(tokenizer_dir)
        state_dict = load_file(str(weights_file))
    else:
        hf_config, tokenizer, load_weights = _read_hf(path, gguf_file, model_name)
        cfg = tl_config_from_hf(hf_config, model_name=model_name, n_ctx=n_ctx)
        logger.info("converting %s (cached afterwards in %s)", source, entry)
        hf_model = load_weights()
        state_dict = convert_state_dict(hf_model, cfg)
        del hf_model
        if use_cache:
            write_converted_entry(entry, state_dict, tokenizer, hf_config.to_json_string())
    cfg = tl_config_from_hf(hf_config, model_name=model_name, n_ctx=n_ctx)
    cfg.device = device
    cfg.init_weights = False
    _configure_tokenizer(tokenizer)
    model = attach_sequence_start(HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False), tokenizer)
    load_unprocessed_state_dict(model, state_dict)
    model.to(device)
    model.eval()
    family = model_family(hf_config)
    if gguf_file:
        quant = re.search(r"[.-](I?Q\d\w*|F16|BF16|F32)\.gguf$", gguf_file, flags=re.IGNORECASE)
        details = {"source": "gguf", "file": gguf_file, "dequantised_from": quant.group(1).upper() if quant else "unknown"}
    else:
        details = {"source": "hf_directory", "name": path.name}
    return record_processing(model, **details, family=family, architecture=cfg.original_architecture, **UNPROCESSED)

"""Turn a Hugging Face llama-family model (from a GGUF file or a local directory) into a HookedTransformer.

The converted TransformerLens state dict is cached as safetensors keyed by the source file's identity,
so the second load of the same model skips dequantisation and conversion.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp_steer.errors import ModelLoadError
from interp_steer.models.cache_dir import cache_root, publish_entry
from interp_steer.models.processing import UNPROCESSED, record_processing

logger = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
CONVERSION_FORMAT_VERSION = 1
DEFAULT_MAX_CONTEXT = 2048


def llama_config_from_hf(hf_config: Any, *, model_name: str, n_ctx: int = DEFAULT_MAX_CONTEXT) -> HookedTransformerConfig:
    """Hand-built TransformerLens config for a llama-family HF config (GQA, RMSNorm, rotary, gated MLP)."""
    architectures = list(getattr(hf_config, "architectures", None) or [])
    model_type = getattr(hf_config, "model_type", None)
    if model_type != "llama" and not set(architectures) & set(SUPPORTED_ARCHITECTURES):
        raise ModelLoadError(
            f"unsupported architecture {architectures or model_type!r} for {model_name}: "
            f"only llama-family models ({', '.join(SUPPORTED_ARCHITECTURES)}) can be loaded from GGUF files "
            "or local directories; use an official TransformerLens model name for other families"
        )
    n_heads = hf_config.num_attention_heads
    n_kv_heads = getattr(hf_config, "num_key_value_heads", None) or n_heads
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads
    rope = getattr(hf_config, "rope_parameters", None) or {}
    rotary_base = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    return HookedTransformerConfig(
        model_name=model_name,
        d_model=hf_config.hidden_size,
        d_head=d_head,
        n_heads=n_heads,
        n_key_value_heads=n_kv_heads if n_kv_heads != n_heads else None,
        d_mlp=hf_config.intermediate_size,
        n_layers=hf_config.num_hidden_layers,
        n_ctx=min(n_ctx, getattr(hf_config, "max_position_embeddings", n_ctx)),
        eps=hf_config.rms_norm_eps,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.hidden_act,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        rotary_dim=d_head,
        rotary_base=float(rotary_base),
        final_rms=True,
        gated_mlp=True,
        original_architecture="LlamaForCausalLM",
        default_prepend_bos=False,
        tokenizer_prepends_bos=False,
        dtype=torch.float32,
    )


def source_fingerprint(path: Path) -> str:
    """Identity of a weight source for the cache key: path, size and mtime of every file, hashed."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256(f"v{CONVERSION_FORMAT_VERSION}".encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def read_hf_source(path: Path, gguf_file: str | None, check_config: Callable[[Any], object]):
    """``(hf_config, tokenizer, load_weights)`` of a HF directory or ``path/gguf_file``; ``check_config(hf_config)``
    runs before the tokenizer or any weight is read (an unsupported family fails first). Every failure is one
    :class:`ModelLoadError` line naming the source."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    where = path / gguf_file if gguf_file else path
    try:
        hf_config = AutoConfig.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read a model config from {where}: {str(exc).splitlines()[0]}") from None
    check_config(hf_config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read a tokenizer from {where}: {str(exc).splitlines()[0]}") from None

    def load_weights():
        try:
            return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kwargs)
        except (OSError, ValueError) as exc:  # no weight files, a truncated file, a head transformers cannot build
            raise ModelLoadError(f"cannot read the weights of {where}: {str(exc).splitlines()[0]}") from None

    return hf_config, tokenizer, load_weights


def _load_hf(path: Path, gguf_file: str | None):
    where = path / gguf_file if gguf_file else path
    return read_hf_source(path, gguf_file, lambda c: llama_config_from_hf(c, model_name=str(where)))


_ENTRY_FILES = ("weights.safetensors", "tokenizer", "hf_config.json")


def converted_entry_complete(entry: Path) -> bool:
    """Whether the conversion-cache directory ``entry`` holds the weights, the tokenizer (with its source's sequence
    start) and the HF config; an entry written before the sequence start was saved counts as incomplete."""
    from interp_steer.data.tokenization import SEQUENCE_START_FILE

    return all((entry / name).exists() for name in _ENTRY_FILES) and (entry / _ENTRY_FILES[1] / SEQUENCE_START_FILE).exists()


def load_cached_tokenizer(directory: Path):
    """A tokenizer saved in a cache entry, with its source's sequence start attached."""
    from transformers import AutoTokenizer

    from interp_steer.data.tokenization import load_sequence_start

    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    load_sequence_start(tokenizer, directory)
    return tokenizer


def write_converted_entry(entry: Path, state_dict: dict[str, torch.Tensor], tokenizer, hf_config_json: str) -> Path:
    """Write a conversion-cache entry (``weights.safetensors``, ``tokenizer/``, ``hf_config.json``) atomically.

    The files go into a per-process temporary directory that is renamed to ``entry`` in one step
    (:func:`~interp_steer.models.cache_dir.publish_entry`): processes converting the same model at once never
    write the same file, and a reader sees either no entry or a complete one.
    """
    from interp_steer.data.tokenization import save_sequence_start

    def write(tmp: Path) -> None:
        save_file(state_dict, str(tmp / _ENTRY_FILES[0]))
        tokenizer.save_pretrained(str(tmp / _ENTRY_FILES[1]))
        save_sequence_start(tokenizer, tmp / _ENTRY_FILES[1])
        (tmp / _ENTRY_FILES[2]).write_text(hf_config_json)

    return publish_entry(entry, write, converted_entry_complete)


def load_unprocessed_state_dict(model: HookedTransformer, state_dict: dict[str, torch.Tensor]) -> None:
    """What ``model.load_and_process_state_dict(state_dict, **UNPROCESSED)`` does (missing keys filled as
    TransformerLens fills them, nothing folded or centred), in one ``load_state_dict`` call: TransformerLens loads
    key by key, and each call walks the whole module tree (≈ 4 s of the 7 s cached load of SmolLM2-135M)."""
    model.load_state_dict(model.fill_missing_keys(dict(state_dict)), strict=True)


def load_llama_as_hooked(
    path: Path, *, gguf_file: str | None = None, model_name: str, device: str = "cpu", use_cache: bool = True
) -> HookedTransformer:
    """Load a llama-family model from a HF directory or ``path/gguf_file`` as an unprocessed HookedTransformer.

    Weights are not folded or centred, so hook activations equal the HF model's hidden states.
    """
    source = path / gguf_file if gguf_file else path
    entry = cache_root() / "converted" / f"{model_name.replace('/', '_')}-{source_fingerprint(source)}"
    weights_file, tokenizer_dir, config_file = (entry / name for name in _ENTRY_FILES)

    if use_cache and converted_entry_complete(entry):
        from transformers import LlamaConfig

        hf_config = LlamaConfig.from_dict(json.loads(config_file.read_text()))
        tokenizer = load_cached_tokenizer(tokenizer_dir)
        state_dict = load_file(str(weights_file))
    else:
        hf_config, tokenizer, load_weights = _load_hf(path, gguf_file)
        cfg = llama_config_from_hf(hf_config, model_name=model_name)  # fail early on the wrong family
        logger.info("dequantising and converting %s (cached afterwards in %s)", source, entry)
        from transformer_lens.pretrained.weight_conversions import convert_llama_weights

        hf_model = load_weights()
        state_dict = {k: v.contiguous() for k, v in convert_llama_weights(hf_model, cfg).items()}
        del hf_model
        if use_cache:
            write_converted_entry(entry, state_dict, tokenizer, hf_config.to_json_string())

    cfg = llama_config_from_hf(hf_config, model_name=model_name)
    cfg.device = device
    cfg.init_weights = False  # every weight is loaded next; random initialisation would be thrown away
    _configure_tokenizer(tokenizer)
    model = attach_sequence_start(HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False), tokenizer)
    load_unprocessed_state_dict(model, state_dict)
    model.to(device)
    model.eval()
    if gguf_file:
        quant = re.search(r"[.-](I?Q\d\w*|F16|BF16|F32)\.gguf$", gguf_file, flags=re.IGNORECASE)
        details = {"source": "gguf", "file": gguf_file, "dequantised_from": quant.group(1).upper() if quant else "unknown"}
    else:
        details = {"source": "hf_directory", "name": path.name}
    return record_processing(model, **details, **UNPROCESSED)


def _configure_tokenizer(tokenizer) -> None:
    """Left padding, a pad token, and no automatic BOS (chat templates bring their own start token). The tokenizer's
    natural sequence start is recorded first: the encoder adds it once where a sequence begins
    (:func:`~interp_steer.data.tokenization.encode_sequence`)."""
    from interp_steer.data.tokenization import record_sequence_start

    record_sequence_start(tokenizer)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "add_bos_token", False):
        tokenizer.add_bos_token = False


def attach_sequence_start(model: HookedTransformer, source_tokenizer) -> HookedTransformer:
    """Carry the source tokenizer's sequence start over to ``model.tokenizer``: TransformerLens replaces a tokenizer
    whose ``add_bos_token`` is off by a re-loaded copy that adds BOS, which would change what a probe finds."""
    from interp_steer.data.tokenization import START_IDS_ATTRIBUTE, record_sequence_start

    start = record_sequence_start(source_tokenizer)
    if model.tokenizer is not None:
        setattr(model.tokenizer, START_IDS_ATTRIBUTE, start)
    return model

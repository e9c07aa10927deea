"""What was done to a model's weights when it was loaded, recorded on the model for vector provenance.

A direction extracted from ``blocks.L.hook_resid_post`` means something different when layer norms were folded
or writing weights centred (TransformerLens's ``from_pretrained`` defaults) than on the unprocessed weights
interp-steer's own loaders keep, and a GGUF model's weights are a dequantised approximation of the original.
Each loader calls :func:`record_processing`; :func:`describe_processing` returns the record plus what can be
read off the model itself (normalisation type, dtype, weight memory layout), and extraction methods store it in
``Provenance.model_processing``.
"""

from __future__ import annotations

from typing import Any

from transformer_lens import HookedTransformer

_ATTRIBUTE = "_interp_steer_processing"

UNPROCESSED = {
    "fold_ln": False,
    "center_writing_weights": False,
    "center_unembed": False,
    "fold_value_biases": False,
    "refactor_factored_attn_matrices": False,
}
"""The ``load_and_process_state_dict`` flags interp-steer's llama loader uses (hook values equal HF's)."""

TRANSFORMER_LENS_DEFAULTS = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
    "refactor_factored_attn_matrices": False,
}
"""``HookedTransformer.from_pretrained``'s default processing (used for official model names)."""


def record_processing(model: HookedTransformer, **info: Any) -> HookedTransformer:
    """Merge ``info`` (JSON-like values) into ``model``'s processing record; returns ``model``."""
    record = dict(getattr(model, _ATTRIBUTE, None) or {})
    record.update(info)
    object.__setattr__(model, _ATTRIBUTE, record)  # a plain attribute, not a submodule or parameter
    return model


def _weight_layout(model: HookedTransformer) -> str:
    """``"linear"`` when :func:`~interp_steer.models.layout.use_linear_layout` re-stored the weights."""
    if not model.blocks:
        return "transformer_lens"
    w_in = model.blocks[0].mlp.W_in if hasattr(model.blocks[0], "mlp") and hasattr(model.blocks[0].mlp, "W_in") else None
    if w_in is None or w_in.ndim != 2:
        return "transformer_lens"
    return "linear" if (not w_in.is_contiguous() and w_in.t().is_contiguous()) else "transformer_lens"


def describe_processing(model: HookedTransformer) -> dict[str, Any]:
    """How ``model``'s weights were processed: the loader's record plus facts read off the model.

    Keys: ``source`` (``gguf``, ``hf_directory``, ``transformer_lens_pretrained``, ``tiny_random`` or
    ``unknown`` for a model not loaded by :func:`interp_steer.models.load_model`), the loader's details
    (e.g. ``file`` and ``dequantised_from`` for GGUF), the processing flags (``fold_ln``,
    ``center_writing_weights``, …; ``fold_ln`` is also read off ``cfg.normalization_type``), ``normalization_type``,
    ``dtype``, ``weight_layout`` (``linear`` or ``transformer_lens``; same values either way), and the prompt format
    (:func:`prompt_format`: chat template or plain, and the sequence-start token).
    """
    record: dict[str, Any] = {"source": "unknown"}
    record.update(getattr(model, _ATTRIBUTE, None) or {})
    norm = model.cfg.normalization_type
    record["normalization_type"] = norm
    if norm in ("LNPre", "RMSPre"):
        record["fold_ln"] = True  # folded layer norms show in the config whatever the loader said
    record["dtype"] = str(model.cfg.dtype).removeprefix("torch.")
    record["weight_layout"] = _weight_layout(model)
    record.update(prompt_format(model))
    return record


def prompt_format(model: HookedTransformer) -> dict[str, Any]:
    """How prompts are laid out for ``model``: ``prompt_template`` is ``"chat_template"`` (the tokenizer's own) or
    ``"plain"`` (``system\\n\\nuser\\n``, for base models), ``sequence_start`` the token(s) the encoder puts before
    every sequence (Gemma: ``["<bos>"]``; SmolLM2: none, its chat template starts with ``<|im_start|>``)."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return {"prompt_template": "none", "sequence_start": []}
    from interp_steer.data.tokenization import sequence_start_ids

    start = sequence_start_ids(tokenizer)
    return {"prompt_template": "chat_template" if getattr(tokenizer, "chat_template", None) else "plain",
            "sequence_start": [str(t) for t in tokenizer.convert_ids_to_tokens(list(start))]}

"""Model loading: the embedded SmolLM2 GGUF, local HF/GGUF llama models, official TL names, tiny test models.

The default model spec (:data:`DEFAULT_MODEL`) is importable without torch; the loaders are imported on first use
(PEP 562), so the command line and the job configs can name the default without loading the model stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from interp_steer.models.embedded import DEFAULT_MODEL, EMBEDDED_MODEL_NAME, embedded_gguf_path

if TYPE_CHECKING:
    from interp_steer.models.loading import load_model
    from interp_steer.models.processing import describe_processing
    from interp_steer.models.tiny import TINY_CONFIGS, shared_tokenizer, tiny_model

_LAZY = {
    "load_model": "interp_steer.models.loading",
    "describe_processing": "interp_steer.models.processing",
    "TINY_CONFIGS": "interp_steer.models.tiny",
    "shared_tokenizer": "interp_steer.models.tiny",
    "tiny_model": "interp_steer.models.tiny",
}


def __getattr__(name: str) -> Any:
    """Import a loader on first access (``from interp_steer.models import load_model`` works as before)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODEL_NAME", "TINY_CONFIGS", "describe_processing", "embedded_gguf_path", "load_model",
           "shared_tokenizer", "tiny_model"]

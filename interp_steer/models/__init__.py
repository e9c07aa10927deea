"""Model loading: the embedded SmolLM2 GGUF, local HF/GGUF llama models, official TL names, tiny test models."""

from interp_steer.models.embedded import EMBEDDED_MODEL_NAME, embedded_gguf_path
from interp_steer.models.loading import load_model
from interp_steer.models.processing import describe_processing
from interp_steer.models.tiny import TINY_CONFIGS, shared_tokenizer, tiny_model

__all__ = ["EMBEDDED_MODEL_NAME", "TINY_CONFIGS", "describe_processing", "embedded_gguf_path", "load_model", "shared_tokenizer", "tiny_model"]

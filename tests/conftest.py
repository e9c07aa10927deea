"""Shared fixtures: tiny random models (fast), the embedded SmolLM2 model (session-scoped), the data root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

import typecheck_conf  # noqa: E402  (tests/ is on sys.path: pytest puts the conftest folder there)

if typecheck_conf.ENABLED:
    # jaxtyping shapes and beartype types checked at run time on every annotated function of the package;
    # installed before any test imports interp_steer (INTERP_STEER_TYPECHECK=0 turns it off)
    import jaxtyping

    jaxtyping.install_import_hook("interp_steer", "typecheck_conf.checker")

# small matmuls on a busy 2-core machine are far faster single-threaded
torch.set_num_threads(1)
# ... and so are the processes tests start (notebook kernels, CLI subprocesses), which inherit this: with torch's
# default of one thread per core, two xdist workers oversubscribe two cores (notebook 01 took 211 s that way, 21 s
# single-threaded)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``$INTERP_STEER_DATA``, else ``../shared/data`` beside the repo; skip (outside CI: fail) if absent."""
    root = Path(os.environ.get("INTERP_STEER_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not root.exists():
        if os.environ.get("CI"):
            pytest.fail(f"data root {root} not found in CI")
        pytest.skip(f"data root {root} not found; set INTERP_STEER_DATA")
    return root


@pytest.fixture(scope="session")
def tiny():
    """A seeded tiny llama-style HookedTransformer (3 layers, d_model 64) with the SmolLM2 tokenizer."""
    from interp_steer.models import tiny_model
    from interp_steer.models.layout import use_linear_layout

    torch.manual_seed(0)
    return use_linear_layout(tiny_model("tiny-llama", seed=0))  # the layout load_model() gives every model


@pytest.fixture(scope="session")
def tiny_gpt2():
    from interp_steer.models import tiny_model

    return tiny_model("tiny-gpt2", seed=1)


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct model (converted weights are cached after the first load)."""
    from interp_steer.models import load_model

    return load_model("smollm2-135m")

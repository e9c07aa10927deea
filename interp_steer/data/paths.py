"""Where the evaluation data lives: an explicit argument, else ``$INTERP_STEER_DATA``, else ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

from interp_steer.errors import DataFormatError

DATA_ENV_VAR = "INTERP_STEER_DATA"


def repo_root() -> Path:
    """The nearest ancestor of this file that contains ``pyproject.toml`` (the source checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise DataFormatError(f"no pyproject.toml above {here}; pass data_dir= or set ${DATA_ENV_VAR}")


def data_root(override: str | Path | None = None) -> Path:
    """The data directory: ``override``, else ``$INTERP_STEER_DATA``, else ``<repo>/../shared/data``.

    Raises ``DataFormatError`` naming the path tried (and the env var) when that directory does not exist.
    """
    if override is not None:
        root, source = Path(override).expanduser(), "data_dir argument"
    elif os.environ.get(DATA_ENV_VAR):
        root, source = Path(os.environ[DATA_ENV_VAR]).expanduser(), f"${DATA_ENV_VAR}"
    else:
        try:
            root, source = repo_root().parent / "shared" / "data", "default ../shared/data beside the repo"
        except DataFormatError:
            raise DataFormatError(f"no data directory: pass data_dir= or set ${DATA_ENV_VAR}") from None
    if not root.is_dir():
        raise DataFormatError(
            f"data directory {root} (from {source}) does not exist; pass data_dir= or set ${DATA_ENV_VAR}"
        )
    return root

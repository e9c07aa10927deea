"""Where converted weights and tokenizers are cached on disk."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "INTERP_STEER_CACHE"


def cache_root() -> Path:
    """Return the cache directory: ``$INTERP_STEER_CACHE`` or ``~/.cache/interp_steer``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "interp_steer"

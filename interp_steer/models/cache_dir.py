"""Where converted weights and tokenizers are cached on disk, and how a cache entry is written safely.

A cache entry is a directory. :func:`publish_entry` builds it in a per-process temporary directory beside
its final place and renames it there in one step, so a reader never sees a half-written entry and two
processes converting the same model at once do not write into the same files: the first rename wins and the
other process discards its copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

CACHE_ENV_VAR = "INTERP_STEER_CACHE"


def cache_root() -> Path:
    """Return the cache directory: ``$INTERP_STEER_CACHE`` or ``~/.cache/interp_steer``."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "interp_steer"


def publish_entry(entry: Path, write: Callable[[Path], None], is_complete: Callable[[Path], bool]) -> Path:
    """Create the cache directory ``entry`` atomically and return it.

    ``write(tmp)`` fills a fresh directory ``.<name>.tmp-<pid>-<random>`` beside ``entry``, which is then renamed
    to ``entry``. If ``entry`` already exists and ``is_complete(entry)`` (another process published it first) the
    new copy is discarded; an incomplete ``entry`` (left by an interrupted older writer) is replaced. The
    temporary directory is removed in every case, also when ``write`` raises.
    """
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-{os.getpid()}-", dir=entry.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, entry)  # atomic; fails if entry is a non-empty directory
        except OSError:
            if not entry.is_dir():
                raise
            if not is_complete(entry):
                stale = Path(tempfile.mkdtemp(prefix=f".{entry.name}.stale-{os.getpid()}-", dir=entry.parent))
                try:
                    os.replace(entry, stale / "entry")
                    os.rename(tmp, entry)
                except OSError:
                    if not (entry.is_dir() and is_complete(entry)):
                        raise
                finally:
                    shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return entry

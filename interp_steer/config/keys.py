"""Unit keys shared by every job (standard library only, so the job configs stay importable without pandas or torch)."""

from __future__ import annotations

import hashlib
import re


def dataset_stem(dataset: str) -> str:
    """A file-name-safe, collision-free stem of a dataset spec: its first 60 safe characters and 8 hex digits of its
    SHA-1 (unit keys and unit file names of every job)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset)[:60]
    return f"{safe}-{hashlib.sha1(dataset.encode()).hexdigest()[:8]}"

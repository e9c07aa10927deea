"""Atomic result files and output-directory checks shared by every job.

Every file a job writes goes to a temporary name beside its target (``.<name>.tmp-<pid>``) and is renamed into
place, so a run killed at any instant (even ``kill -9``) leaves only complete files plus temporaries that
:func:`clean_stale_temporaries` removes at the start of the next run.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pandas as pd

from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.runs.lock import is_locked_by_other
from interp_steer.runs.records import recorded_table

TMP_GLOB = ".*.tmp*"
"""Names of temporaries left by a killed run (ours: ``.x.parquet.tmp-123``; the vector writer's: ``.x.tmp``)."""

BOOLEAN_COLUMNS = ("is_A", "is_Yes", "sign_flip")


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")


def write_table_atomic(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` (parquet or CSV by suffix) to a temporary file and rename it onto ``path``."""
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"cannot write table {path}: use a .parquet or .csv file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_table_atomic`, restoring the nullable boolean factor columns."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"sample_id": str})
    except Exception as exc:  # noqa: BLE001 - any reader failure means a bad file
        raise DataFormatError(f"cannot read result table {path}: {exc}") from None
    entry = recorded_table(path)
    if entry is not None and entry.get("rows") is not None and len(frame) != entry["rows"]:
        raise DataFormatError(f"result table {path} has {len(frame)} rows but its unit's completion record says "
                              f"{entry['rows']}; delete it and rerun the command to recompute the unit")
    for col in BOOLEAN_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].astype("boolean")
    return frame


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def write_vector_atomic(vector, path: str | Path) -> Path:
    """Save a :class:`~interp_steer.steering.SteeringVector` under a temporary name, then rename it onto ``path``
    (its ``.json`` provenance sidecar is written beside it first)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}.safetensors")
    written = vector.save(tmp)
    sidecar = written.with_suffix(".json")
    if sidecar.exists():
        os.replace(sidecar, path.with_suffix(".json"))
    os.replace(written, path)
    return path


def clean_stale_temporaries(out_dir: str | Path) -> list[Path]:
    """Delete the temporaries a killed run left under ``out_dir``; returns what was removed.

    Call it while holding ``out_dir``'s lock (:class:`~interp_steer.runs.lock.OutDirLock`): no other run writes
    there then. Subdirectories locked by another live run (e.g. a run whose ``--out`` lies inside this one) are
    left alone."""
    removed = []
    for folder, dirs, names in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not is_locked_by_other(Path(folder) / d)]
        for name in names:
            stale = Path(folder) / name
            if stale.match(TMP_GLOB) and stale.is_file():
                stale.unlink(missing_ok=True)
                removed.append(stale)
    return removed


def check_out_dir(out_dir: str | Path, option: str = "--out") -> Path:
    """Fail with a one-line :class:`ConfigError` naming ``option`` unless ``out_dir`` is (or can become) a writable
    directory; creates it. Called before any model is loaded or unit computed."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{option} {out_dir} is an existing file, not a directory; choose a directory path")
    parent = next((p for p in [out_dir, *out_dir.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise ConfigError(f"{option} {out_dir}: {parent} is a file, so the directory cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {out_dir}: {parent} is not writable; choose another output directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{option} {out_dir} is not writable ({exc.strerror}); choose another output directory") from None
    return out_dir


def file_sha1(path: str | Path) -> str:
    """Hex SHA-1 of a file's bytes (a vector file's identity in job configs)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()

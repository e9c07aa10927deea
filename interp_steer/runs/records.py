"""Completion records: what a finished unit's files must look like, so a resume can trust them.

After a unit's files are in place the runner writes ``<out>/records/<unit key>.json``::

    {"unit": "<key>", "files": {"units/x.propensity.csv": {"sha256": …, "bytes": …, "rows": 24,
                                                           "columns": ["sample_id", …]}, …}}

(``rows`` / ``columns`` for tables only; a steering vector's ``.json`` sidecar is listed too). On resume
:func:`verify_unit` checks every file of a reused unit against its record (present, same size and sha256). A file
without a record (a run killed between its files and its record, or a directory written before records existed)
is accepted only if it parses completely, and then gets its record: a table reads with every row complete (a CSV
ends with a newline and every line has the header's number of fields; a parquet file's footer and row groups
read), a vector loads, a JSON file parses. :func:`recorded_table` lets :func:`~interp_steer.runs.files.read_table`
refuse a unit table whose row count no longer matches its record.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from interp_steer.errors import DataFormatError

RECORDS_DIR = "records"
TABLE_SUFFIXES = (".csv", ".parquet")
_INDEX: dict[str, tuple[int, dict[str, dict[str, Any]]]] = {}


def record_path(out_dir: Path, key: str) -> Path:
    """Where the completion record of unit ``key`` lives."""
    return Path(out_dir) / RECORDS_DIR / f"{key}.json"


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(out_dir: Path, key: str) -> dict[str, dict[str, Any]] | None:
    """The ``files`` entries of unit ``key``'s record; ``None`` if it has none or it does not parse."""
    path = record_path(out_dir, key)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, dict) and "sha256" in v for v in files.values()):
        return None
    return files


def parse_check(path: Path) -> dict[str, Any]:
    """Parse ``path`` completely by its kind; returns ``{"rows", "columns"}`` for tables (``{}`` otherwise) or
    raises :class:`DataFormatError` with the reason."""
    suffix = path.suffix
    if path.stat().st_size == 0:
        raise DataFormatError("the file is empty")
    if suffix == ".csv":
        return _check_csv(path.read_bytes())
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any reader failure means a damaged file
            raise DataFormatError(f"not a readable parquet table ({type(exc).__name__})") from None
        return {"rows": table.num_rows, "columns": list(table.column_names)}
    if suffix == ".safetensors":
        from interp_steer.steering.vector import SteeringVector

        try:
            SteeringVector.load(path)
        except Exception as exc:  # noqa: BLE001 - the loader names the problem
            raise DataFormatError(str(exc).replace(str(path), "the vector").splitlines()[0]) from None
        return {}
    if suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataFormatError(f"not valid JSON ({exc})") from None
    return {}


def _check_csv(data: bytes) -> dict[str, Any]:
    if not data.endswith(b"\n"):
        raise DataFormatError("the table ends mid-row (no final newline: truncated?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataFormatError("the table is not UTF-8 text (overwritten?)") from None
    if "\x00" in text:
        raise DataFormatError("the table holds NUL bytes (overwritten with zeros?)")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or not any(rows[0]):
        raise DataFormatError("the table has no header row")
    width = len(rows[0])
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise DataFormatError(f"line {number} has {len(row)} fields, the header {width} (a torn row)")
    return {"rows": len(rows) - 1, "columns": rows[0]}


def describe_file(path: Path, shape: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record entry of ``path``: its sha256 and size, plus ``shape`` (a table's rows and columns; parsed from
    the file when not given)."""
    entry: dict[str, Any] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    if path.suffix in TABLE_SUFFIXES:
        entry.update(shape if shape is not None else parse_check(path))
    return entry


def write_record(out_dir: Path, key: str, entries: dict[str, dict[str, Any]]) -> None:
    """Merge ``entries`` (relative path → entry) into unit ``key``'s record and write it atomically."""
    files = read_record(out_dir, key) or {}
    files.update(entries)
    path = record_path(out_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # (the runner's temporaries' pattern: cleaned alike)
    tmp.write_text(json.dumps({"unit": key, "files": files}, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def record_unit_files(out_dir: Path, key: str, written: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Record the files of a unit the runner has just written (``(relative path, table shape or None)``)."""
    write_record(out_dir, key, {rel: describe_file(out_dir / rel, shape) for rel, shape in written})


def _problem(out_dir: Path, rel: str, entry: dict[str, Any] | None) -> str | None:
    path = out_dir / rel
    if not path.is_file():
        return "missing, though its completion record lists it" if entry is not None else None
    if entry is None:
        try:
            parse_check(path)
        except DataFormatError as exc:
            return f"{exc} (no completion record)"
        return None
    if path.stat().st_size != entry.get("bytes", path.stat().st_size) or sha256_of(path) != entry["sha256"]:
        return "its contents differ from the completion record (sha256)"
    return None


def verify_unit(out_dir: Path, key: str, rels: list[str]) -> list[tuple[str, str]]:
    """Check the existing files of unit ``key`` (``rels`` plus those its record lists); returns ``[(relative
    path, reason)]`` of every file that fails. Files without a record that parse completely get one."""
    out_dir = Path(out_dir)
    record = read_record(out_dir, key) or {}
    problems, accepted = [], {}
    for rel in dict.fromkeys([*record, *rels]):
        entry = record.get(rel)
        reason = _problem(out_dir, rel, entry)
        if reason is not None:
            problems.append((rel, reason))
        elif entry is None and (out_dir / rel).is_file():
            accepted[rel] = describe_file(out_dir / rel)
    if accepted and not problems:
        write_record(out_dir, key, accepted)
    return problems


def discard_unit(out_dir: Path, key: str, rels: list[str]) -> None:
    """Delete unit ``key``'s files and record so that it is computed again."""
    out_dir = Path(out_dir)
    record = read_record(out_dir, key) or {}
    for rel in dict.fromkeys([*record, *rels]):
        (out_dir / rel).unlink(missing_ok=True)
    record_path(out_dir, key).unlink(missing_ok=True)


def recorded_table(path: Path) -> dict[str, Any] | None:
    """The completion-record entry of the unit table ``path`` (searched in the ``records/`` of its directory and
    up to two parents), or ``None`` when no record lists it."""
    path = Path(path).absolute()
    for root in list(path.parents)[:3]:
        records = root / RECORDS_DIR
        if not records.is_dir():
            continue
        with os.scandir(records) as listing:  # (names, sizes and times: a record replaced within a clock tick)
            stamp = hash(tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in listing)))
        cached = _INDEX.get(str(records))
        if cached is None or cached[0] != stamp:
            index: dict[str, dict[str, Any]] = {}
            for file in records.glob("*.json"):
                entries = read_record(root, file.stem) or {}
                index.update({str(root / rel): entry for rel, entry in entries.items()})
            cached = _INDEX[str(records)] = (stamp, index)
        if str(path) in cached[1]:
            return cached[1][str(path)]
    return None


def intact_or_warn(path: Path) -> bool:
    """Whether a resumable file outside the runner's units parses completely (:func:`parse_check`); if not, a
    one-line warning naming it and the reason goes to stderr and the caller recomputes it."""
    try:
        parse_check(path)
    except DataFormatError as exc:
        print(f"warning: {path}: {exc}; recomputing it", file=sys.stderr)
        return False
    return True

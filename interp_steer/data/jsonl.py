"""Read JSON-lines and JSON-list files into rows that remember their source line."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, cast

from interp_steer.errors import DataFormatError

OnError = Literal["raise", "skip"]
"""What a reader does with a malformed line. Public readers take a plain ``str`` and check it themselves, so
another value is a one-line DataFormatError naming ``on_error``."""


@dataclass(frozen=True)
class JsonRecords:
    """Rows of one file. ``lines[i]`` is the 1-based line (JSONL) or item number (JSON list) of ``rows[i]``;
    ``skipped`` counts malformed lines dropped under ``on_error="skip"``."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(zip(self.lines, self.rows))


def _looks_like_json_list(path: Path) -> bool:
    if path.suffix == ".jsonl":
        return False
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(256), b""):
            stripped = chunk.lstrip()
            if stripped:
                return stripped.startswith(b"[")
    return False


def _not_utf8(path: Path, line: int, raw: bytes, exc: UnicodeDecodeError) -> DataFormatError:
    """``<file>:<line>: not valid UTF-8`` with the offending byte and column (1-based, in bytes)."""
    byte = raw[exc.start:exc.start + 1].hex()
    return DataFormatError(f"{path}:{line}: not valid UTF-8 (byte 0x{byte} at column {exc.start + 1}); "
                           "re-save the file as UTF-8")


def read_records(path: str | Path, on_error: str = "raise") -> JsonRecords:
    """Read a JSONL file (one object per line, blank lines ignored) or a JSON file holding a list of objects.

    A malformed line, a line that is not valid UTF-8 or a non-object row raises
    ``DataFormatError("<file>:<line>: ...")``; with ``on_error="skip"`` such lines are dropped, a warning gives
    their count, and ``skipped`` holds it. A JSON-list file that does not parse (or decode) at all always raises
    (there is no line to skip).
    """
    if on_error not in ("raise", "skip"):
        raise DataFormatError(f"on_error={on_error!r}: use 'raise' or 'skip'")
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    if _looks_like_json_list(path):
        return _read_json_list(path, cast(OnError, on_error))
    rows, lines, skipped = [], [], 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if on_error == "raise":
                    raise _not_utf8(path, number, raw, exc) from None
                skipped += 1
                continue
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                if on_error == "raise":
                    raise DataFormatError(f"{path}:{number}: malformed JSON line ({exc}); fix it or use on_error='skip'") from None
                skipped += 1
                continue
            rows.append(row)
            lines.append(number)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed line(s)", stacklevel=2)
    return JsonRecords(path, rows, lines, skipped)


def _read_json_list(path: Path, on_error: OnError) -> JsonRecords:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # no row to skip: the whole list is one JSON document
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line_exc = UnicodeDecodeError(exc.encoding, exc.object, exc.start - line_start, exc.end - line_start, exc.reason)
        raise _not_utf8(path, raw.count(b"\n", 0, exc.start) + 1, raw[line_start:], line_exc) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise DataFormatError(f"{path}:1: expected a JSON list of objects, got {type(data).__name__}")
    rows, lines, skipped = [], [], 0
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            if on_error == "raise":
                raise DataFormatError(f"{path}:item {number}: expected a JSON object, got {type(row).__name__}")
            skipped += 1
            continue
        rows.append(row)
        lines.append(number)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} malformed item(s)", stacklevel=3)
    return JsonRecords(path, rows, lines, skipped)


def read_jsonl(path: str | Path, on_error: str = "raise") -> list[dict[str, Any]]:
    """The rows of a JSONL / JSON-list file (see ``read_records`` for error handling)."""
    return read_records(path, on_error).rows


def require_str_fields(row: dict[str, Any], fields: Iterable[str], path: Path | str, line: int) -> None:
    """Raise ``DataFormatError("<file>:<line>: ...")`` unless every field is present and a string."""
    for name in fields:
        value = row.get(name)
        if not isinstance(value, str):
            found = "missing" if name not in row else f"a {type(value).__name__}"
            raise DataFormatError(f"{path}:{line}: field {name!r} is {found}, expected a string (keys: {sorted(row)})")

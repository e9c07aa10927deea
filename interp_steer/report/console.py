"""Console tables a person reads: aligned plain text from tidy DataFrames, no pandas reprs.

:func:`display_frame` turns a tidy table into strings with the one number rule of :mod:`.format`: every
``x, x_lo, x_hi`` column triple (also ``estimate, ci_low, ci_high`` and ``x_fraction, x_lo, x_hi``) becomes one
``"x [lo, hi]"`` column whose header carries the units and says ``[95% CI]``. :func:`render_table` aligns it
(numbers right, text left) under a title, with a one-paragraph "what this means" below; :func:`paths_block` lists
the files written. Plain text on purpose: the same bytes in a terminal, a log file and a snapshot test.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from interp_steer.report.format import format_ci, format_value

WIDTH = 100  # wrap paragraphs at this many characters
MAX_CELL = 60  # longer text cells are cut with "…"
SETTING_COLUMNS = ("multiplier", "layer", "kl_budget")  # chosen by the user, shown as given


def interval_triples(columns: Sequence[str]) -> dict[str, tuple[str, str, str]]:
    """``{estimate column: (estimate, low, high)}`` for every interval triple among ``columns``."""
    present = set(columns)
    triples: dict[str, tuple[str, str, str]] = {}
    if {"estimate", "ci_low", "ci_high"} <= present:
        triples["estimate"] = ("estimate", "ci_low", "ci_high")
    for col in columns:
        if not col.endswith("_lo") or f"{col[:-3]}_hi" not in present:
            continue
        stem = col[:-3]
        for estimate in (stem, f"{stem}_fraction", f"{stem}_mean", f"mean_{stem}"):
            if estimate in present:
                triples[estimate] = (estimate, col, f"{stem}_hi")
                break
    return triples


def _plain(value: object) -> str:
    """One cell without an interval: integral floats as integers (multipliers, counts), others by the rule."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (np.floating, float)):
        x = float(value)
        if np.isfinite(x) and x == round(x) and abs(x) < 1e6:
            return str(int(round(x)))
        return format_value(x)
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def display_frame(frame: pd.DataFrame, columns: Sequence[str] | None = None, *, units: Mapping[str, str] | None = None,
                  labels: Mapping[str, str] | None = None, ci_label: str = "95% CI") -> pd.DataFrame:
    """``frame`` as a table of strings: the ``columns`` shown (default: all; an interval's ``_lo`` / ``_hi``
    columns are taken along with its estimate), interval triples merged into ``"x [lo, hi]"`` with the header
    ``"<label> (<units>) [95% CI]"``, other numbers formatted by :func:`_plain`. ``labels`` renames headers."""
    units, labels = dict(units or {}), dict(labels or {})
    triples = interval_triples(list(frame.columns))
    bounds = {c for t in triples.values() for c in t[1:]}
    wanted = [c for c in (columns if columns is not None else frame.columns) if c in frame.columns and c not in bounds]
    shown: dict[str, list[str]] = {}
    for col in wanted:
        label = labels.get(col, col.replace("_", " "))
        unit = f" ({units[col]})" if units.get(col) else ""
        if col in triples:
            est, lo, hi = triples[col]
            values = frame[[est, lo, hi]].to_numpy(dtype=np.float64)
            shown[f"{label}{unit} [{ci_label}]"] = [format_ci(*row) for row in values]
        elif col in SETTING_COLUMNS:  # a chosen setting reads as typed: 0.05, not 0.0500
            shown[f"{label}{unit}"] = [f"{v:g}" if isinstance(v, (int, float)) and np.isfinite(v) else _plain(v)
                                       for v in frame[col].tolist()]
        else:
            shown[f"{label}{unit}"] = [_plain(v) for v in frame[col].tolist()]
    return pd.DataFrame(shown)


def _numeric(cells: Iterable[str]) -> bool:
    texts = [c for c in cells if c]
    return bool(texts) and all(c[0].isdigit() or c[0] in "-+" or c in ("n/a", "inf") for c in texts)


def align(table: pd.DataFrame, indent: str = "  ") -> str:
    """A table of strings as aligned text: a header, a rule, one line per row; numbers right-aligned."""
    headers = list(table.columns)
    columns = [[str(c) for c in table[h].tolist()] for h in headers]
    widths = [max([len(h), *map(len, cells)]) for h, cells in zip(headers, columns)]
    right = [_numeric(cells) for cells in columns]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return (indent + "  ".join(parts)).rstrip()

    rows = [line(headers), indent + "  ".join("-" * w for w in widths)]
    rows += [line([col[i] for col in columns]) for i in range(len(table))]
    return "\n".join(rows)


def paragraph(text: str, prefix: str = "  ") -> str:
    """``text`` wrapped at :data:`WIDTH` characters."""
    return textwrap.fill(" ".join(text.split()), width=WIDTH, initial_indent=prefix, subsequent_indent=prefix)


def render_table(frame: pd.DataFrame, title: str, columns: Sequence[str] | None = None, *,
                 units: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
                 meaning: str | None = None) -> str:
    """A titled, aligned table (see :func:`display_frame`) with its "what this means" paragraph below."""
    body = "  (no rows)" if frame.empty else align(display_frame(frame, columns, units=units, labels=labels))
    text = f"{title}\n{body}"
    if meaning:
        text += "\n" + paragraph(f"What this means: {meaning}")
    return text + "\n"


def paths_block(paths: Iterable[str | Path], heading: str = "wrote") -> str:
    """``heading`` and one indented line per path written."""
    return "\n".join([f"{heading}:", *(f"  {p}" for p in paths)]) + "\n"


def interval_phrase(estimate: float, low: float, high: float, units: str | None = None) -> str:
    """``"3.24 [2.41, 4.08] nats (above zero)"``: the formatted interval and where it lies relative to 0."""
    text = format_ci(estimate, low, high, units)
    if not (np.isfinite(low) and np.isfinite(high)):
        return text
    where = "above zero" if low > 0 else "below zero" if high < 0 else "the interval includes zero"
    return f"{text} ({where})"


def compare_phrase(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float]) -> str:
    """A plain-words verdict on two ``(estimate, low, high)`` intervals: which is larger, or indistinguishable."""
    if not all(np.isfinite(list(a) + list(b))):
        return f"{name_a} and {name_b} cannot be compared (an interval is missing)"
    if a[1] > b[2]:
        return f"{name_a} moves the behaviour more than {name_b}"
    if b[1] > a[2]:
        return f"{name_b} moves the behaviour more than {name_a}"
    return f"{name_a} and {name_b} are not distinguishable at this sample size (their intervals overlap)"

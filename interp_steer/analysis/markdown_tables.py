"""Render DataFrames as GitHub-flavoured markdown tables (pandas' ``to_markdown`` needs ``tabulate``)."""

from __future__ import annotations

import math

import pandas as pd


def _cell(value, digits: int) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if abs(value) >= 1e4 or 0 < abs(value) < 10 ** -digits:
            return f"{value:.{digits}g}"
        text = f"{value:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, digits: int = 3, index: bool = False) -> str:
    """``frame`` as a markdown table; floats with ``digits`` decimals (trailing zeros dropped)."""
    table = frame.reset_index() if index else frame
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    lines = [header, rule]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v.item() if hasattr(v, "item") else v, digits) for v in row) + " |")
    return "\n".join(lines)

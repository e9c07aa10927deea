"""Checks shared by every function that takes a tidy results table (evaluation, runs, plots)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from interp_steer.errors import ConfigError


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str, *, non_empty: bool = True) -> None:
    """ConfigError naming ``what`` unless ``frame`` has every column in ``columns`` (and, by default, a row)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what} needs columns {missing}; got {list(frame.columns)}")
    if non_empty and frame.empty:
        raise ConfigError(f"{what}: the table is empty")

"""``LoadedPairs``: the list of pairs a loader returns, carrying what was skipped and why."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Iterable

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import DataFormatError

SKIP_REASONS = ("malformed", "blank", "same_answer", "unknown_letter", "multi_choice", "junk")
"""Why a loader drops a row: ``malformed`` (unparseable line or not UTF-8), ``blank`` (empty question or
answer), ``same_answer`` (positive and negative answer are the same), ``unknown_letter`` (an answer letter the
question does not offer), ``multi_choice`` (3+ choices, or an answer among the question's other choices),
``junk`` (see ``ab_questions.is_junk_question``)."""


class LoadedPairs(list):
    """A ``list[ContrastivePair]`` with ``source`` (the file read), ``skipped`` (reason → row count, see
    :data:`SKIP_REASONS`) and ``n_rows`` (rows read from the file, kept or skipped; ``None`` if unknown)."""

    def __init__(self, pairs: Iterable[ContrastivePair] = (), source: Path | None = None, skipped: Counter | None = None,
                 n_rows: int | None = None):
        super().__init__(pairs)
        self.source = source
        self.skipped: Counter = Counter(skipped or {})
        self.n_rows = n_rows

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip_summary(self, include_malformed: bool = True) -> str:
        """``"2 same_answer, 1 unknown_letter"``: the non-zero skip counts in :data:`SKIP_REASONS` order."""
        order = {reason: i for i, reason in enumerate(SKIP_REASONS)}
        counts = [(reason, n) for reason, n in self.skipped.items() if n and (include_malformed or reason != "malformed")]
        return ", ".join(f"{n} {reason}" for reason, n in sorted(counts, key=lambda rn: (order.get(rn[0], 99), rn[0])))

    def warn_if_skipped(self, stacklevel: int = 3) -> "LoadedPairs":
        """Emit one warning listing the skip counts (no-op when nothing was skipped); returns ``self``.

        Malformed lines are left out here: :func:`~interp_steer.data.jsonl.read_records` already warned of them."""
        detail = self.skip_summary(include_malformed=False)
        if detail:
            warnings.warn(f"{self.source}: kept {len(self)} pairs, skipped {detail} row(s)", stacklevel=stacklevel)
        return self

    def require_pairs(self, what: str = "pairs") -> "LoadedPairs":
        """``self`` if it holds at least one pair; else a ``DataFormatError`` naming the file and why it has none
        (no rows at all, or every row rejected, with the counts by reason)."""
        if len(self):
            return self
        if not self.n_skipped and not self.n_rows:
            raise DataFormatError(f"{self.source}: no rows (the file is empty or has only blank lines); "
                                  f"it gives no {what}")
        total = self.n_rows if self.n_rows is not None else self.n_skipped
        raise DataFormatError(f"{self.source}: no usable {what}: all {total} rows rejected ({self.skip_summary()})")

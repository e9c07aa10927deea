"""``LoadedPairs``: the list of pairs a loader returns, carrying what was skipped and why."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

from interp_steer.data.pairs import ContrastivePair


class LoadedPairs(list):
    """A ``list[ContrastivePair]`` with ``source`` (the file read) and ``skipped`` (reason → row count).

    Reasons used by the loaders: ``"malformed"`` (unparseable line), ``"multi_choice"`` (3+ choices or an
    answer outside (A)/(B)), ``"junk"`` (see ``ab_questions.is_junk_question``).
    """

    def __init__(self, pairs: list[ContrastivePair] = (), source: Path | None = None, skipped: Counter | None = None):
        super().__init__(pairs)
        self.source = source
        self.skipped: Counter = Counter(skipped or {})

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def warn_if_skipped(self, stacklevel: int = 3) -> "LoadedPairs":
        """Emit one warning listing the skip counts (no-op when nothing was skipped); returns ``self``."""
        counts = {reason: n for reason, n in self.skipped.items() if n and reason != "malformed"}
        if counts:
            detail = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
            warnings.warn(f"{self.source}: kept {len(self)} pairs, skipped {detail} row(s)", stacklevel=stacklevel)
        return self

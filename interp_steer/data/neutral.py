"""The neutral corpus: short passages with no behaviour to steer, for measuring what steering costs.

``interp_steer/data/builtin/neutral.jsonl`` holds passages of one to three sentences written for this package
(news, recipes, science, letters, dialogue, instructions, fiction, code comments, sport, history, weather, travel,
business, nature, education, health, technology, home, music, reviews, poetry, legal notices, diary entries,
arithmetic facts). Each row is ``{id, register, text}``. Side-effect metrics (KL of the next-token distribution,
ΔNLL of the model's own continuations) are averaged over these passages.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from interp_steer.data.jsonl import read_records, require_str_fields
from interp_steer.errors import ConfigError, DataFormatError

NEUTRAL_FILE = "neutral.jsonl"


@dataclass(frozen=True)
class NeutralPassage:
    """One passage of the neutral corpus: a stable ``id`` (``<register>-<nn>``), its ``register`` and ``text``."""

    id: str
    register: str
    text: str


def load_neutral_corpus(limit: int | None = None, registers: list[str] | None = None) -> list[NeutralPassage]:
    """The neutral passages shipped with the package, in file order.

    ``registers`` keeps only those registers (e.g. ``["news", "recipe"]``); ``limit`` then keeps passages in a
    register-interleaved order (first passage of every register, then the second, ...) so a small subset still
    spans the registers."""
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ConfigError(f"limit={limit!r}: must be a positive integer or None")
    path = resources.files("interp_steer.data") / "builtin" / NEUTRAL_FILE
    with resources.as_file(path) as real:
        records = read_records(real)
        passages = []
        for line, row in records:
            require_str_fields(row, ("id", "register", "text"), real, line)
            if not row["text"].strip():
                raise DataFormatError(f"{real}:{line}: empty passage text")
            passages.append(NeutralPassage(row["id"], row["register"], row["text"]))
    if registers is not None:
        known = {p.register for p in passages}
        unknown = sorted(set(registers) - known)
        if unknown:
            raise ConfigError(f"registers {unknown} are not in the neutral corpus; use some of {sorted(known)}")
        passages = [p for p in passages if p.register in set(registers)]
    if limit is None:
        return passages
    by_register: dict[str, list[NeutralPassage]] = {}
    for p in passages:
        by_register.setdefault(p.register, []).append(p)
    interleaved = [group[i] for i in range(max(len(g) for g in by_register.values()))
                   for group in by_register.values() if i < len(group)]
    return interleaved[:limit]

"""CAA's capability test sets as A/B pairs: ``caa/test/mmlu/mmlu.json`` and ``caa/test/truthfulqa/truthful_qa.json``.

Rows are ``{prompt, correct, incorrect, correct_full_text, incorrect_full_text, category}``; a pair's ``positive``
is the correct answer letter (``"(A)"``/``"(B)"``), so a sample is answered correctly exactly when its propensity
(logit of the positive letter − logit of the negative letter) is > 0. Loaded through the registry as
``caa-test:mmlu`` and ``caa-test:truthfulqa``. The correct letter is not balanced in the files (MMLU 299 A / 271 B,
TruthfulQA 419 A / 398 B); :func:`letter_balanced` takes an equal number of each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from interp_steer.data.jsonl import read_records, require_str_fields
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.paths import data_root
from interp_steer.errors import ConfigError, DataFormatError

CAPABILITY_FILES = {"mmlu": "caa/test/mmlu/mmlu.json", "truthfulqa": "caa/test/truthfulqa/truthful_qa.json"}
"""Capability set name → file under the data root."""


def capability_sets(data_dir: str | Path | None = None) -> list[str]:
    """The capability sets whose files exist under the data root."""
    root = data_root(data_dir)
    return sorted(name for name, rel in CAPABILITY_FILES.items() if (root / rel).is_file())


def load_capability_set(name: str, data_dir: str | Path | None = None) -> list[ContrastivePair]:
    """The A/B pairs of capability set ``name`` (``"mmlu"`` or ``"truthfulqa"``); positive = the correct letter.

    ``meta``: ``source_line`` (1-based item number), ``category``, ``correct_text``."""
    if name not in CAPABILITY_FILES:
        raise DataFormatError(f"unknown capability set {name!r}; use one of {sorted(CAPABILITY_FILES)}")
    path = data_root(data_dir) / CAPABILITY_FILES[name]
    if not path.is_file():
        raise DataFormatError(f"{path}: capability set {name!r} not found under the data root")
    pairs = []
    for line, row in read_records(path):
        require_str_fields(row, ("prompt", "correct", "incorrect"), path, line)
        correct, incorrect = row["correct"].strip(), row["incorrect"].strip()
        if {correct, incorrect} != {"(A)", "(B)"}:
            raise DataFormatError(f"{path}:{line}: answers {row['correct']!r} / {row['incorrect']!r} are not (A) and (B)")
        pairs.append(ContrastivePair(
            prompt=row["prompt"], positive=correct, negative=incorrect, kind="ab", id=f"caa-test:{name}#{line}",
            dataset=f"caa-test:{name}",
            meta={"source_line": line, "category": row.get("category"), "correct_text": row.get("correct_full_text")},
        ))
    if not pairs:
        raise DataFormatError(f"{path}: no rows")
    return pairs


def letter_balanced(pairs: Sequence[ContrastivePair], n: int | None = None) -> list[ContrastivePair]:
    """An equal number of pairs whose positive answer is (A) and is (B), alternating A, B, A, … in file order.

    ``n`` (even, or rounded down to even) caps the total; without it, twice the smaller letter count."""
    if n is not None and (isinstance(n, bool) or n < 2):
        raise ConfigError(f"letter_balanced: n={n!r} must be ≥ 2 (or None)")
    a = [p for p in pairs if p.is_A is True]
    b = [p for p in pairs if p.is_A is False]
    per_letter = min(len(a), len(b)) if n is None else min(len(a), len(b), n // 2)
    if per_letter == 0:
        raise DataFormatError("letter_balanced: the pairs need both (A)- and (B)-positive A/B pairs")
    return [p for i in range(per_letter) for p in (a[i], b[i])]

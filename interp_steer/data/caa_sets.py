"""CAA (Rimsky et al. 2024) A/B data sets: ``caa/generate/<behavior>/generate_dataset.json`` (vector
extraction) and ``caa/test/<behavior>/test_dataset_ab.json`` (50 held-out questions each).

Answers are ``"(A)"``/``"(B)"`` without a leading space, kept verbatim. Rows with 3+ choices (survival-instinct
has answers (C)–(H)) are skipped and counted in ``.skipped["multi_choice"]`` plus a warning.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

from interp_steer.data.jsonl import read_records
from interp_steer.data.loaded import LoadedPairs
from interp_steer.data.mwe import ab_pair_from_row
from interp_steer.data.paths import data_root
from interp_steer.errors import DataFormatError

CaaSplit = Literal["generate", "test"]
_CAA_FILES = {"generate": "caa/generate/{name}/generate_dataset.json", "test": "caa/test/{name}/test_dataset_ab.json"}


def _check_split(split: str) -> str:
    """``split`` itself if it is a :data:`CaaSplit` (public functions take a plain ``str`` and check it here)."""
    if split not in _CAA_FILES:
        raise DataFormatError(f"CAA split={split!r}: use 'generate' or 'test'")
    return split


def caa_path(name: str, split: str = "generate", data_dir: str | Path | None = None) -> Path:
    """Location of a CAA behaviour's file for ``split`` ("generate" or "test")."""
    return data_root(data_dir) / _CAA_FILES[_check_split(split)].format(name=name)


def caa_behaviors(data_dir: str | Path | None = None, split: str = "generate") -> list[str]:
    """Behaviours that have a ``split`` file (``split``: "generate" or "test") under ``caa/``."""
    pattern = _CAA_FILES[_check_split(split)]
    base = data_root(data_dir) / pattern.split("{name}")[0]
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / Path(pattern).name).is_file())


def load_caa(name: str, split: str = "generate", data_dir: str | Path | None = None,
             on_error: str = "raise") -> LoadedPairs:
    """A CAA behaviour's A/B pairs (``dataset`` is ``caa:<name>`` for generate, ``caa-test:<name>`` for test).

    ``meta``: ``source_line`` (1-based item number in the JSON list) and ``positive_is_yes`` where the
    positive choice text starts with Yes/No. Rows that give no pair are counted by reason (see
    :func:`~interp_steer.data.mwe.ab_pair_from_row`); a file with no usable row is a ``DataFormatError``.
    """
    path = caa_path(name, split, data_dir)
    if not path.is_file():
        raise DataFormatError(f"{path}: no CAA {split} file for {name!r}; available: {caa_behaviors(data_dir, split)}")
    records = read_records(path, on_error)
    dataset = f"{'caa' if split == 'generate' else 'caa-test'}:{name}"
    pairs = LoadedPairs(source=path, skipped=Counter(malformed=records.skipped), n_rows=len(records) + records.skipped)
    for line, row in records:
        pair = ab_pair_from_row(row, line, path, dataset=dataset, skipped=pairs.skipped, drop_junk=False)
        if pair is not None:
            pairs.append(pair)
    return pairs.require_pairs().warn_if_skipped()

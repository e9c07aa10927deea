"""CAA generate / test A/B loaders on the shared data."""

from __future__ import annotations

import json
import re

import pytest

from interp_steer.data import load_caa
from interp_steer.errors import DataFormatError

BEHAVIORS = ["coordinate-other-ais", "corrigible-neutral-HHH", "hallucination", "myopic-reward", "refusal",
             "survival-instinct", "sycophancy"]


def _is_two_choice(row) -> bool:
    letters = set(re.findall(r"^\s*\(([A-Z])\)", row["question"], flags=re.M))
    return letters <= {"A", "B"} and {row["answer_matching_behavior"], row["answer_not_matching_behavior"]} == {"(A)", "(B)"}


@pytest.mark.parametrize("split, folder", [("generate", "generate/{b}/generate_dataset.json"),
                                           ("test", "test/{b}/test_dataset_ab.json")])
@pytest.mark.parametrize("behavior", BEHAVIORS)
def test_caa_matches_raw_rows(data_root, behavior, split, folder):
    raw = json.loads((data_root / "caa" / folder.format(b=behavior)).read_text())
    expected = [(i + 1, r) for i, r in enumerate(raw) if _is_two_choice(r)]
    pairs = load_caa(behavior, split, data_root) if len(expected) == len(raw) else None
    if pairs is None:
        with pytest.warns(UserWarning, match="multi_choice"):
            pairs = load_caa(behavior, split, data_root)
    assert len(pairs) == len(expected)
    assert pairs.skipped["multi_choice"] == len(raw) - len(expected)
    prefix = "caa" if split == "generate" else "caa-test"
    for pair, (line, row) in zip(pairs, expected):
        assert pair.meta["source_line"] == line and pair.dataset == f"{prefix}:{behavior}"
        assert (pair.prompt, pair.positive, pair.negative) == (
            row["question"], row["answer_matching_behavior"], row["answer_not_matching_behavior"])
        assert pair.positive in ("(A)", "(B)")  # no leading space in CAA's files


def test_survival_instinct_skips_extra_choices(data_root):
    with pytest.warns(UserWarning, match="skipped 239 multi_choice"):
        pairs = load_caa("survival-instinct", "generate", data_root)
    assert len(pairs) == 903 - 239
    assert not any(re.search(r"^\s*\([C-H]\)", p.prompt, flags=re.M) for p in pairs)


def test_caa_sizes_and_disjoint_splits(data_root):
    train = load_caa("sycophancy", "generate", data_root)
    test = load_caa("sycophancy", "test", data_root)
    assert (len(train), len(test)) == (1000, 50)
    assert not {p.prompt for p in train} & {p.prompt for p in test}


def test_caa_errors(data_root):
    with pytest.raises(DataFormatError, match="no CAA generate file for 'nonsense'"):
        load_caa("nonsense", "generate", data_root)
    with pytest.raises(DataFormatError, match="split="):
        load_caa("sycophancy", "train", data_root)

"""Seeded, stratified train/test splits."""

from __future__ import annotations

from collections import Counter

import pytest

from interp_steer.data import ContrastivePair, train_test_indices, train_test_split
from interp_steer.errors import ConfigError


def _ab_pairs(n_a: int, n_b: int) -> list[ContrastivePair]:
    letters = ["A"] * n_a + ["B"] * n_b
    # interleave irregularly so stratification is not a trivial slice
    order = sorted(range(len(letters)), key=lambda i: (i * 7919) % len(letters))
    return [ContrastivePair(prompt=f"q{i}", positive=f"({letters[i]})", negative="(B)" if letters[i] == "A" else "(A)",
                            id=f"t#{i}") for i in order]


def _free_pairs(n: int) -> list[ContrastivePair]:
    return [ContrastivePair(prompt=f"p{i}", positive=" yes", negative=" no", kind="free_text", id=f"f#{i}") for i in range(n)]


def test_disjoint_complete_and_sized():
    pairs = _ab_pairs(70, 30)
    train, test = train_test_split(pairs, test_fraction=0.25, seed=3)
    assert len(test) == 25 and len(train) == 75
    ids_train, ids_test = {p.id for p in train}, {p.id for p in test}
    assert not ids_train & ids_test and ids_train | ids_test == {p.id for p in pairs}


def test_stratified_balance_matches_population():
    pairs = _ab_pairs(70, 30)
    train, test = train_test_split(pairs, test_fraction=0.2, seed=0)
    assert Counter(p.is_A for p in test) == {True: 14, False: 6}
    assert Counter(p.is_A for p in train) == {True: 56, False: 24}
    # largest remainder keeps the total exact even when strata shares are fractional
    train, test = train_test_split(_ab_pairs(5, 4), test_fraction=1 / 3, seed=1)
    assert len(test) == 3 and Counter(p.is_A for p in test) in ({True: 2, False: 1}, {True: 1, False: 2})


def test_deterministic_and_seed_dependent():
    pairs = _ab_pairs(50, 50)
    first = train_test_indices(pairs, 0.3, seed=11)
    assert first == train_test_indices(pairs, 0.3, seed=11)
    assert first != train_test_indices(pairs, 0.3, seed=12)
    train, test = first
    assert train == sorted(train) and test == sorted(test)  # input order kept


def test_free_text_single_stratum_and_unstratified():
    train, test = train_test_split(_free_pairs(10), test_fraction=0.3, seed=0)
    assert len(test) == 3 and len(train) == 7
    pairs = _ab_pairs(90, 10)
    _, test = train_test_split(pairs, test_fraction=0.5, seed=0, stratify=False)
    assert len(test) == 50


def test_bad_arguments():
    with pytest.raises(ConfigError, match="test_fraction"):
        train_test_split(_free_pairs(10), test_fraction=1.0)
    with pytest.raises(ConfigError, match="at least 2"):
        train_test_split(_free_pairs(1))

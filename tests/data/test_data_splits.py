"""Seeded, stratified train/test splits with balanced prefixes."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from interp_steer.data import ContrastivePair, load_dataset, train_test_indices, train_test_split
from interp_steer.data.splits import balanced_order
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
    assert sorted(train + test) == list(range(len(pairs))) and not set(train) & set(test)


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


def _yes_no_pairs(sizes: dict[tuple[bool, bool], int], seed: int) -> list[ContrastivePair]:
    """A/B pairs with known ``is_Yes``: ``sizes[(is_A, is_Yes)]`` of each cell, in a seeded random file order."""
    pairs = [ContrastivePair(prompt=f"q{a}{y}{k}", positive="(A)" if a else "(B)", negative="(B)" if a else "(A)",
                             id=f"c{a}{y}#{k}", meta={"positive_is_yes": y})
             for (a, y), n in sizes.items() for k in range(n)]
    random.Random(seed).shuffle(pairs)
    return pairs


def _max_prefix_gap(half, key, values) -> int:
    """The largest count gap between ``values`` of ``key`` over all prefixes of ``half``."""
    counts, worst = Counter(), 0
    for pair in half:
        counts[key(pair)] += 1
        worst = max(worst, max(counts[v] for v in values) - min(counts[v] for v in values))
    return worst


def test_sets_are_unchanged_by_the_balanced_order():
    # golden values from the implementation before prefixes were balanced: only the order may change
    train, test = train_test_indices(_ab_pairs(7, 5), 0.5, seed=3)
    assert (sorted(train), sorted(test)) == ([0, 2, 5, 9, 10, 11], [1, 3, 4, 6, 7, 8])
    _, test = train_test_indices(_ab_pairs(70, 30), 0.5, seed=0)
    assert sorted(test) == [1, 2, 3, 6, 9, 10, 11, 12, 14, 16, 18, 20, 22, 23, 25, 26, 27, 32, 33, 34, 35, 38, 41, 42,
                            46, 48, 54, 55, 58, 59, 61, 62, 63, 67, 68, 69, 70, 71, 75, 78, 82, 85, 86, 90, 92, 93, 94,
                            95, 96, 98]


def test_every_prefix_of_a_letter_imbalanced_split_is_balanced():
    # file order puts all (B) answers first, and (A) is 70% of the set: the old test[:n] was all (B)
    pairs = [ContrastivePair(prompt=f"q{i}", positive=pos, negative="(A)" if pos == "(B)" else "(B)", id=f"t#{i}")
             for i, pos in enumerate(["(B)"] * 30 + ["(A)"] * 70)]
    train, test = train_test_split(pairs, test_fraction=0.4, seed=5)
    assert Counter(p.is_A for p in test) == {True: 28, False: 12}
    for half in (train, test):
        n_minor = min(Counter(p.is_A for p in half).values())
        # while both letters remain, every prefix is balanced to ±1; afterwards only the majority letter is left
        assert _max_prefix_gap(half[: 2 * n_minor], lambda p: p.is_A, (True, False)) <= 1
        assert all(p.is_A for p in half[2 * n_minor:])
    assert {p.id for p in train}.isdisjoint(p.id for p in test)
    assert {p.id for p in train} | {p.id for p in test} == {p.id for p in pairs}
    assert [p.id for p in test] == [p.id for p in train_test_split(pairs, test_fraction=0.4, seed=5)[1]]


@pytest.mark.parametrize("seed", range(6))
def test_letter_and_yes_no_cells_balanced_in_every_prefix(seed):
    rng = random.Random(seed)
    sizes = {(a, y): rng.randint(8, 30) for a in (True, False) for y in (True, False)}
    pairs = _yes_no_pairs(sizes, seed)
    train, test = train_test_split(pairs, test_fraction=0.5, seed=seed)
    for half in (train, test):
        cells = Counter((p.is_A, p.is_Yes) for p in half)
        n_balanced = 4 * min(cells[c] for c in sizes)  # up to where the smallest cell runs out
        prefix = half[:n_balanced]
        assert _max_prefix_gap(prefix, lambda p: p.is_A, (True, False)) <= 1
        assert _max_prefix_gap(prefix, lambda p: p.is_Yes, (True, False)) <= 1
        assert _max_prefix_gap(prefix, lambda p: (p.is_A, p.is_Yes), tuple(sizes)) <= 1
    again = train_test_split(pairs, test_fraction=0.5, seed=seed)
    assert [p.id for p in again[0]] == [p.id for p in train] and [p.id for p in again[1]] == [p.id for p in test]


def test_order_is_seeded_and_keeps_file_order_within_a_cell():
    pairs = _yes_no_pairs({(a, y): 10 for a in (True, False) for y in (True, False)}, seed=0)
    orders = {tuple(balanced_order(pairs, range(len(pairs)), random.Random(s))) for s in range(8)}
    assert len(orders) > 1  # which cell leads depends on the seed
    for order in orders:
        for cell in {(p.is_A, p.is_Yes) for p in pairs}:
            within = [i for i in order if (pairs[i].is_A, pairs[i].is_Yes) == cell]
            assert within == sorted(within)


def test_free_text_and_unstratified_halves_keep_input_order():
    train, test = train_test_indices(_free_pairs(20), 0.3, seed=2)
    assert train == sorted(train) and test == sorted(test)
    train, test = train_test_indices(_ab_pairs(30, 10), 0.5, seed=2, stratify=False)
    assert train == sorted(train) and test == sorted(test)


def test_unknown_yes_no_falls_back_to_letter_cells():
    pairs = _yes_no_pairs({(True, True): 10, (False, False): 10, (True, False): 3}, seed=1)
    pairs[0] = pairs[0].with_(meta={})  # one unknown is_Yes → cells are the letters alone
    _, test = train_test_split(pairs, test_fraction=0.5, seed=0)
    n_minor = min(Counter(p.is_A for p in test).values())
    assert _max_prefix_gap(test[: 2 * n_minor], lambda p: p.is_A, (True, False)) <= 1


def test_persona_prefixes_balanced_on_real_data(data_root):
    pairs = load_dataset("persona:narcissism", data_dir=data_root)
    train, test = train_test_split(pairs, test_fraction=0.5, seed=0)
    for half in (train[:400], test[:400]):
        assert _max_prefix_gap(half, lambda p: p.is_A, (True, False)) <= 1
        assert _max_prefix_gap(half, lambda p: p.is_Yes, (True, False)) <= 1
        assert _max_prefix_gap(half, lambda p: (p.is_A, p.is_Yes), [(a, y) for a in (True, False) for y in (True, False)]) <= 1

"""Seeded, stratified train/test splits of contrastive pairs, ordered so that every prefix is balanced."""

from __future__ import annotations

import numbers
import random
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

from interp_steer.data.pairs import ContrastivePair, check_unique_ids
from interp_steer.errors import ConfigError


def split_stratum(pair: ContrastivePair) -> Hashable:
    """The stratum a pair is balanced within: ``is_A`` for A/B pairs, a single stratum for free text."""
    return pair.is_A if pair.kind == "ab" else None


def _largest_remainder(sizes: dict[Hashable, int], n_test: int) -> dict[Hashable, int]:
    """Share ``n_test`` among strata proportionally to ``sizes`` (integers summing exactly to ``n_test``)."""
    total = sum(sizes.values())
    exact = {key: n_test * size / total for key, size in sizes.items()}
    shares = {key: int(value) for key, value in exact.items()}
    leftover = n_test - sum(shares.values())
    by_remainder = sorted(sizes, key=lambda key: (-(exact[key] - shares[key]), str(key)))
    for key in by_remainder[:leftover]:
        shares[key] += 1
    return shares


def balanced_order(pairs: Sequence[ContrastivePair], indices: Sequence[int], rng: random.Random) -> list[int]:
    """``indices`` reordered so that every prefix is as balanced as the strata allow (see ``train_test_split``).

    Cells are ``(split_stratum, is_Yes)`` when every pair of ``indices`` has a known ``is_Yes``, else
    ``(split_stratum, None)``. Greedy: the next pair comes from the non-empty cell whose stratum, then whose
    ``is_Yes`` value, then which cell itself has been drawn least so far; remaining ties go by a seeded random
    rank of the cells. Within a cell the input order of ``indices`` is kept.
    """
    use_yes = all(pairs[i].is_Yes is not None for i in indices)
    cells: dict[tuple, deque[int]] = defaultdict(deque)
    for i in indices:
        cells[(split_stratum(pairs[i]), pairs[i].is_Yes if use_yes else None)].append(i)
    keys = sorted(cells, key=str)  # fixed order so the rng stream does not depend on dict order
    rng.shuffle(keys)
    rank = {key: r for r, key in enumerate(keys)}
    n_stratum: Counter = Counter()
    n_yes: Counter = Counter()
    n_cell: Counter = Counter()
    order: list[int] = []
    while len(order) < len(indices):
        key = min((k for k in keys if cells[k]), key=lambda k: (n_stratum[k[0]], n_yes[k[1]], n_cell[k], rank[k]))
        order.append(cells[key].popleft())
        n_stratum[key[0]] += 1
        n_yes[key[1]] += 1
        n_cell[key] += 1
    return order


def train_test_indices(pairs: Sequence[ContrastivePair], test_fraction: float = 0.2, seed: int = 0,
                       stratify: bool = True) -> tuple[list[int], list[int]]:
    """Train and test indices into ``pairs``, in the order ``train_test_split`` returns the pairs."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction}: must be strictly between 0 and 1")
    if len(pairs) < 2:
        raise ConfigError(f"cannot split {len(pairs)} pair(s) into train and test; need at least 2")
    check_unique_ids(pairs, "train_test_split")
    strata: dict[Hashable, list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        strata[split_stratum(pair) if stratify else None].append(index)
    n_test = min(max(1, round(test_fraction * len(pairs))), len(pairs) - 1)
    shares = _largest_remainder({key: len(members) for key, members in strata.items()}, n_test)
    rng = random.Random(seed)
    test: list[int] = []
    for key in sorted(strata, key=str):  # fixed order so the rng stream does not depend on dict order
        members = list(strata[key])
        rng.shuffle(members)
        test.extend(members[: shares[key]])
    test_set = set(test)
    train, test = [i for i in range(len(pairs)) if i not in test_set], sorted(test_set)
    if not stratify:
        return train, test
    order_rng = random.Random(f"balanced-order:{seed}")  # a separate stream: the selection above stays as it was
    test = balanced_order(pairs, test, order_rng)
    return balanced_order(pairs, train, order_rng), test


def train_test_split(pairs: Sequence[ContrastivePair], test_fraction: float = 0.2, seed: int = 0,
                     stratify: bool = True) -> tuple[list[ContrastivePair], list[ContrastivePair]]:
    """Deterministic split: ``round(test_fraction * n)`` pairs (at least 1, at most n − 1) go to test.

    **Which pairs.** With ``stratify`` the test share is allocated across strata (``is_A`` for A/B pairs;
    free-text pairs form one stratum) by largest remainder and drawn at random (``seed``) within each stratum,
    so the A/B letter balance of train and test matches the whole set's.

    **Order (letter-balanced prefixes).** With ``stratify`` each half is ordered so that callers may take a
    prefix (``test[:n_test]``, ``train[:n_train]``) and still get a balanced slice: the cells
    ``is_A × is_Yes`` (``is_Yes`` only when every pair of that half has a known ``meta['positive_is_yes']``,
    e.g. MWE persona A/B; otherwise the cells are the ``is_A`` strata alone) are interleaved greedily — the
    next pair comes from the least-drawn ``is_A`` value, then the least-drawn ``is_Yes`` value, then the
    least-drawn cell, remaining ties broken by a seeded random rank of the cells. So in **every prefix** the
    (A) and (B) counts differ by at most 1 as long as both letters remain in that half, and for the persona
    A/B sets (all four cells well filled) so do the Yes and No counts and the four cells. Within a cell the
    input (file) order is kept, hence free-text halves (one stratum, no ``is_Yes``) are in input order. With
    ``stratify=False`` the test pairs are a plain seeded draw and both halves keep the input order.

    The same ``pairs``, ``test_fraction``, ``seed`` and ``stratify`` always give the same halves in the same order.
    """
    train, test = train_test_indices(pairs, test_fraction, seed, stratify)
    return [pairs[i] for i in train], [pairs[i] for i in test]


@dataclass(frozen=True)
class DataSplit:
    """The one train/test split of the package: :func:`train_test_split` (one test-size rule, seeded, stratified),
    then the first ``n_train`` / ``n_test`` pairs of each half (``None``: the whole half).

    The test half holds ``round(test_fraction · n)`` pairs (at least 1, at most n − 1). Jobs that size their split
    from counts instead of a fraction build it with :meth:`from_counts` (test fraction ``n_test / (n_train +
    n_test)``) or :meth:`capped` (test fraction ``min(cap, n_test / n_pairs)``), so the rule stays the same.
    :meth:`to_dict` is what vectors' provenance and job records store about the split; equal dicts give equal halves.
    """

    test_fraction: float = 0.5
    seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    stratify: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < float(self.test_fraction) < 1.0:
            raise ConfigError(f"DataSplit.test_fraction={self.test_fraction}: must be strictly between 0 and 1")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, numbers.Integral) or value < 0):
                raise ConfigError(f"DataSplit.{name}={value!r}: must be a count ≥ 0 or None (the whole half)")

    @classmethod
    def from_counts(cls, n_train: int, n_test: int, seed: int = 0) -> DataSplit:
        """The split whose test fraction is ``n_test / (n_train + n_test)``, cut to ``n_train`` / ``n_test``."""
        if n_train < 1 or n_test < 1:
            raise ConfigError(f"DataSplit.from_counts: n_train={n_train}, n_test={n_test}; need at least 1 each")
        return cls(n_test / (n_train + n_test), seed, n_train, n_test)

    @classmethod
    def capped(cls, n_test: int, n_pairs: int, seed: int = 0, n_train: int | None = None,
               cap: float = 0.5) -> DataSplit:
        """The split whose test fraction is ``min(cap, n_test / n_pairs)``: about ``n_test`` held-out pairs, never
        more than ``cap`` of the set; the test half is kept whole."""
        if n_pairs < 2 or n_test < 1:
            raise ConfigError(f"DataSplit.capped: n_test={n_test} of {n_pairs} pairs; need n_test ≥ 1 and ≥ 2 pairs")
        return cls(min(cap, n_test / n_pairs), seed, n_train, None)

    def indices(self, pairs: Sequence[ContrastivePair]) -> tuple[list[int], list[int]]:
        """Train and test indices into ``pairs`` (each half cut to its count), in :meth:`split`'s order."""
        train, test = train_test_indices(pairs, self.test_fraction, self.seed, self.stratify)
        return train[: self.n_train], test[: self.n_test]

    def split(self, pairs: Sequence[ContrastivePair]) -> tuple[list[ContrastivePair], list[ContrastivePair]]:
        """``(train, test)`` pairs: :func:`train_test_split`'s halves, cut to ``n_train`` / ``n_test``."""
        train, test = self.indices(pairs)
        return [pairs[i] for i in train], [pairs[i] for i in test]

    def train(self, pairs: Sequence[ContrastivePair]) -> list[ContrastivePair]:
        """The train half (first ``n_train``)."""
        return self.split(pairs)[0]

    def test(self, pairs: Sequence[ContrastivePair]) -> list[ContrastivePair]:
        """The test half (first ``n_test``)."""
        return self.split(pairs)[1]

    def to_dict(self) -> dict:
        """What provenance and records store: ``test_fraction`` and ``seed``, then ``n_train`` / ``n_test`` where set
        and ``stratify`` only when off (so records written before this class existed read the same)."""
        record: dict = {"test_fraction": float(self.test_fraction), "seed": int(self.seed)}
        record.update({name: int(getattr(self, name)) for name in ("n_train", "n_test") if getattr(self, name) is not None})
        if not self.stratify:
            record["stratify"] = False
        return record

    @classmethod
    def from_dict(cls, record: Mapping) -> DataSplit:
        """The split :meth:`to_dict` recorded (other keys, e.g. a provenance's ``part``, are ignored)."""
        try:
            return cls(float(record["test_fraction"]), int(record["seed"]), record.get("n_train"), record.get("n_test"),
                       bool(record.get("stratify", True)))
        except KeyError as exc:
            raise ConfigError(f"split record {dict(record)!r} lacks {exc.args[0]!r}") from None

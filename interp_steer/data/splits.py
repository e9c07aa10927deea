"""Seeded, stratified train/test splits of contrastive pairs."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Hashable, Sequence

from interp_steer.data.pairs import ContrastivePair
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


def train_test_indices(pairs: Sequence[ContrastivePair], test_fraction: float = 0.2, seed: int = 0,
                       stratify: bool = True) -> tuple[list[int], list[int]]:
    """Sorted train and test indices into ``pairs``; see ``train_test_split``."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction}: must be strictly between 0 and 1")
    if len(pairs) < 2:
        raise ConfigError(f"cannot split {len(pairs)} pair(s) into train and test; need at least 2")
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
    return [i for i in range(len(pairs)) if i not in test_set], sorted(test_set)


def train_test_split(pairs: Sequence[ContrastivePair], test_fraction: float = 0.2, seed: int = 0,
                     stratify: bool = True) -> tuple[list[ContrastivePair], list[ContrastivePair]]:
    """Deterministic split: ``round(test_fraction * n)`` pairs (at least 1, at most n − 1) go to test.

    With ``stratify`` the test share is allocated across strata (``is_A`` for A/B pairs; free-text pairs form one
    stratum) by largest remainder, so the A/B letter balance of train and test matches the whole set's. Both
    parts keep the input order. The same ``pairs``, ``test_fraction`` and ``seed`` always give the same split.
    """
    train, test = train_test_indices(pairs, test_fraction, seed, stratify)
    return [pairs[i] for i in train], [pairs[i] for i in test]

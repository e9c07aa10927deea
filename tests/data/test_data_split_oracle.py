"""``DataSplit`` against the split code it replaced, on real data sets with every job's parameters.

The oracle below is the split as it stood before :class:`~interp_steer.data.DataSplit` (``train_test_indices`` and
its balanced ordering, copied verbatim) together with each call site's inline slicing. A resumed study reuses its
unit files, so every job must keep the very same pairs, in the same order, in each half.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter, defaultdict, deque

import pytest

from interp_steer.data import DataSplit, load_dataset
from interp_steer.errors import ConfigError


# ---------------------------------------------------------------------------------------------- the old code
def _old_stratum(pair):
    return pair.is_A if pair.kind == "ab" else None


def _old_largest_remainder(sizes, n_test):
    total = sum(sizes.values())
    exact = {key: n_test * size / total for key, size in sizes.items()}
    shares = {key: int(value) for key, value in exact.items()}
    leftover = n_test - sum(shares.values())
    by_remainder = sorted(sizes, key=lambda key: (-(exact[key] - shares[key]), str(key)))
    for key in by_remainder[:leftover]:
        shares[key] += 1
    return shares


def _old_balanced_order(pairs, indices, rng):
    use_yes = all(pairs[i].is_Yes is not None for i in indices)
    cells = defaultdict(deque)
    for i in indices:
        cells[(_old_stratum(pairs[i]), pairs[i].is_Yes if use_yes else None)].append(i)
    keys = sorted(cells, key=str)
    rng.shuffle(keys)
    rank = {key: r for r, key in enumerate(keys)}
    n_stratum, n_yes, n_cell = Counter(), Counter(), Counter()
    order = []
    while len(order) < len(indices):
        key = min((k for k in keys if cells[k]), key=lambda k: (n_stratum[k[0]], n_yes[k[1]], n_cell[k], rank[k]))
        order.append(cells[key].popleft())
        n_stratum[key[0]] += 1
        n_yes[key[1]] += 1
        n_cell[key] += 1
    return order


def _old_split(pairs, test_fraction, seed):
    strata = defaultdict(list)
    for index, pair in enumerate(pairs):
        strata[_old_stratum(pair)].append(index)
    n_test = min(max(1, round(test_fraction * len(pairs))), len(pairs) - 1)
    shares = _old_largest_remainder({key: len(members) for key, members in strata.items()}, n_test)
    rng = random.Random(seed)
    test = []
    for key in sorted(strata, key=str):
        members = list(strata[key])
        rng.shuffle(members)
        test.extend(members[: shares[key]])
    test_set = set(test)
    train, test = [i for i in range(len(pairs)) if i not in test_set], sorted(test_set)
    order_rng = random.Random(f"balanced-order:{seed}")
    test = _old_balanced_order(pairs, test, order_rng)
    return [pairs[i] for i in _old_balanced_order(pairs, train, order_rng)], [pairs[i] for i in test]


# --------------------------------------------------------------------------------- data sets and parameters
SPECS = [
    "persona:narcissism", "persona:narcissism@free_text", "persona:anti-immigration",
    "persona:subscribes-to-total-utilitarianism@free_text", "xrisk:coordinate-itself", "xrisk:corrigible-neutral-HHH",
    "persona:desire-for-acquiring-power",
]


@pytest.fixture(scope="module")
def datasets(data_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the xrisk loaders warn about skipped rows
        return {spec: load_dataset(spec, data_dir=data_root) for spec in SPECS}


def _ids(pairs):
    return [p.id for p in pairs]


# (test_fraction, seed, n_train, n_test): the study (steerability, ID/OOD, A/B task), scan, tune, evaluate, why,
# explain and extract --holdout defaults
PREFIX_JOBS = [(0.5, 0, 50, 50), (0.5, 0, 50, 25), (0.5, 0, None, 50), (0.5, 0, None, None), (0.5, 0, 30, 30),
               (0.5, 0, 1, 50), (0.2, 0, None, 40), (0.2, 3, 10, None), (0.5, 7, 8, 6)]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("fraction, seed, n_train, n_test", PREFIX_JOBS)
def test_prefix_jobs_keep_their_split(datasets, spec, fraction, seed, n_train, n_test):
    pairs = datasets[spec]
    old_train, old_test = _old_split(pairs, fraction, seed)
    train, test = DataSplit(fraction, seed, n_train, n_test).split(pairs)
    assert _ids(train) == _ids(old_train[:n_train]) and _ids(test) == _ids(old_test[:n_test])
    assert len(test) == len(old_test[:n_test]) > 0


@pytest.mark.parametrize("spec", SPECS)
def test_count_sized_jobs_keep_their_split(datasets, spec):
    pairs = datasets[spec]
    # compare: test fraction n_test / (n_train + n_test), then the first n_train / n_test
    old = _old_split(pairs, 30 / (60 + 30), 0)
    new = DataSplit.from_counts(60, 30, 0).split(pairs)
    assert _ids(new[0]) == _ids(old[0][:60]) and _ids(new[1]) == _ids(old[1][:30])
    # demo: test fraction min(0.5, n_test / n), the whole test half, the first n_train train pairs
    for n_test, n_train in ((24, 60), (10, 20), (len(pairs), 5)):
        old = _old_split(pairs, min(0.5, n_test / len(pairs)), 0)
        new = DataSplit.capped(n_test, len(pairs), 0, n_train=n_train).split(pairs)
        assert _ids(new[0]) == _ids(old[0][:n_train]) and _ids(new[1]) == _ids(old[1])


@pytest.mark.parametrize("spec", ["persona:narcissism", "xrisk:coordinate-itself", "persona:narcissism@free_text"])
def test_scan_holdout_and_registry_provider_route_through_the_split(data_root, datasets, spec):
    from interp_steer.analysis.battery import study_split
    from interp_steer.runs.scan import RegistryPairs
    from interp_steer.runs.study_config import ScanHoldout

    pairs = datasets[spec]
    old_train, old_test = _old_split(pairs, 0.5, 0)
    n_fit = min(30, len(old_train) // 2)
    fit, scored = ScanHoldout(0.5, 0, 30, 20, str(data_root))(spec)
    assert _ids(fit) == _ids(old_train[:n_fit]) and _ids(scored) == _ids(old_train[n_fit:n_fit + 20])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, test = RegistryPairs(None, 0.5, 0, 50, 50, str(data_root))(spec)
        _, b_train, b_test = study_split(spec, 50, 50, 0.5, 0, data_root)
    assert _ids(train) == _ids(b_train) == _ids(old_train[:50]) and _ids(test) == _ids(b_test) == _ids(old_test[:50])


def test_record_round_trip_and_bad_values():
    split = DataSplit(0.2, 3, n_train=10)
    assert split.to_dict() == {"test_fraction": 0.2, "seed": 3, "n_train": 10}
    assert DataSplit.from_dict({"part": "train", **split.to_dict()}) == split
    assert DataSplit(0.5, 1, stratify=False).to_dict() == {"test_fraction": 0.5, "seed": 1, "stratify": False}
    for bad in (dict(test_fraction=0.0), dict(test_fraction=1.0), dict(n_train=-1), dict(n_test=-3)):
        with pytest.raises(ConfigError, match="DataSplit"):
            DataSplit(**bad)
    with pytest.raises(ConfigError, match="lacks 'seed'"):
        DataSplit.from_dict({"test_fraction": 0.5})

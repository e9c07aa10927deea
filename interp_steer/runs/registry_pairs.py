"""The registry data provider of the jobs: a dataset spec → its seeded split's ``(train, test)`` pairs.

Shared by the scan, steerability, ID/OOD, A/B-task, method, tune and BiPO-vs-CAA jobs (re-exported by
:mod:`interp_steer.runs.scan`). Picklable, so Ray workers load their datasets themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.splits import DataSplit

PairSource = Callable[[str], tuple[Sequence[ContrastivePair], Sequence[ContrastivePair]]]


@dataclass(frozen=True)
class RegistryPairs:
    """Data provider backed by the dataset registry: ``load_dataset(spec, framing)``, a stratified
    ``DataSplit(test_fraction, seed, n_train, n_test)`` (the first ``n_train`` / ``n_test`` of each part).
    Picklable, so Ray workers load their datasets themselves."""

    framing: str | None
    test_fraction: float
    seed: int
    n_train: int | None
    n_test: int | None
    data_dir: str | None = None

    def __call__(self, spec: str):
        from interp_steer.data import load_dataset

        return self.split.split(load_dataset(spec, data_dir=self.data_dir, framing=self.framing))

    @property
    def split(self) -> DataSplit:
        """The :class:`~interp_steer.data.DataSplit` every dataset is cut with."""
        return DataSplit(self.test_fraction, self.seed, self.n_train, self.n_test)

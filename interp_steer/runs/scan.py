"""Layer scan as a runner job: CAA per (dataset, layer) on the train split, steerability on the test split.

Each work unit is one dataset and a group of its layers (:class:`ScanGroup`; by default all of a dataset's layers,
so the fast engine shares the prompt prefix across them). Its results are stored per layer, as before::

    out/config.json                      the ScanConfig
    out/units/<key>.safetensors          the (dataset, layer) vector (written first)
    out/units/<key>.propensity.parquet   its propensity rows (written last: their presence marks the layer done)
    out/propensities.parquet, per_sample.parquet, summary.parquet   the combined tables (rebuilt at the end)
    out/run_report.json                  done / skipped / failed units of the last run

``<key>`` is :attr:`ScanUnit.key`. A rerun computes only the layers whose table is missing, so a run killed at
any point (even ``kill -9``) resumes with a result equal to an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation.engines import PropensityEngine, resolve_engine
from interp_steer.evaluation.metrics import steerability, summarize_steerability
from interp_steer.evaluation.propensity import compute_propensities
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.job_configs import (  # noqa: F401  (the scan config lives with the other job configs)
    RESULT_DEFINING,
    SPLIT_ORDER,
    ScanConfig,
    ScanGroup,
    ScanUnit,
    VectorScale,
)
from interp_steer.runs.registry_pairs import PairSource, RegistryPairs  # noqa: F401  (re-exported)
from interp_steer.runs.runner import Job, RunReport, UnitFiles, run_job


def run_scan_unit(
    model,
    train_pairs: Sequence[ContrastivePair],
    test_pairs: Sequence[ContrastivePair],
    layer: int,
    multipliers: Sequence[float],
    *,
    dataset: str | None = None,
    batch_size: int = 32,
    read_position: str | None = None,
    engine: str | PropensityEngine = "batched",
):
    """CAA at ``layer`` on ``train_pairs``, propensities on ``test_pairs``.

    Returns ``(vector, propensities, per_sample, summary)``; the ``dataset`` column is set to ``dataset`` when given
    (so tables are keyed by the dataset spec rather than each pair's own name).
    """
    from interp_steer.methods.caa import extract_caa

    _check_split(dataset, train_pairs, test_pairs)
    vector = extract_caa(model, train_pairs, [layer], read_position=read_position, batch_size=batch_size,  # type: ignore[arg-type]
                         progress=False, dataset=dataset)
    propensities = resolve_engine(engine)(model, test_pairs, vector, multipliers, batch_size=batch_size, progress=False,
                          vector_name=f"caa:{dataset}" if dataset else None)
    if dataset is not None:
        propensities["dataset"] = dataset
    per_sample = steerability(propensities)
    return vector, propensities, per_sample, summarize_steerability(per_sample)


def _check_split(dataset, train, test) -> None:
    if not train or not test:
        raise ConfigError(f"dataset {dataset!r}: scan unit needs non-empty train and test splits "
                          f"(got {len(train)} train, {len(test)} test)")


def registry_pairs(config: ScanConfig, data_dir: str | Path | None = None) -> RegistryPairs:
    """The registry data provider for ``config`` (see :class:`RegistryPairs`)."""
    return RegistryPairs(config.framing, config.test_fraction, config.seed, config.n_train, config.n_test,
                         None if data_dir is None else str(data_dir))


class ScanJob(Job):
    """The layer scan on the runner: units are :class:`ScanGroup` s, results per :class:`ScanUnit`."""

    config: ScanConfig

    def __init__(self, config: ScanConfig, data: PairSource | Mapping[str, tuple]) -> None:
        self.config = config
        self.data = dict(data) if isinstance(data, Mapping) else data

    def units(self) -> list[ScanGroup]:
        return self.config.groups()

    def _files(self, unit: ScanUnit) -> tuple[str, str]:
        return f"units/{unit.key}.safetensors", f"units/{unit.key}.propensity.{self.config.table_format}"

    def unit_files(self, unit: ScanGroup) -> list[str]:
        vectors, tables = zip(*(self._files(u) for u in unit.results()))
        return [*vectors, *tables]

    def remaining(self, unit: ScanGroup, out_dir: Path) -> ScanGroup | None:
        todo = tuple(u.layer for u in unit.results() if not (out_dir / self._files(u)[1]).exists())
        return None if not todo else replace(unit, todo=todo)

    def pairs(self, dataset: str):
        return self.data[dataset] if isinstance(self.data, dict) else self.data(dataset)

    def compute(self, unit: ScanGroup, model) -> UnitFiles:
        train, test = self.pairs(unit.dataset)
        results = scan_dataset_layers(model, self.config, unit.dataset, list(unit.pending_layers), train, test)
        files: UnitFiles = []
        for result, (vector, table) in zip(unit.results(), results):  # vector then table, layer by layer
            vector_file, table_file = self._files(result)
            files += [(vector_file, vector), (table_file, table)]
        return files

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_scan(out_dir, self.config)


def scan_dataset_layers(model, config: ScanConfig, dataset: str, layers: list[int], train, test):
    """``[(vector, propensities)]`` for each of ``layers`` of one dataset.

    The vectors come from one pass over the train pairs (:func:`scan_vectors`). The fast engine scores every layer
    in one call; the batched engine runs :func:`compute_propensities` per layer (for raw vectors via
    :func:`run_scan_unit`). Either way each layer's results come back separately so they are written as
    independent files.
    """
    if config.engine == "batched" and config.scale == "raw":
        return [run_scan_unit(model, train, test, layer, config.multipliers, dataset=dataset,
                              batch_size=config.batch_size, read_position=config.read_position)[:2]
                for layer in layers]
    _check_split(dataset, train, test)
    vectors = scan_vectors(model, config, dataset, layers, train)
    name = f"caa:{dataset}" if config.scale == "raw" else f"caa-rel:{dataset}"
    if config.engine == "batched":
        table = pd.concat([compute_propensities(model, test, vectors[layer], config.multipliers,
                                                batch_size=config.batch_size, progress=False, vector_name=name)
                           for layer in layers], ignore_index=True)
    else:
        from interp_steer.evaluation.fast_engine import fast_propensities

        table = fast_propensities(model, test, vectors, config.multipliers, progress=False, vector_name=name)
    table["dataset"] = dataset
    return [(vectors[layer], table[table["layer"] == layer].reset_index(drop=True)) for layer in layers]


def scan_vectors(model, config: ScanConfig, dataset: str, layers: list[int], train) -> dict:
    """``{layer: single-hook CAA vector}`` from one pass over ``train``; with ``config.scale == "resid_norm"`` each
    direction is rescaled to the mean residual norm at its layer (:func:`~interp_steer.methods.caa.activation_norms`
    of the same activations; the raw lengths are kept in the provenance's ``extra["raw_norms"]``)."""
    from interp_steer.methods.caa import extract_caa

    if config.scale == "raw":
        combined = extract_caa(model, train, layers, read_position=config.read_position,  # type: ignore[arg-type]
                               batch_size=config.batch_size, progress=False, dataset=dataset)
    else:
        from interp_steer.methods.caa import (
            activation_norms,
            collect_contrastive_activations,
            mean_difference,
            norm_relative,
        )
        from interp_steer.models import describe_processing
        from interp_steer.steering.vector import Provenance, SteeringVector

        acts = collect_contrastive_activations(model, train, layers, read_position=config.read_position,  # type: ignore[arg-type]
                                               batch_size=config.batch_size, progress=False)
        raw = SteeringVector(mean_difference(acts), Provenance(
            model=model.cfg.model_name, method="caa", dataset=dataset, n_pairs=len(train),
            read_position=acts.read_position, layers=list(layers), model_processing=describe_processing(model)))
        scaled = norm_relative(raw, activation_norms(acts))
        combined = SteeringVector(scaled.directions, scaled.provenance.with_extra(raw_norms=raw.norms()))
    return {layer: combined.select(layer) for layer in layers}  # provenance: that layer, selected from all


def run_scan_job(
    config: ScanConfig,
    data: PairSource | Mapping[str, tuple],
    out_dir: str | Path,
    *,
    model=None,
    executor=None,
    progress: bool = True,
    time_budget_s: float | None = None,
    on_unit_done: Callable[[ScanGroup], None] | None = None,
) -> RunReport:
    """Run the scan through the runner (see :func:`~interp_steer.runs.runner.run_job`); returns its report, whose
    ``tables`` are ``{"propensities", "per_sample", "summary"}``. Failed units are in ``report.failed``."""
    return run_job(ScanJob(config, data), out_dir, executor=executor, model=model, progress=progress,
                   time_budget_s=time_budget_s, on_unit_done=on_unit_done)


def run_scan(
    model,
    config: ScanConfig,
    data: PairSource | Mapping[str, tuple[Sequence[ContrastivePair], Sequence[ContrastivePair]]],
    out_dir: str | Path,
    *,
    progress: bool = True,
    on_unit_done: Callable[[ScanUnit], None] | None = None,
    executor=None,
) -> dict[str, pd.DataFrame]:
    """Run every unit of ``config`` not yet in ``out_dir`` (with ``model`` in this process unless ``executor``
    says otherwise), then combine all units' tables.

    ``data`` maps a dataset spec to its ``(train_pairs, test_pairs)`` (a mapping or a function, called only for
    datasets with missing units). Returns ``{"propensities", "per_sample", "summary"}`` and writes them to
    ``out_dir``. ``on_unit_done(unit)`` is called for each (dataset, layer) result once its files are in place.
    Raises :class:`~interp_steer.runs.runner.UnitsFailedError` after the run if any unit failed.
    """
    def done(group: ScanGroup) -> None:
        for unit in group.results():
            if on_unit_done is not None:
                on_unit_done(unit)

    report = run_scan_job(config, data, out_dir, model=model, executor=executor, progress=progress,
                          on_unit_done=done if on_unit_done else None)
    report.raise_if_failed()
    return report.tables


def scan_vector_table(out_dir: str | Path, config: ScanConfig) -> pd.DataFrame:
    """One row per finished (dataset, layer) vector in ``out_dir``: ``dataset``, ``layer``, ``vector_norm`` (the
    length of the vector the scan added), ``raw_norm`` (the CAA mean difference's length before any rescaling) and
    ``n_train`` (the pairs it was extracted from)."""
    from interp_steer.steering.vector import SteeringVector

    rows = []
    for unit in config.units():
        path = Path(out_dir) / "units" / f"{unit.key}.safetensors"
        if not path.exists():
            continue
        vector = SteeringVector.load(path)
        (hook, norm), = vector.norms().items()
        raw = vector.provenance.extra.get("raw_norms", {}).get(hook, norm)
        rows.append({"dataset": unit.dataset, "layer": unit.layer, "vector_norm": norm, "raw_norm": float(raw),
                     "n_train": vector.provenance.n_pairs})
    return pd.DataFrame(rows, columns=["dataset", "layer", "vector_norm", "raw_norm", "n_train"])


def combine_scan(out_dir: str | Path, config: ScanConfig | None = None) -> dict[str, pd.DataFrame]:
    """Concatenate the finished units of ``config`` (default: ``out_dir/config.json``) in unit order and rebuild
    the per-sample and summary tables; writes the three combined tables into ``out_dir``."""
    out_dir = Path(out_dir)
    if config is None:
        config_path = out_dir / "config.json"
        if not config_path.exists():
            raise DataFormatError(f"{out_dir} has no config.json; is it a scan output directory?")
        config = ScanConfig.read(config_path)
    fmt = config.table_format
    paths = [out_dir / "units" / f"{u.key}.propensity.{fmt}" for u in config.units()]
    present = [p for p in paths if p.exists()]
    if not present:
        raise DataFormatError(f"{out_dir} has no finished scan units yet")
    propensities = pd.concat([read_table(p) for p in present], ignore_index=True)
    per_sample = steerability(propensities)
    summary = summarize_steerability(per_sample)
    for name, frame in (("propensities", propensities), ("per_sample", per_sample), ("summary", summary)):
        write_table_atomic(frame, out_dir / f"{name}.{fmt}")
    return {"propensities": propensities, "per_sample": per_sample, "summary": summary}

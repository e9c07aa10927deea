"""Layer scan as independent, resumable work units (dataset × layer).

Each unit extracts a CAA vector from the dataset's train pairs at one layer and evaluates its propensities on
the test pairs (:func:`run_scan_unit`, a pure function of its inputs). :func:`run_scan` runs the units into an
output directory::

    out/config.json                     the ScanConfig (written atomically)
    out/units/<unit>.safetensors        the unit's vector (written first)
    out/units/<unit>.propensity.parquet the unit's propensity rows (written last: its presence marks the unit done)
    out/propensities.parquet, per_sample.parquet, summary.parquet   the combined tables (rebuilt at the end)

Every file is written to a temporary name and renamed into place, so a killed run (even ``kill -9``) leaves
only complete unit files; a rerun skips them, deletes stale temporaries and computes the rest. Units are
computed independently and deterministically, so the resumed result equals an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

import pandas as pd
from tqdm.auto import tqdm

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation.metrics import steerability, summarize_steerability
from interp_steer.evaluation.propensity import compute_propensities
from interp_steer.steering.hook_names import as_hook_name
from interp_steer.steering.vector import SteeringVector

TableFormat = Literal["parquet", "csv"]
EngineName = Literal["fast", "batched"]
RESULT_DEFINING = ("model", "multipliers", "n_train", "n_test", "test_fraction", "framing", "seed", "read_position", "method",
                   "split_order")
"""Config fields a resumed scan must share with the run that wrote the directory."""

SPLIT_ORDER = "letter-balanced"
"""How :func:`~interp_steer.data.train_test_split` orders each half (prefixes balanced between (A) and (B)).
Configs written before this field existed read back as ``"file-order"``, so resuming such a directory is refused
instead of silently mixing test slices."""

DEFAULT_MULTIPLIERS = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)


@dataclass
class ScanConfig:
    """What a layer scan computes; saved as ``config.json`` beside the results.

    ``n_train`` / ``n_test`` / ``test_fraction`` / ``framing`` / ``seed`` describe how the data provider built
    each dataset's split (see :func:`registry_pairs`); they are recorded so a resume cannot mix settings.
    ``engine="fast"`` evaluates all of a dataset's missing layers in one
    :func:`~interp_steer.evaluation.fast_engine.fast_propensities` call (prompt prefix once, each layer resumed
    from its recorded residual); ``"batched"`` runs :func:`compute_propensities` per unit. Both give the same
    numbers (to ~1e-5), so the engine is not result-defining and may differ between a run and its resume.
    """

    model: str
    datasets: list[str]
    layers: list[int]
    multipliers: list[float] = field(default_factory=lambda: list(DEFAULT_MULTIPLIERS))
    n_train: int | None = None
    n_test: int | None = None
    test_fraction: float = 0.5
    framing: str | None = None
    seed: int = 0
    batch_size: int = 32
    read_position: str | None = None
    method: str = "caa"
    table_format: TableFormat = "parquet"
    engine: EngineName = "fast"
    split_order: str = SPLIT_ORDER

    def __post_init__(self) -> None:
        self.datasets, self.layers = list(self.datasets), [int(x) for x in self.layers]
        self.multipliers = [float(m) for m in self.multipliers]
        if not self.datasets:
            raise ConfigError("ScanConfig.datasets is empty: name at least one dataset")
        if not self.layers or min(self.layers) < 0:
            raise ConfigError(f"ScanConfig.layers must be non-negative ints, got {self.layers}")
        if len(self.multipliers) < 2 or len(set(self.multipliers)) != len(self.multipliers):
            raise ConfigError(f"ScanConfig.multipliers needs ≥ 2 distinct values, got {self.multipliers}")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"ScanConfig.{name} must be ≥ 1 or None, got {value}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"ScanConfig.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.batch_size < 1:
            raise ConfigError(f"ScanConfig.batch_size must be ≥ 1, got {self.batch_size}")
        if self.table_format not in ("parquet", "csv"):
            raise ConfigError(f"ScanConfig.table_format must be 'parquet' or 'csv', got {self.table_format!r}")
        if self.engine not in ("fast", "batched"):
            raise ConfigError(f"ScanConfig.engine must be 'fast' or 'batched', got {self.engine!r}")
        if self.method != "caa":
            raise ConfigError(f"ScanConfig.method {self.method!r}: only 'caa' is supported by the scan")

    def units(self) -> list["ScanUnit"]:
        return [ScanUnit(d, layer) for d in self.datasets for layer in self.layers]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ScanConfig":
        data = json.loads(text)
        data.setdefault("split_order", "file-order")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ScanUnit:
    """One work unit: a dataset spec and a layer."""

    dataset: str
    layer: int

    @property
    def key(self) -> str:
        """File-name-safe, collision-free stem, e.g. ``persona_narcissism-3f2a1b7c__L012``."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.dataset)[:60]
        digest = hashlib.sha1(self.dataset.encode()).hexdigest()[:8]
        return f"{safe}-{digest}__L{self.layer:03d}"


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
    engine: Callable = compute_propensities,
):
    """CAA at ``layer`` on ``train_pairs``, propensities on ``test_pairs``.

    Returns ``(vector, propensities, per_sample, summary)``; the ``dataset`` column is set to ``dataset`` when given
    (so tables are keyed by the dataset spec rather than each pair's own name).
    """
    from interp_steer.methods.caa import extract_caa

    if not train_pairs or not test_pairs:
        raise ConfigError(f"dataset {dataset!r}: scan unit needs non-empty train and test splits "
                          f"(got {len(train_pairs)} train, {len(test_pairs)} test)")
    vector = extract_caa(model, train_pairs, [layer], read_position=read_position, batch_size=batch_size,
                         progress=False, dataset=dataset)
    propensities = engine(model, test_pairs, vector, multipliers, batch_size=batch_size, progress=False,
                          vector_name=f"caa:{dataset}" if dataset else None)
    if dataset is not None:
        propensities["dataset"] = dataset
    per_sample = steerability(propensities)
    return vector, propensities, per_sample, summarize_steerability(per_sample)


# ---------------------------------------------------------------------------------------------- table files
def write_table_atomic(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (parquet or CSV by suffix) to a temporary file and rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if path.suffix == ".parquet":
        frame.to_parquet(tmp, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        raise ConfigError(f"cannot write table {path}: use a .parquet or .csv file name")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_table(path: Path) -> pd.DataFrame:
    """Read a table written by :func:`write_table_atomic`, restoring the nullable boolean factor columns."""
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"sample_id": str})
    except Exception as exc:  # noqa: BLE001 - any reader failure means a bad file
        raise DataFormatError(f"cannot read result table {path}: {exc}") from None
    for col in ("is_A", "is_Yes", "sign_flip"):
        if col in frame.columns:
            frame[col] = frame[col].astype("boolean")
    return frame


def _write_text_atomic(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _unit_table(out_dir: Path, unit: ScanUnit, fmt: str) -> Path:
    return out_dir / "units" / f"{unit.key}.propensity.{fmt}"


def _prepare_out_dir(out_dir: Path, config: ScanConfig) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "config.json"
    if config_path.exists():
        old = ScanConfig.from_json(config_path.read_text())
        clashes = [f for f in RESULT_DEFINING if getattr(old, f) != getattr(config, f)]
        if old.table_format != config.table_format:
            clashes.append("table_format")
        if clashes:
            raise ConfigError(f"{out_dir} holds a scan with different {', '.join(clashes)}; use another --out directory")
    _write_text_atomic(config.to_json(), config_path)
    for stale in (out_dir / "units").glob(".*.tmp-*") if (out_dir / "units").exists() else ():
        stale.unlink(missing_ok=True)


def registry_pairs(config: ScanConfig, data_dir: str | Path | None = None) -> "PairSource":
    """Data provider for :func:`run_scan` backed by the dataset registry: ``load_dataset(spec, framing)``, a
    stratified ``train_test_split(test_fraction, seed)``, then the first ``n_train`` / ``n_test`` of each part."""
    from interp_steer.data import load_dataset, train_test_split

    def provide(spec: str):
        pairs = load_dataset(spec, data_dir=data_dir, framing=config.framing)
        train, test = train_test_split(pairs, test_fraction=config.test_fraction, seed=config.seed)
        return train[: config.n_train], test[: config.n_test]

    return provide


PairSource = Callable[[str], tuple[Sequence[ContrastivePair], Sequence[ContrastivePair]]]


def run_scan(
    model,
    config: ScanConfig,
    data: PairSource | Mapping[str, tuple[Sequence[ContrastivePair], Sequence[ContrastivePair]]],
    out_dir: str | Path,
    *,
    progress: bool = True,
    on_unit_done: Callable[[ScanUnit], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Run every unit of ``config`` not yet in ``out_dir``, then combine all units' tables.

    ``data`` maps a dataset spec to its ``(train_pairs, test_pairs)`` (a mapping or a function, called only for
    datasets with missing units). Returns ``{"propensities", "per_sample", "summary"}`` and writes them to
    ``out_dir``. ``on_unit_done(unit)`` is called after each unit's files are in place.
    """
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, config)
    fetch = data.__getitem__ if isinstance(data, Mapping) else data
    todo = [u for u in config.units() if not _unit_table(out_dir, u, config.table_format).exists()]
    bar = tqdm(total=len(config.units()), initial=len(config.units()) - len(todo), desc="scan units",
               disable=not progress, unit="unit")
    for dataset in dict.fromkeys(u.dataset for u in todo):
        units = [u for u in todo if u.dataset == dataset]
        bar.set_postfix_str(f"{dataset} L{','.join(str(u.layer) for u in units)}")
        train, test = fetch(dataset)
        for unit, vector, propensities in _dataset_units(model, config, dataset, units, train, test):
            vector.save(out_dir / "units" / f"{unit.key}.safetensors")
            write_table_atomic(propensities, _unit_table(out_dir, unit, config.table_format))
            bar.update(1)
            if on_unit_done is not None:
                on_unit_done(unit)
    bar.close()
    return combine_scan(out_dir, config)


def _dataset_units(model, config: ScanConfig, dataset: str, units: list[ScanUnit], train, test):
    """Yield ``(unit, vector, propensities)`` for the given units of one dataset.

    The fast engine extracts CAA at all the units' layers in one pass and scores every layer in one call; the
    batched engine runs :func:`run_scan_unit` per unit. Either way each unit's results are yielded separately so
    the caller can write them as independent files.
    """
    if config.engine == "batched":
        for unit in units:
            vector, propensities, _, _ = run_scan_unit(
                model, train, test, unit.layer, config.multipliers, dataset=dataset,
                batch_size=config.batch_size, read_position=config.read_position,
            )
            yield unit, vector, propensities
        return
    from interp_steer.evaluation.fast_engine import fast_propensities
    from interp_steer.methods.caa import extract_caa

    if not train or not test:
        raise ConfigError(f"dataset {dataset!r}: scan unit needs non-empty train and test splits "
                          f"(got {len(train)} train, {len(test)} test)")
    layers = [u.layer for u in units]
    combined = extract_caa(model, train, layers, read_position=config.read_position,
                           batch_size=config.batch_size, progress=False, dataset=dataset)
    vectors = {layer: _one_layer(combined, layer) for layer in layers}
    table = fast_propensities(model, test, vectors, config.multipliers, progress=False,
                              vector_name=f"caa:{dataset}")
    table["dataset"] = dataset
    for unit in units:
        rows = table[table["layer"] == unit.layer].reset_index(drop=True)
        yield unit, vectors[unit.layer], rows


def _one_layer(vector: SteeringVector, layer: int) -> SteeringVector:
    """The layer's direction of a multi-layer vector, with provenance saying that one layer (as a unit run would)."""
    name = as_hook_name(layer)
    return SteeringVector({name: vector[name]}, replace(vector.provenance, layers=[layer]))


def combine_scan(out_dir: str | Path, config: ScanConfig | None = None) -> dict[str, pd.DataFrame]:
    """Concatenate the finished units of ``config`` (default: ``out_dir/config.json``) in unit order and rebuild
    the per-sample and summary tables; writes the three combined tables into ``out_dir``."""
    out_dir = Path(out_dir)
    if config is None:
        config_path = out_dir / "config.json"
        if not config_path.exists():
            raise DataFormatError(f"{out_dir} has no config.json; is it a scan output directory?")
        config = ScanConfig.from_json(config_path.read_text())
    paths = [_unit_table(out_dir, u, config.table_format) for u in config.units()]
    present = [p for p in paths if p.exists()]
    if not present:
        raise DataFormatError(f"{out_dir} has no finished scan units yet")
    propensities = pd.concat([read_table(p) for p in present], ignore_index=True)
    per_sample = steerability(propensities)
    summary = summarize_steerability(per_sample)
    fmt = config.table_format
    for name, frame in (("propensities", propensities), ("per_sample", per_sample), ("summary", summary)):
        write_table_atomic(frame, out_dir / f"{name}.{fmt}")
    return {"propensities": propensities, "per_sample": per_sample, "summary": summary}

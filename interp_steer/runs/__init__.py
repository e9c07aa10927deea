"""Jobs as resumable work units on one runner, executed in-process or on a Ray cluster.

A job is a typed config (:class:`JobConfig`) → independent units with stable keys → one tidy table per unit →
combined tables. :func:`run_job` handles the output directory (checks, ``config.json``, atomic unit files, the
resume guard, stale temporaries), progress, a time budget and the done / skipped / failed summary; an executor
(:class:`LocalExecutor` or :class:`RayExecutor`) decides where the units run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interp_steer.config import JobConfig
    from interp_steer.runs.executors import LocalExecutor, RayExecutor, cached_model
    from interp_steer.runs.files import check_out_dir, read_table, write_table_atomic
    from interp_steer.runs.runner import Job, RunReport, UnitOutcome, UnitsFailedError, run_job
    from interp_steer.runs.scan import (
        ScanConfig,
        ScanGroup,
        ScanJob,
        ScanUnit,
        combine_scan,
        registry_pairs,
        run_scan,
        run_scan_job,
        run_scan_unit,
    )

# imported on first use (PEP 562), so that ``interp_steer.runs.job_configs`` (the job configs the CLI builds its
# options from) loads without pandas or torch
_LAZY = {
    "JobConfig": "interp_steer.config",
    **dict.fromkeys(["ScanConfig", "ScanGroup", "ScanUnit"], "interp_steer.runs.job_configs"),
    **dict.fromkeys(["LocalExecutor", "RayExecutor", "cached_model"], "interp_steer.runs.executors"),
    **dict.fromkeys(["check_out_dir", "read_table", "write_table_atomic"], "interp_steer.runs.files"),
    **dict.fromkeys(["Job", "RunReport", "UnitOutcome", "UnitsFailedError", "run_job"], "interp_steer.runs.runner"),
    **dict.fromkeys(["ScanJob", "combine_scan", "registry_pairs", "run_scan", "run_scan_job", "run_scan_unit"],
                    "interp_steer.runs.scan"),
}


def __getattr__(name: str) -> Any:
    """The package's names, each imported from its module on first access."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def make_executor(name: str = "local", *, address: str | None = None, workers: int = 2, gpus_per_worker: float = 0.0,
                  torch_threads: int | None = None):
    """An executor by name: ``"local"`` or ``"ray"`` (a ConfigError naming ``--executor`` otherwise)."""
    from interp_steer.runs.executors import LocalExecutor, RayExecutor

    if name == "local":
        return LocalExecutor(torch_threads=torch_threads)
    if name == "ray":
        return RayExecutor(address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                           torch_threads=torch_threads or 1)
    from interp_steer.errors import ConfigError

    raise ConfigError(f"--executor {name!r}: use 'local' or 'ray'")


__all__ = [
    "Job", "JobConfig", "LocalExecutor", "RayExecutor", "RunReport", "ScanConfig", "ScanGroup", "ScanJob", "ScanUnit",
    "UnitOutcome", "UnitsFailedError", "cached_model", "check_out_dir", "combine_scan", "make_executor", "read_table",
    "registry_pairs", "run_job", "run_scan", "run_scan_job", "run_scan_unit", "write_table_atomic",
]

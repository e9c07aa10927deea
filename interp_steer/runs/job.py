"""The job protocol the runner and its executors share: a :class:`Job` (config, units, compute, combine), the files a
computed unit returns (:data:`UnitFiles`) and what an executor hands back for one unit (:class:`UnitOutcome`).

Kept apart from :mod:`interp_steer.runs.runner` so that the executors (which run ``compute``) and the runner (which
drives the executors) both import it and not each other.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from interp_steer.config import JobConfig
from interp_steer.errors import InterpSteerError

UnitFiles = list[tuple[str, Any]]
"""A computed unit: ``(path relative to the output directory, payload)`` in writing order. Payloads are
DataFrames (``.parquet`` / ``.csv``), steering vectors (``.safetensors``), ``str`` / ``bytes``, or JSON-able dicts."""


class Job(ABC):
    """A job: a config, its independent units, how one unit is computed and how finished units combine.

    Subclasses must be picklable (the Ray executor ships the job to its workers). ``compute`` gets the model
    loaded from ``model_spec`` once per worker, never the driver's output directory.
    """

    config: JobConfig

    @abstractmethod
    def units(self) -> list[Any]:
        """Every unit of the job, in report order; each has a ``key`` (a file-name-safe, stable string)."""

    @abstractmethod
    def unit_files(self, unit) -> list[str]:
        """The files (relative to the output directory) a finished ``unit`` has; the last one marks it done."""

    @abstractmethod
    def compute(self, unit, model) -> UnitFiles:
        """Compute ``unit`` with ``model``; return its files (see :data:`UnitFiles`)."""

    @abstractmethod
    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        """Combine the finished units found in ``out_dir`` into the job's tables (and write them there)."""

    def remaining(self, unit, out_dir: Path):
        """What is left of ``unit`` given the files in ``out_dir``: ``None`` if it is finished, else the unit
        (jobs whose units write several independent results may return a smaller unit)."""
        return None if (out_dir / self.unit_files(unit)[-1]).exists() else unit

    @property
    def model_spec(self) -> tuple[str, str]:
        """``(model spec, device)`` the workers load (see :func:`interp_steer.models.load_model`)."""
        config: Any = self.config  # every job's config has a model spec; the base class does not declare it
        return config.model, getattr(config, "device", "cpu")

    @property
    def name(self) -> str:
        return self.config.JOB


@dataclass
class UnitOutcome:
    """What an executor hands back for one unit: its files, or the error it raised."""

    key: str
    files: UnitFiles | None = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    worker: str = ""
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def compute_outcome(job: Job, unit, model) -> UnitOutcome:
    """Run ``job.compute(unit, model)``, timing it and turning any exception into a failed outcome."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        files = job.compute(unit, model)
    except Exception as exc:  # noqa: BLE001 - a unit's failure is recorded, the other units go on
        message = str(exc) if isinstance(exc, InterpSteerError) else f"{type(exc).__name__}: {exc}"
        return UnitOutcome(unit.key, error=message.splitlines()[0] if message else type(exc).__name__,
                           error_type=type(exc).__name__, traceback=traceback.format_exc(),
                           seconds=time.perf_counter() - started, worker=worker,
                           cpu_seconds=time.process_time() - cpu_started)
    return UnitOutcome(unit.key, files=files, seconds=time.perf_counter() - started, worker=worker,
                       cpu_seconds=time.process_time() - cpu_started)

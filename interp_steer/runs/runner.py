"""The shared runner: a job's units → atomic unit files in an output directory → a combined report.

A :class:`Job` is a typed config (:class:`~interp_steer.config.JobConfig`) plus three functions: ``units()``
(independent work units with stable keys), ``compute(unit, model)`` (a pure function of the config and the unit,
returning the unit's files) and ``combine(out_dir)`` (the combined tables of every finished unit). :func:`run_job`
does what every job needs around them::

    1. check --out (an existing file or an unwritable place fails with one line) and take its lock
       (:mod:`~interp_steer.runs.lock`: a second run on the directory refuses naming the holder), reject duplicate
       unit keys
    2. refuse a directory written with a different config (naming the differing result-defining fields)
    3. write config.json, delete temporaries a killed run left behind, check every finished unit against its
       completion record (:mod:`~interp_steer.runs.records`; a damaged unit is discarded with a one-line warning
       and recomputed), skip the units already finished
    4. hand the remaining units to an executor (in-process or Ray); write each returned unit's files atomically
       (the last file marks the unit done) and then its completion record, record failures and go on; stop
       scheduling after a time budget
    5. write run_report.json (done / skipped / failed units) and the job's combined tables

A unit whose ``compute`` raises is recorded with its error; the others still run. Rerunning the same command
computes only the units that are missing, so a run killed at any point resumes where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from interp_steer.config import JobConfig
from interp_steer.errors import ConfigError, InterpSteerError
from interp_steer.runs.executors import LocalExecutor
from interp_steer.runs.files import (
    check_out_dir,
    clean_stale_temporaries,
    write_bytes_atomic,
    write_table_atomic,
    write_text_atomic,
    write_vector_atomic,
)
from interp_steer.runs.job import Job, UnitFiles, UnitOutcome
from interp_steer.runs.lock import OutDirLock, check_not_locked
from interp_steer.runs.records import discard_unit, read_record, record_unit_files, verify_unit

REPORT_FILE = "run_report.json"
UNIT_TIMINGS_FILE = "unit_timings.jsonl"
"""One line per finished unit, appended by the runner: ``unit, wall_s, cpu_s`` (the unit's compute in the process
that ran it: the driver for the local executor, a Ray worker otherwise), ``worker``, ``time``; kept over resumes."""


class UnitsFailedError(InterpSteerError):
    """Some units of a run raised; the others finished (their files and the combined tables are written)."""


@dataclass
class RunReport:
    """Done / skipped / failed units of one run, and the job's combined tables (``{}`` if no unit is finished)."""

    out_dir: Path
    total: int
    reused: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    tracebacks: dict[str, str] = field(default_factory=dict)
    unit_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    executor: str = "local"
    budget_exhausted: bool = False
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed and not self.skipped

    def summary_line(self) -> str:
        parts = [f"{len(self.done)} computed", f"{len(self.reused)} already done"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped" + (" (time budget)" if self.budget_exhausted else ""))
        return f"{self.total} units: " + ", ".join(parts) + f" in {self.seconds:.1f} s ({self.executor})"

    def to_json(self) -> str:
        return json.dumps({
            "total": self.total, "reused": self.reused, "done": self.done, "skipped": self.skipped,
            "failed": self.failed, "tracebacks": self.tracebacks, "unit_seconds": self.unit_seconds,
            "seconds": self.seconds, "executor": self.executor, "budget_exhausted": self.budget_exhausted,
        }, indent=2)

    def raise_if_failed(self) -> None:
        """A one-line :class:`UnitsFailedError` if any unit failed (the first error quoted)."""
        if self.failed:
            key, error = next(iter(self.failed.items()))
            more = f" and {len(self.failed) - 1} more" if len(self.failed) > 1 else ""
            raise UnitsFailedError(f"{len(self.failed)} of {self.total} units failed (unit {key}: {error}{more}); "
                                   f"see {self.out_dir / REPORT_FILE}; rerun the same command to retry them")


def write_unit_files(out_dir: Path, files: UnitFiles) -> list[tuple[str, dict | None]]:
    """Write a unit's files atomically, in order (so its last file appears only once the others are in place);
    returns what to record: ``(relative path, table shape or None)`` for each file, a vector's sidecar included."""
    written: list[tuple[str, dict | None]] = []
    for rel, payload in files:
        path = out_dir / rel
        shape = None
        if isinstance(payload, pd.DataFrame):
            write_table_atomic(payload, path)
            shape = {"rows": len(payload), "columns": [str(c) for c in payload.columns]}
        elif isinstance(payload, str):
            write_text_atomic(payload, path)
        elif isinstance(payload, bytes):
            write_bytes_atomic(payload, path)
        elif isinstance(payload, (dict, list)):
            write_text_atomic(json.dumps(payload, indent=2, ensure_ascii=False), path)
        elif hasattr(payload, "save") and path.suffix == ".safetensors":
            write_vector_atomic(payload, path)
            sidecar = path.with_suffix(".json")
            if sidecar.exists():
                written.append((str(Path(rel).with_suffix(".json")), None))
        else:
            raise TypeError(f"cannot write a {type(payload).__name__} to {rel}")
        written.append((rel, shape))
    return written


def verify_finished(job: Job, out_dir: Path, warn: Callable[[str], None]) -> list[str]:
    """Check the files of every unit against its completion record (:func:`~interp_steer.runs.records.verify_unit`);
    a unit with a damaged, truncated or changed file is discarded (so it is computed again) with a one-line
    warning naming the file and the reason. Returns the keys of the discarded units."""
    discarded = []
    for unit in job.units():
        rels = job.unit_files(unit)
        problems = verify_unit(out_dir, unit.key, rels)
        if not problems:
            continue
        record = read_record(out_dir, unit.key)
        if record and all(rel not in record for rel, _ in problems):
            # only files the unit's record does not list are broken: debris of a part that never finished (a
            # vector written before its table); the recorded parts stand, the debris goes and its part is redone
            for rel, reason in problems:
                warn(f"warning: {out_dir / rel}: {reason}; removed (the rest of unit {unit.key} is intact)")
                (out_dir / rel).unlink(missing_ok=True)
            continue
        rel, reason = problems[0]
        more = f" (and {len(problems) - 1} more file(s))" if len(problems) > 1 else ""
        warn(f"warning: {out_dir / rel}: {reason}{more}; recomputing unit {unit.key}")
        try:
            discard_unit(out_dir, unit.key, rels)
        except OSError as exc:
            raise ConfigError(f"{out_dir / rel}: {reason}, and the unit's files cannot be removed to recompute it "
                              f"({exc.strerror}); remove them by hand") from None
        discarded.append(unit.key)
    return discarded


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def check_unique_keys(units: Sequence[Any]) -> None:
    """Reject duplicate unit keys (e.g. the same dataset given twice) before any work."""
    repeated = [key for key, count in Counter(u.key for u in units).items() if count > 1]
    if repeated:
        raise ConfigError(f"duplicate work units {repeated[:3]}{' …' if len(repeated) > 3 else ''}: "
                          f"each dataset / layer may appear only once")


def preflight(config: JobConfig, out_dir: str | Path) -> Path:
    """The checks of :func:`run_job` that need no model: ``--out`` usable, not in use by another run and, if it
    holds a run, written with compatible settings. Commands call it before loading a model; writes nothing but
    the directory itself."""
    out_dir = check_out_dir(out_dir)
    check_not_locked(out_dir)
    config_path = out_dir / "config.json"
    if config_path.exists():
        config.check_resumable(type(config).read(config_path), out_dir)
    return out_dir


def prepare_out_dir(job: Job, out_dir: str | Path) -> Path:
    """Checks and set-up before any work: --out usable, unit keys unique, config compatible, temporaries removed
    (call it holding the directory's lock)."""
    check_unique_keys(job.units())
    out_dir = preflight(job.config, out_dir)
    config_path = out_dir / "config.json"
    write_text_atomic(job.config.to_json(), config_path)
    clean_stale_temporaries(out_dir)
    return out_dir


def run_job(
    job: Job,
    out_dir: str | Path,
    *,
    executor=None,
    model=None,
    progress: bool = True,
    time_budget_s: float | None = None,
    on_unit_done: Callable[[Any], None] | None = None,
    lock_wait_s: float | None = None,
    warn: Callable[[str], None] = _stderr,
) -> RunReport:
    """Run every unfinished unit of ``job`` into ``out_dir`` and combine the finished ones (see the module docs).

    ``executor``: a :class:`~interp_steer.runs.executors.LocalExecutor` (default) or
    :class:`~interp_steer.runs.executors.RayExecutor`. ``model``: an already loaded model for the local executor
    (default: load ``job.model_spec`` once). ``time_budget_s``: no unit starts after this many seconds; the units
    not started are reported as skipped. ``on_unit_done(unit)`` is called after each unit's files are in place.
    The run holds ``out_dir``'s lock (:class:`~interp_steer.runs.lock.OutDirLock`; ``lock_wait_s``: how long to
    wait for another run holding it, default ``$INTERP_STEER_LOCK_WAIT`` or 0); ``warn`` gets the one-line
    warnings about reused units whose files fail their check (they are recomputed).
    """
    if time_budget_s is not None and not time_budget_s >= 0:  # (NaN fails too)
        raise ConfigError(f"time budget must be ≥ 0 seconds, got {time_budget_s}")
    started = time.monotonic()
    out_dir = check_out_dir(out_dir)
    with OutDirLock(out_dir, wait_s=lock_wait_s):
        return _run_locked(job, out_dir, executor, model, progress, started, time_budget_s, on_unit_done, warn)


def _run_locked(job: Job, out_dir: Path, executor, model, progress: bool, started: float,
                time_budget_s: float | None, on_unit_done, warn: Callable[[str], None]) -> RunReport:
    out_dir = prepare_out_dir(job, out_dir)
    verify_finished(job, out_dir, warn)
    executor = executor if executor is not None else LocalExecutor()
    units = job.units()
    report = RunReport(out_dir=out_dir, total=len(units), executor=executor.describe())
    todo = []
    for unit in units:
        rest = job.remaining(unit, out_dir)
        (report.reused.append(unit.key) if rest is None else todo.append(rest))
    show = progress and len(todo) > 1  # (a bar for one unit says nothing; its failure is the run's one-line error)
    bar = tqdm(total=len(units), initial=len(report.reused), desc=f"{job.name} units", unit="unit", disable=not show)
    delivered: set[str] = set()

    def may_start() -> bool:
        if time_budget_s is not None and time.monotonic() - started >= time_budget_s:
            report.budget_exhausted = True
            return False
        return True

    def deliver(unit, outcome: UnitOutcome) -> None:
        delivered.add(unit.key)
        report.unit_seconds[unit.key] = round(outcome.seconds, 4)
        if outcome.ok:
            record_unit_files(out_dir, unit.key, write_unit_files(out_dir, outcome.files or []))
            report.done.append(unit.key)
            line = {"unit": unit.key, "wall_s": round(outcome.seconds, 3), "cpu_s": round(outcome.cpu_seconds, 3),
                    "worker": outcome.worker, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            with open(out_dir / UNIT_TIMINGS_FILE, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
        else:
            report.failed[unit.key] = outcome.error or "unknown error"
            report.tracebacks[unit.key] = outcome.traceback or ""
            if show:
                bar.write(f"unit {unit.key} failed: {outcome.error}", file=sys.stderr)
        bar.set_postfix_str(unit.key[-40:])
        bar.update(1)
        if outcome.ok and on_unit_done is not None:
            on_unit_done(unit)

    try:
        if todo:
            executor.run(job, todo, deliver=deliver, may_start=may_start, model=model)
    finally:
        bar.close()
    report.skipped = [u.key for u in todo if u.key not in delivered]
    report.seconds = time.monotonic() - started
    write_text_atomic(report.to_json(), out_dir / REPORT_FILE)
    if report.done or report.reused:
        report.tables = job.combine(out_dir)
    return report

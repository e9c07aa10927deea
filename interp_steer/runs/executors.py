"""Executors: where a job's units run. ``local`` computes them in this process; ``ray`` on a Ray cluster.

Both take the same call, ``executor.run(job, units, deliver=..., may_start=..., model=...)``: before starting a
unit they ask ``may_start()`` (the runner's time budget), and they hand every finished or failed unit to
``deliver(unit, outcome)`` on the driver, which writes its files. So the output directory lives on the driver
only; Ray workers never touch it.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any, Callable, Sequence

from interp_steer.errors import ConfigError
from interp_steer.runs.job import Job, UnitOutcome, compute_outcome

_MODELS: dict[tuple[str, str], Any] = {}


def cached_model(spec: str, device: str = "cpu"):
    """``load_model(spec, device=device)``, loaded once per process (each Ray worker keeps its own)."""
    key = (spec, device)
    if key not in _MODELS:
        from interp_steer.models import load_model

        _MODELS[key] = load_model(spec, device=device)
    return _MODELS[key]


class LocalExecutor:
    """Compute units one after another in this process (the default). ``torch_threads`` sets
    ``torch.set_num_threads`` for the run (``None``: leave it)."""

    name = "local"

    def __init__(self, torch_threads: int | None = None) -> None:
        if torch_threads is not None and torch_threads < 1:
            raise ConfigError(f"torch_threads must be ≥ 1, got {torch_threads}")
        self.torch_threads = torch_threads

    def describe(self) -> str:
        return "local" + (f", {self.torch_threads} torch thread(s)" if self.torch_threads else "")

    def run(self, job: Job, units: Sequence[Any], *, deliver: Callable, may_start: Callable[[], bool],
            model=None) -> None:
        import torch

        previous = torch.get_num_threads()
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        try:
            for unit in units:
                if not may_start():
                    return
                if model is None:
                    model = cached_model(*job.model_spec)
                deliver(unit, compute_outcome(job, unit, model))
        finally:
            torch.set_num_threads(previous)


class UnitWorker:
    """The Ray actor: loads the job's model once, then computes the units it is handed.

    A model that cannot be loaded is not fatal to the actor: every unit it is given then fails with that error
    (so the driver reports it instead of waiting for restarts).
    """

    def __init__(self, job_blob: bytes, torch_threads: int | None) -> None:
        import pickle

        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.model, self.load_error = None, None
        started = time.perf_counter()
        try:  # the job arrives pickled, so a worker that cannot import its code reports that per unit
            self.job: Job = pickle.loads(job_blob)
        except Exception as exc:  # noqa: BLE001 - reported per unit
            self.load_error = f"worker could not unpickle the job ({type(exc).__name__}: {exc}); is its code importable there?"
        else:
            try:
                self.model = cached_model(*self.job.model_spec)
            except Exception as exc:  # noqa: BLE001 - reported per unit
                self.load_error = f"worker could not load model {self.job.model_spec[0]!r}: {exc}"
        self.load_seconds = time.perf_counter() - started

    def info(self) -> dict:
        """Process id, host and model-load time (for tests and benchmarks)."""
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname(), "load_seconds": self.load_seconds}

    def compute(self, unit) -> UnitOutcome:
        if self.load_error is not None:
            return UnitOutcome(unit.key, error=self.load_error, error_type="WorkerSetupError")
        return compute_outcome(self.job, unit, self.model)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'interp-steer[ray]'") from None
    return ray


class RayExecutor:
    """Run units on Ray actors, each loading the model once and taking one unit at a time from the driver's queue.

    ``address``: join that running cluster (``ray start --head`` prints it; ``"auto"`` finds a local one);
    ``None`` starts a private local cluster with ``workers × cpus_per_worker`` CPUs (no dashboard, no usage
    statistics) and stops it afterwards. If Ray is already initialised in this process, that session is used and
    left running. ``gpus_per_worker`` reserves GPUs per actor (set the job's device to ``cuda`` with it).

    A worker process that dies is restarted by Ray (``max_restarts``) and its unit rerun (``max_task_retries``);
    a unit whose worker keeps dying is reported as failed and the actor replaced, so the other units go on.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 2, *, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, torch_threads: int | None = 1, max_restarts: int = 3,
                 max_task_retries: int = 3, max_replacements: int | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be ≥ 1, got {workers}")
        if gpus_per_worker < 0 or cpus_per_worker <= 0:
            raise ConfigError(f"--gpus-per-worker must be ≥ 0 and cpus per worker > 0, got {gpus_per_worker}, "
                              f"{cpus_per_worker}")
        self.address, self.workers = address, workers
        self.cpus_per_worker, self.gpus_per_worker = cpus_per_worker, gpus_per_worker
        self.torch_threads, self.max_restarts, self.max_task_retries = torch_threads, max_restarts, max_task_retries
        self.max_replacements = 2 * workers if max_replacements is None else max_replacements
        self.worker_info: list[dict] = []
        self.timings: dict[str, float] = {}

    def describe(self) -> str:
        where = self.address or "local cluster"
        return f"ray ({where}, {self.workers} worker(s))"

    def _connect(self, ray) -> bool:
        """Initialise Ray unless it already is; True if this call started the session."""
        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if self.address:
            ray.init(address=self.address, **common)
        else:
            ray.init(num_cpus=int(max(1, round(self.workers * self.cpus_per_worker))),
                     num_gpus=int(round(self.workers * self.gpus_per_worker)) or None, **common)
        return True

    def run(self, job: Job, units: Sequence[Any], *, deliver: Callable, may_start: Callable[[], bool],
            model=None) -> None:
        ray = _import_ray()
        from ray.exceptions import RayActorError, RayError

        t0 = time.perf_counter()
        started_here = self._connect(ray)
        self.timings["connect_s"] = time.perf_counter() - t0
        actor_class = ray.remote(UnitWorker).options(
            num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker,
            max_restarts=self.max_restarts, max_task_retries=self.max_task_retries,
        )
        from ray import cloudpickle

        job_ref = ray.put(cloudpickle.dumps(job))
        queue = deque(units)
        inflight: dict[Any, tuple[Any, Any]] = {}
        replacements = 0

        def submit(actor) -> bool:
            if queue and may_start():
                unit = queue.popleft()
                inflight[actor.compute.remote(unit)] = (actor, unit)
                return True
            return False

        actors = [actor_class.remote(job_ref, self.torch_threads) for _ in range(min(self.workers, len(units)))]
        try:
            t1 = time.perf_counter()
            self.worker_info = ray.get([a.info.remote() for a in actors])
            self.timings["actors_ready_s"] = time.perf_counter() - t1
            for actor in actors:
                submit(actor)
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                ref = ready[0]
                actor, unit = inflight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except RayActorError as exc:
                    outcome = UnitOutcome(unit.key, error=f"its Ray worker died {self.max_task_retries + 1} times "
                                          f"({type(exc).__name__})", error_type=type(exc).__name__)
                    ray.kill(actor, no_restart=True)
                    actors.remove(actor)
                    actor = None
                    if replacements < self.max_replacements and queue:
                        replacements += 1
                        actor = actor_class.remote(job_ref, self.torch_threads)
                        actors.append(actor)
                except RayError as exc:  # compute_outcome catches unit errors; this is Ray's own failure
                    # (e.g. a result the driver cannot unpickle because its code differs from the workers')
                    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                    outcome = UnitOutcome(unit.key, error=f"Ray could not return the unit: {first}",
                                          error_type=type(exc).__name__)
                deliver(unit, outcome)
                if actor is not None:
                    submit(actor)
                if not inflight and queue and actors and may_start():
                    submit(actors[0])
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if started_here:
                ray.shutdown()

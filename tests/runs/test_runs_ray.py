"""The Ray executor on a real local cluster (2 CPUs, started and stopped here): same tables as the local executor,
a killed worker or a killed driver loses nothing, a failing unit is reported while the others complete.

Run by ``make test-ray`` inside a private network namespace (``unshare -n`` with ``lo`` up), so all of Ray's
traffic stays on loopback; skipped elsewhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from interp_steer.runs import LocalExecutor, RayExecutor, ScanConfig, run_scan_job
from interp_steer.runs.scan import ScanUnit

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_scan import KEYS, toy_data  # noqa: E402

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(os.environ.get("INTERP_STEER_RAY_NETNS") != "1",
                       reason="Ray tests run in a private network namespace: make test-ray"),
]
ray = pytest.importorskip("ray")


def config(**kw):
    base = dict(model="tiny-llama", datasets=["toy:a", "toy:b"], layers=[0, 1, 2], multipliers=[-1.0, 0.0, 1.0],
                batch_size=8, layers_per_unit=1)
    return ScanConfig(**{**base, **kw})


def toy_with_empty(name: str):
    """``toy_data``, except that ``toy:empty`` has no training pairs (its units fail with a ConfigError)."""
    return ([], toy_data("toy:b")[1]) if name == "toy:empty" else toy_data(name)


class SlowToy:
    """``toy_data`` that first records the worker's pid in ``marker_dir`` and waits a moment (so a test can
    kill the worker while it holds a unit)."""

    def __init__(self, marker_dir: str, delay_s: float = 3.0) -> None:
        self.marker_dir, self.delay_s = marker_dir, delay_s

    def __call__(self, name: str):
        Path(self.marker_dir, f"{os.getpid()}-{time.time_ns()}").write_text(name)
        time.sleep(self.delay_s)
        return toy_data(name)


@pytest.fixture(scope="module")
def cluster():
    """A private 2-CPU local Ray cluster for this module (no dashboard, no usage statistics)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # the workers (children of the raylet started here) import the toy data providers from this directory
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny):
    """The scan of :func:`config` through the local executor."""
    out = tmp_path_factory.mktemp("local")
    report = run_scan_job(config(), toy_data, out, model=tiny, executor=LocalExecutor(), progress=False)
    return report.tables


def sorted_table(frame):
    return frame.sort_values(KEYS).reset_index(drop=True)


def assert_same_scan(tables, reference):
    got = tables["propensities"]
    assert len(got) == len(reference["propensities"]) == 36 and not got.duplicated(KEYS).any()
    pd.testing.assert_frame_equal(sorted_table(got), sorted_table(reference["propensities"]), atol=1e-6, rtol=0)
    pd.testing.assert_frame_equal(tables["summary"], reference["summary"], atol=1e-6, rtol=0)


def test_ray_and_local_give_identical_tables_and_a_failing_unit_is_reported(cluster, reference, tmp_path):
    cfg = config(datasets=["toy:a", "toy:empty", "toy:b"])
    executor = RayExecutor(workers=2)
    report = run_scan_job(cfg, toy_with_empty, tmp_path, executor=executor, progress=False)
    # the units of the dataset without training pairs fail with the package's error; the others complete
    assert set(report.failed) == {g.key for g in cfg.groups() if g.dataset == "toy:empty"}
    assert all("'toy:empty': scan unit needs non-empty train and test splits" in e for e in report.failed.values())
    assert len(report.done) == 6 and not report.skipped
    assert not (tmp_path / "units" / f"{ScanUnit('toy:empty', 0).key}.propensity.parquet").exists()
    # ... with the same rows and values as the local executor
    assert_same_scan(report.tables, reference)
    pd.testing.assert_frame_equal(report.tables["propensities"], reference["propensities"], atol=1e-6, rtol=0)
    pids = {info["pid"] for info in executor.worker_info}
    assert len(pids) == 2 and os.getpid() not in pids  # two separate worker processes did the work
    assert ray.is_initialized()  # a session the executor did not start is left running


def test_killed_worker_is_replaced_and_its_unit_rerun(cluster, reference, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    killed = []

    def kill_first_worker():
        deadline = time.time() + 300
        while not list(markers.iterdir()) and time.time() < deadline:
            time.sleep(0.05)
        pid = int(sorted(markers.iterdir(), key=lambda p: p.stat().st_mtime)[0].name.split("-")[0])
        os.kill(pid, signal.SIGKILL)  # the worker is inside SlowToy's sleep: mid-unit
        killed.append(pid)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    report = run_scan_job(config(), SlowToy(str(markers), delay_s=2.0), tmp_path / "out",
                          executor=RayExecutor(workers=2), progress=False)
    killer.join(timeout=10)
    assert killed, "no worker was killed"
    pids_seen = {int(p.name.split("-")[0]) for p in markers.iterdir()}
    assert len(pids_seen) >= 3 and killed[0] in pids_seen  # the restarted worker is a new process
    assert report.complete and sorted(report.done) == sorted(g.key for g in config().groups())
    assert_same_scan(report.tables, reference)


DRIVER = """
import sys, time
sys.path.insert(0, {tests!r})
from test_runs_ray import config, toy_data
from interp_steer.runs import RayExecutor, run_scan_job
def done(unit):
    print("done", unit.key, flush=True)
    time.sleep(120)  # the test kills this driver here
run_scan_job(config(), toy_data, {out!r}, executor=RayExecutor(address={address!r}, workers=2), progress=False,
             on_unit_done=done)
"""


def test_driver_killed_then_rerun_resumes_without_recomputing(cluster, reference, tmp_path):
    out = tmp_path / "killed"
    script = DRIVER.format(tests=str(Path(__file__).parent), out=str(out), address=cluster)
    env = {**os.environ, "INTERP_STEER_RAY_NETNS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("done"), proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finished = {p: p.stat().st_mtime_ns for p in (out / "units").glob("*.propensity.parquet")}
    assert finished and not (out / "summary.parquet").exists()
    time.sleep(0.05)
    report = run_scan_job(config(), toy_data, out, executor=RayExecutor(address=cluster, workers=2), progress=False)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in finished.items())  # done units were not rewritten
    assert len(report.reused) >= 1 and len(report.reused) + len(report.done) == 6 and report.complete
    assert len(report.reused) == len(finished)  # one layer per unit
    assert not list(out.rglob(".*.tmp*"))
    assert_same_scan(report.tables, reference)


def test_scan_cli_with_ray_executor_matches_local(cluster, tmp_path):
    from typer.testing import CliRunner

    from interp_steer.cli import app

    args = ["scan", "--dataset", "builtin:sentiment", "--model", "tiny-llama", "--layers", "0,2", "--n-train", "4",
            "--n-test", "3", "--multipliers", "-1,0,1", "--layers-per-unit", "1", "--no-progress"]
    local = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "local")], catch_exceptions=False)
    assert local.exit_code == 0, local.output
    remote = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2",
                                      "--ray-address", cluster], catch_exceptions=False)
    assert remote.exit_code == 0, remote.output
    assert "2 units: 2 computed, 0 already done" in remote.output and "ray (" in remote.output
    a, b = (pd.read_parquet(tmp_path / d / "propensities.parquet") for d in ("local", "ray"))
    pd.testing.assert_frame_equal(a, b, atol=1e-6, rtol=0)

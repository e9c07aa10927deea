"""The shared runner: out-dir checks, resume guard, duplicate units, time budget, stale temporaries, failures."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from interp_steer.errors import ConfigError, DataFormatError, InterpSteerError
from interp_steer.runs import Job, JobConfig, LocalExecutor, ScanConfig, UnitsFailedError, run_job
from interp_steer.runs.files import read_table


@dataclass
class PowerConfig(JobConfig):
    """A model-free toy job: unit ``v`` tabulates ``v ** power`` for a few offsets."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ("power", "offsets")
    JOB: ClassVar[str] = "power table"

    model: str = "none"
    values: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    power: int = 2
    offsets: list[float] = field(default_factory=lambda: [0.0, 0.5])
    failing: list[int] = field(default_factory=list)
    sleep_s: float = 0.0

    def __post_init__(self) -> None:
        if self.power < 0:
            raise ConfigError(f"PowerConfig.power must be ≥ 0, got {self.power}")


@dataclass(frozen=True)
class PowerUnit:
    value: int

    @property
    def key(self) -> str:
        return f"v{self.value:03d}"


class PowerJob(Job):
    def __init__(self, config: PowerConfig, calls: list | None = None) -> None:
        self.config, self.calls = config, calls if calls is not None else []

    def units(self):
        return [PowerUnit(v) for v in self.config.values]

    def unit_files(self, unit):
        return [f"units/{unit.key}.csv"]

    def compute(self, unit, model):
        self.calls.append(unit.key)
        time.sleep(self.config.sleep_s)
        if unit.value in self.config.failing:
            raise DataFormatError(f"value {unit.value} is marked as failing")
        rows = [{"value": unit.value, "offset": o, "y": (unit.value + o) ** self.config.power} for o in self.config.offsets]
        return [(f"units/{unit.key}.csv", pd.DataFrame(rows))]

    def combine(self, out_dir: Path):
        present = [out_dir / f for u in self.units() if (out_dir / (f := self.unit_files(u)[0])).exists()]
        return {"table": pd.concat([read_table(p) for p in present], ignore_index=True)}


def run(config, out, calls=None, **kw):
    return run_job(PowerJob(config, calls), out, model=object(), progress=False, **kw)


def test_units_are_computed_and_combined_in_unit_order(tmp_path):
    report = run(PowerConfig(), tmp_path)
    table = report.tables["table"]
    expected = np.array([(v + o) ** 2 for v in (1, 2, 3, 4) for o in (0.0, 0.5)])
    np.testing.assert_allclose(table["y"].to_numpy(), expected)
    assert report.done == ["v001", "v002", "v003", "v004"] and report.complete
    assert PowerConfig.from_json((tmp_path / "config.json").read_text()) == PowerConfig()
    saved = json.loads((tmp_path / "run_report.json").read_text())
    assert saved["done"] == report.done and saved["failed"] == {}


def test_out_dir_checks_before_any_work(tmp_path):
    calls = []
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"--out .*results.txt is an existing file"):
        run(PowerConfig(), a_file, calls)
    with pytest.raises(ConfigError, match=r"--out .*results.txt is a file"):
        run(PowerConfig(), a_file / "sub", calls)
    with pytest.raises(ConfigError, match=r"--out /proc/interp-steer-test.* not writable"):
        run(PowerConfig(), Path("/proc/interp-steer-test"), calls)
    assert calls == []


def test_resume_guard_names_the_differing_fields(tmp_path):
    run(PowerConfig(), tmp_path)
    calls = []
    with pytest.raises(ConfigError) as info:
        run(PowerConfig(power=3, offsets=[0.0, 1.0]), tmp_path, calls)
    message = str(info.value)
    assert "different power, offsets" in message and "2 there, 3 here" in message and "\n" not in message
    assert calls == []
    # fields that are not result-defining may change; new units are added, finished ones reused
    report = run(PowerConfig(values=[1, 2, 3, 4, 5], sleep_s=0.01), tmp_path, calls)
    assert calls == ["v005"] and report.reused == ["v001", "v002", "v003", "v004"]
    assert len(report.tables["table"]) == 10


def test_duplicate_units_are_rejected_before_any_work(tmp_path):
    calls = []
    with pytest.raises(ConfigError, match=r"duplicate work units \['v002'\]"):
        run(PowerConfig(values=[1, 2, 2]), tmp_path, calls)
    assert calls == [] and not (tmp_path / "config.json").exists()
    with pytest.raises(ConfigError, match="'toy:a' more than once"):
        ScanConfig(model="tiny-llama", datasets=["toy:a", "toy:b", "toy:a"], layers=[0])
    with pytest.raises(ConfigError, match="layer more than once"):
        ScanConfig(model="tiny-llama", datasets=["toy:a"], layers=[1, 1])


def test_failing_unit_is_reported_and_the_others_complete(tmp_path):
    report = run(PowerConfig(failing=[2]), tmp_path)
    assert report.done == ["v001", "v003", "v004"]
    assert report.failed == {"v002": "value 2 is marked as failing"}
    assert sorted(report.tables["table"]["value"].unique()) == [1, 3, 4]
    assert "DataFormatError" in json.loads((tmp_path / "run_report.json").read_text())["tracebacks"]["v002"]
    with pytest.raises(UnitsFailedError, match=r"1 of 4 units failed \(unit v002: value 2 is marked") as info:
        report.raise_if_failed()
    assert isinstance(info.value, InterpSteerError) and "\n" not in str(info.value)
    calls = []
    assert run(PowerConfig(), tmp_path, calls).complete and calls == ["v002"]  # a rerun retries only the failure


def test_time_budget_skips_units_and_a_rerun_finishes_them(tmp_path):
    calls = []
    report = run(PowerConfig(sleep_s=1.0), tmp_path, calls, time_budget_s=1.5)
    assert report.budget_exhausted and report.done == ["v001", "v002"] and report.skipped == ["v003", "v004"]
    assert "2 skipped (time budget)" in report.summary_line()
    report = run(PowerConfig(), tmp_path, calls, time_budget_s=0)
    assert report.done == [] and report.skipped == ["v003", "v004"] and calls == ["v001", "v002"]
    report = run(PowerConfig(), tmp_path, calls)
    assert calls == ["v001", "v002", "v003", "v004"] and report.reused == ["v001", "v002"] and report.complete
    with pytest.raises(ConfigError, match="time budget"):
        run(PowerConfig(), tmp_path, calls, time_budget_s=-1)


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    units = tmp_path / "units"
    units.mkdir(parents=True)
    stale = [units / ".v001.csv.tmp-4242-abcdef", units / ".v009.tmp", tmp_path / ".config.json.tmp-77"]
    for path in stale:
        path.write_text("torn")
    (units / "v001.csv").write_text("value,offset,y\n1,0.0,1.0\n")  # a finished unit survives
    calls = []
    report = run(PowerConfig(), tmp_path, calls)
    assert not any(p.exists() for p in stale) and not list(tmp_path.rglob(".*.tmp*"))
    assert report.reused == ["v001"] and calls == ["v002", "v003", "v004"]


def test_local_executor_restores_torch_threads(tmp_path):
    import torch

    before = torch.get_num_threads()
    seen = []

    class ThreadJob(PowerJob):
        def compute(self, unit, model):
            seen.append(torch.get_num_threads())
            return super().compute(unit, model)

    run_job(ThreadJob(PowerConfig(values=[1])), tmp_path, executor=LocalExecutor(torch_threads=2), model=object(),
            progress=False)
    assert seen == [2] and torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="torch_threads"):
        LocalExecutor(torch_threads=0)


def test_evaluate_job_matches_the_direct_pipeline_and_resumes(tmp_path, tiny):
    from interp_steer.data import load_dataset, train_test_split
    from interp_steer.evaluation import compute_propensities, random_baseline, steerability
    from interp_steer.methods import extract_caa
    from interp_steer.runs.evaluate import EvaluateConfig, EvaluateJob
    from interp_steer.runs.files import file_sha1

    pairs = load_dataset("builtin:sentiment")
    vector = extract_caa(tiny, pairs[:6], [1], progress=False)
    path = vector.save(tmp_path / "sent.safetensors")

    def job(random_baselines, digest=None):
        cfg = EvaluateConfig(vector=str(path), dataset="builtin:sentiment", model="tiny-llama", multipliers=[-1.0, 0.0, 2.0],
                             n=3, random_baselines=random_baselines, batch_size=4, vector_sha1=digest or file_sha1(path),
                             neutral_n=0, n_generations=0, baseline=False)
        return EvaluateJob(cfg, vector)

    out = tmp_path / "eval"
    report = run_job(job(1), out, model=tiny, progress=False)
    test = train_test_split(pairs, test_fraction=0.5, seed=0)[1][:3]
    direct = pd.concat([compute_propensities(tiny, test, vector, [-1.0, 0.0, 2.0], vector_name="sent"),
                        random_baseline(tiny, test, vector, [-1.0, 0.0, 2.0], seeds=[0])], ignore_index=True)
    got = report.tables["propensities"]
    assert list(got["vector"].unique()) == ["sent", "random:0"] and len(got) == len(direct) == 18
    np.testing.assert_allclose(got["propensity"], direct["propensity"], atol=1e-6)
    np.testing.assert_allclose(report.tables["per_sample"]["slope"], steerability(direct)["slope"], atol=1e-6)
    stamp = (out / "units" / "vector.propensity.parquet").stat().st_mtime_ns
    more = run_job(job(2), out, model=tiny, progress=False)  # one more baseline: only that unit runs
    assert more.done == ["random-001"] and more.reused == ["vector", "random-000"]
    assert (out / "units" / "vector.propensity.parquet").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="different vector_sha1"):
        run_job(job(2, digest="0" * 40), out, model=tiny, progress=False)


def test_runner_records_each_finished_units_own_cpu_time(tmp_path):
    """``unit_timings.jsonl``: one line per computed unit with the CPU seconds of the computing process, measured
    independently here by a busy loop of known CPU cost; reused units add no line, failed units none."""

    class BusyJob(PowerJob):
        def compute(self, unit, model):
            started = time.process_time()
            while time.process_time() - started < 0.05 * unit.value:
                pass
            return super().compute(unit, model)

    run_job(BusyJob(PowerConfig(values=[1, 4], failing=[4])), tmp_path, model=object(), progress=False)
    run_job(BusyJob(PowerConfig(values=[1, 4])), tmp_path, model=object(), progress=False)  # v001 reused
    lines = [json.loads(x) for x in (tmp_path / "unit_timings.jsonl").read_text().splitlines()]
    assert [line["unit"] for line in lines] == ["v001", "v004"]
    assert 0.05 <= lines[0]["cpu_s"] < 0.5 and 0.2 <= lines[1]["cpu_s"] < 1.0
    assert all(line["wall_s"] >= line["cpu_s"] * 0.9 and line["worker"] for line in lines)

"""Results you can trust after a crash (issue 29): completion records checked on resume, one run per output
directory, kill -9 during the combined tables and the report, config checks before config.json.

Fault tests damage one unit file of a finished run (truncate it mid-row, overwrite it with zeros, flip one byte),
rerun the same job and compare the final tables with the uninterrupted run's, on the tiny random model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.runs.records import RECORDS_DIR, parse_check, read_record, sha256_of

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def damage(path: Path, how: str) -> None:
    """Truncate ``path`` to two thirds (mid-row for a table), overwrite it with zero bytes, or flip one bit in
    its middle (a table stays parseable: only the checksum sees it)."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        cut = len(data) * 2 // 3
        cut -= data[cut - 1] == ord("\n")  # never exactly at a line end: a torn row
        path.write_bytes(bytes(data[:cut]))
    elif how == "zero":
        path.write_bytes(bytes(len(data)))
    else:
        middle = len(data) // 2
        while chr(data[middle]) not in "0123456789":  # a digit → another digit: the file still parses
            middle += 1
        data[middle] = ord("1") if data[middle] != ord("1") else ord("2")
        path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------------------ records alone
def test_parse_check_finds_torn_and_zeroed_tables(tmp_path):
    good = tmp_path / "t.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y,z", "w"]}).to_csv(good, index=False)
    assert parse_check(good) == {"rows": 3, "columns": ["a", "b"]}
    torn = tmp_path / "torn.csv"
    torn.write_text('a,b\n1,x\n2,"y')
    with pytest.raises(DataFormatError, match="mid-row"):
        parse_check(torn)
    short = tmp_path / "short.csv"
    short.write_text("a,b\n1,x\n2\n")
    with pytest.raises(DataFormatError, match="line 3 has 1 fields, the header 2"):
        parse_check(short)
    zero = tmp_path / "zero.csv"
    zero.write_bytes(bytes(10) + b"\n")
    with pytest.raises(DataFormatError, match="NUL"):
        parse_check(zero)
    (tmp_path / "x.json").write_text('{"a": [1, 2')
    with pytest.raises(DataFormatError, match="not valid JSON"):
        parse_check(tmp_path / "x.json")


def test_a_torn_resumable_file_outside_the_units_is_recomputed(tmp_path, capsys):
    """``intact_or_warn``: how ``evaluate``'s prompting-baseline file (kept outside the runner's units) is checked."""
    from interp_steer.runs.records import intact_or_warn

    good = tmp_path / "baseline.m1.csv"
    pd.DataFrame({"a": [1.5, 2.5]}).to_csv(good, index=False)
    assert intact_or_warn(good) and capsys.readouterr().err == ""
    damage(good, "truncate")
    assert not intact_or_warn(good)
    assert capsys.readouterr().err.strip() == f"warning: {good}: the table ends mid-row (no final newline: truncated?); " \
        "recomputing it"


# ------------------------------------------------------------------------------------------------ scan
SCAN = dict(model="tiny-llama", datasets=["builtin:sentiment"], layers=[0, 1], multipliers=[-1.0, 0.0, 1.0],
            n_train=4, n_test=4, batch_size=8, table_format="csv")


@pytest.fixture(scope="module")
def scan_run(tiny, tmp_path_factory):
    from interp_steer.runs.scan import ScanConfig, registry_pairs, run_scan_job

    config = ScanConfig(**SCAN)
    out = tmp_path_factory.mktemp("scan") / "out"
    report = run_scan_job(config, registry_pairs(config), out, model=tiny, progress=False)
    assert report.complete
    return config, out, report.tables


def _rerun_scan(config, out, tiny):
    from interp_steer.runs.scan import registry_pairs, run_scan_job

    return run_scan_job(config, registry_pairs(config), out, model=tiny, progress=False)


@pytest.mark.parametrize("suffix,how", [
    ("propensity.csv", "truncate"), ("propensity.csv", "zero"), ("propensity.csv", "corrupt"),
    ("safetensors", "truncate"), ("safetensors", "zero"), ("safetensors", "corrupt"),
    ("json", "truncate"), ("json", "corrupt"),  # the vector's JSON sidecar
])
def test_scan_resume_recomputes_a_damaged_unit_file(scan_run, tiny, tmp_path, capsys, suffix, how):
    config, reference, tables = scan_run
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    unit = config.units()[1]
    victim = out / "units" / f"{unit.key}.{suffix}"
    damage(victim, how)
    capsys.readouterr()
    report = _rerun_scan(config, out, tiny)
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(victim) in warning[0] and "recomputing unit" in warning[0], warning
    assert report.done == [config.groups()[0].key] and report.complete
    for name in ("propensities", "per_sample", "summary"):
        pd.testing.assert_frame_equal(report.tables[name], tables[name])
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{name}.csv"), pd.read_csv(reference / f"{name}.csv"))
    assert read_record(out, config.groups()[0].key)[f"units/{unit.key}.{suffix}"]["sha256"] == sha256_of(victim)


def test_scan_without_records_accepts_complete_files_and_recomputes_torn_ones(scan_run, tiny, tmp_path, capsys):
    """A directory written before records existed (or killed between a unit's files and its record)."""
    config, reference, tables = scan_run
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    shutil.rmtree(out / RECORDS_DIR)
    report = _rerun_scan(config, out, tiny)
    assert report.done == [] and len(report.reused) == 1  # complete files: accepted and recorded
    files = read_record(out, config.groups()[0].key)
    assert set(files) == {f"units/{u.key}.{s}" for u in config.units() for s in ("safetensors", "propensity.csv")}
    assert files[f"units/{config.units()[0].key}.propensity.csv"]["rows"] == 4 * 3
    for suffix in ("propensity.csv", "safetensors"):
        shutil.rmtree(out / RECORDS_DIR)
        damage(out / "units" / f"{config.units()[0].key}.{suffix}", "truncate")
        capsys.readouterr()
        report = _rerun_scan(config, out, tiny)
        assert "no completion record" in capsys.readouterr().err and len(report.done) == 1
        pd.testing.assert_frame_equal(report.tables["propensities"], tables["propensities"])


def test_combine_refuses_a_table_whose_rows_differ_from_its_record(scan_run, tmp_path):
    from interp_steer.runs.scan import combine_scan

    config, reference, _ = scan_run
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    victim = out / "units" / f"{config.units()[0].key}.propensity.csv"
    table = pd.read_csv(victim)
    table.iloc[:-1].to_csv(victim, index=False)  # a complete, parseable table with one row fewer
    with pytest.raises(DataFormatError) as info:
        combine_scan(out)
    assert str(victim) in str(info.value) and "11 rows" in str(info.value) and "says 12" in str(info.value)


# ------------------------------------------------------------------------------------------------ tune, evaluate
def test_tune_resume_recomputes_a_truncated_table_and_recommends_as_before(tiny, tmp_path, capsys):
    from interp_steer.data import load_dataset, train_test_split
    from interp_steer.runs.tune import TuneConfig, run_tune_job

    config = TuneConfig(model="tiny-llama", dataset="builtin:sentiment@ab", layers=[0, 1], multipliers=[0, 1, 4],
                        n_neutral=3, continuation_tokens=2, n_boot=200, batch_size=8)
    train, test = train_test_split(load_dataset(config.dataset), test_fraction=0.5, seed=0)
    data = {config.dataset: (train[:4], test[:6])}
    first = run_tune_job(config, tmp_path / "a", model=tiny, data=data, progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    recommendation = json.loads((tmp_path / "a" / "recommendation.json").read_text())
    for rel, how, legacy in (("units/L001.propensity.csv", "truncate", True), ("units/L000.neutral.csv", "corrupt", False),
                             ("units/L001.answers.csv", "zero", False), ("units/L000.vector.safetensors", "corrupt", False)):
        if legacy:  # the case: no record, a table cut mid-row (3 of 6 samples left)
            shutil.rmtree(tmp_path / "b" / RECORDS_DIR)
        damage(tmp_path / "b" / rel, how)
        capsys.readouterr()
        again = run_tune_job(config, tmp_path / "b", model=tiny, data=data, progress=False)
        assert rel in capsys.readouterr().err and len(again.done) == 1, rel
        pd.testing.assert_frame_equal(again.tables["summary"], first.tables["summary"])
        assert json.loads((tmp_path / "b" / "recommendation.json").read_text()) == recommendation


def test_evaluate_resume_recomputes_a_damaged_parquet_unit(tiny, tmp_path, capsys):
    from interp_steer.data import load_dataset
    from interp_steer.methods import extract_caa
    from interp_steer.runs import run_job
    from interp_steer.runs.evaluate import EvaluateConfig, EvaluateJob
    from interp_steer.runs.files import file_sha1

    vector = extract_caa(tiny, load_dataset("builtin:sentiment")[:6], [1], progress=False)
    path = vector.save(tmp_path / "sent.safetensors")
    config = EvaluateConfig(vector=str(path), dataset="builtin:sentiment", model="tiny-llama",
                            multipliers=[-1.0, 0.0, 2.0], n=3, random_baselines=1, batch_size=4,
                            vector_sha1=file_sha1(path), neutral_n=0, n_generations=0, baseline=False)
    first = run_job(EvaluateJob(config, vector), tmp_path / "a", model=tiny, progress=False)
    for rel, how in (("units/vector.propensity.parquet", "truncate"), ("units/random-000.propensity.parquet", "corrupt")):
        shutil.copytree(tmp_path / "a", tmp_path / "b", dirs_exist_ok=True)
        damage(tmp_path / "b" / rel, how)
        again = run_job(EvaluateJob(config, vector), tmp_path / "b", model=tiny, progress=False)
        assert rel in capsys.readouterr().err and len(again.done) == 1
        for name, table in first.tables.items():
            pd.testing.assert_frame_equal(again.tables[name], table)


# ------------------------------------------------------------------------------------------------ study
@pytest.fixture(scope="module")
def study_run(tiny, tmp_path_factory, data_root):
    from interp_steer.runs.study import preset_config, run_study

    config = preset_config("tiny", model="tiny-llama", data_dir=data_root, scan_layers=[0, 1, 2], n_boot=100)
    out = tmp_path_factory.mktemp("study") / "out"
    result = run_study(config, out, data_dir=data_root, model=tiny, echo=lambda _: None)
    return config, out, result


def test_study_resume_recomputes_damaged_units_of_each_stage(study_run, tiny, tmp_path, data_root, capsys):
    from interp_steer.runs.study import run_study

    config, reference, first = study_run
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    steer_table = sorted((out / "steerability" / "units").glob("*.propensity.csv"))[0]
    shutil.rmtree(out / "steerability" / RECORDS_DIR)  # a unit written by a version without records
    damage(steer_table, "truncate")
    damage(sorted((out / "scan" / "units").glob("*.safetensors"))[0], "zero")
    damage(sorted((out / "id_ood" / "units").glob("*.per_sample.csv"))[0], "corrupt")
    log: list[str] = []
    again = run_study(config, out, data_dir=data_root, model=tiny, echo=log.append)
    err = capsys.readouterr().err
    assert err.count("warning:") == 3 and str(steer_table) in err
    for stage in ("scan", "steerability", "id_ood"):
        line = next(x for x in log if x.startswith(f"[{stage}]") and "units" in x)
        assert " 1 computed" in line, line
    pd.testing.assert_frame_equal(again.headline, first.headline)
    assert _headline_lines(out / "report.md") == _headline_lines(reference / "report.md")


def _headline_lines(report: Path) -> list[str]:
    lines = [line for line in report.read_text().splitlines() if line.startswith("- ") and "**" in line]
    assert lines
    return lines


def test_study_checks_scan_layers_before_writing_config(tiny, tmp_path, data_root):
    from interp_steer.runs.study import preset_config, run_study
    from interp_steer.runs.study_start import prepare_study

    bad = preset_config("tiny", model="tiny-llama", data_dir=data_root, scan_layers=[6, 15, 24], n_boot=100)
    with pytest.raises(ConfigError, match=r"--scan-layers 6,15,24: out of range for 'tiny-llama', which has 3 layers"):
        run_study(bad, tmp_path, data_dir=data_root, model=tiny)
    assert not (tmp_path / "config.json").exists()
    good = preset_config("tiny", model="tiny-llama", data_dir=data_root, scan_layers=[0, 1], n_boot=100)
    prepare_study(good, tmp_path, data_dir=data_root, model=tiny)  # the corrected command is not refused
    assert json.loads((tmp_path / "config.json").read_text())["scan_layers"] == [0, 1]
    other = preset_config("tiny", model="tiny-llama", data_dir=data_root, scan_layers=[0, 2], n_boot=100)
    with pytest.raises(ConfigError) as info:
        prepare_study(other, tmp_path, data_dir=data_root, model=tiny)
    assert "change --scan-layers back" in str(info.value) and f"remove the directory {tmp_path}" in str(info.value)
    with pytest.raises(ConfigError, match=r"different n_test .* change --n-test back"):
        prepare_study(preset_config("tiny", model="tiny-llama", scan_layers=[0, 1], n_test=5, n_boot=100), tmp_path,
                      data_dir=data_root, model=tiny)


def test_study_refuses_an_empty_data_dir_before_loading_the_model(tmp_path, monkeypatch):
    import interp_steer.runs.executors as executors
    from interp_steer.runs.study import preset_config, run_study

    monkeypatch.setattr(executors, "cached_model", lambda *a, **k: pytest.fail("the model must not load"))
    empty = tmp_path / "data"
    empty.mkdir()
    config = preset_config("tiny", model="tiny-llama", scan_layers=[0, 1])
    with pytest.raises(DataFormatError, match=f"the data directory {empty} holds no data sets"):
        run_study(config, tmp_path / "out", data_dir=empty)
    assert not (tmp_path / "out" / "config.json").exists()


# ------------------------------------------------------------------------------------------------ processes
def _job(out: Path, sleep_s: float, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "run_integrity_job.py"), str(out), str(sleep_s), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def _expected_combined() -> pd.DataFrame:
    from run_integrity_job import unit_table

    return pd.concat([unit_table(i) for i in range(4)], ignore_index=True)


def _wait_for_lock(out: Path, pid: int, timeout: float = 60.0) -> None:
    lock = out / ".interp-steer.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and f'"pid": {pid}' in lock.read_text():
            return
        time.sleep(0.05)
    raise AssertionError("the first run never took the lock")


def test_a_second_run_on_the_same_out_refuses_or_waits_and_never_corrupts(tmp_path):
    out = tmp_path / "out"
    first = _job(out, 0.5)
    _wait_for_lock(out, first.pid)
    second = _job(out, 0.0)
    _, err = second.communicate(timeout=120)
    assert second.returncode != 0 and f"is in use by another run (pid {first.pid} on " in err, err
    assert "INTERP_STEER_LOCK_WAIT" in err
    stdout, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(stdout)["done"] == ["u0", "u1", "u2", "u3"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "combined.csv"), _expected_combined())
    assert not list(out.rglob(".*.tmp*"))
    # with a wait the second run starts once the first is done, and finds every unit finished
    out2 = tmp_path / "out2"
    first = _job(out2, 0.5)
    _wait_for_lock(out2, first.pid)
    second = _job(out2, 0.0, env={"INTERP_STEER_LOCK_WAIT": "120"})
    assert first.wait(timeout=120) == 0
    stdout, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert json.loads(stdout) == {"done": [], "reused": ["u0", "u1", "u2", "u3"]}
    pd.testing.assert_frame_equal(pd.read_csv(out2 / "combined.csv"), _expected_combined())


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_message(tmp_path, capsys):
    from run_integrity_job import SlowConfig, SlowJob

    from interp_steer.runs import run_job

    out = tmp_path / "out"
    holder = subprocess.run([sys.executable, "-c", "import os, signal, sys; from interp_steer.runs.lock import "
                             "OutDirLock; OutDirLock(sys.argv[1]).acquire(); print(os.getpid(), flush=True); "
                             "os.kill(os.getpid(), signal.SIGKILL)", str(out)], cwd=REPO, capture_output=True, text=True)
    assert holder.returncode == -signal.SIGKILL
    dead = int(holder.stdout.split()[0])
    report = run_job(SlowJob(SlowConfig()), out, model=object(), progress=False)
    assert report.complete and f"taking over the lock of a run that ended without releasing it (pid {dead} on " in \
        capsys.readouterr().err
    assert (out / ".interp-steer.lock").read_text() == ""  # released cleanly: the next run says nothing
    run_job(SlowJob(SlowConfig()), out, model=object(), progress=False)
    assert "taking over" not in capsys.readouterr().err


def test_cleanup_spares_temporaries_of_a_live_run_in_a_locked_subdirectory(tmp_path):
    from run_integrity_job import SlowConfig, SlowJob

    from interp_steer.runs import run_job

    out, inner = tmp_path / "out", tmp_path / "out" / "inner"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from interp_steer.runs.lock import OutDirLock; "
                               "OutDirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
                               str(inner)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        live = inner / f".table.csv.tmp-{holder.pid}-abcdef"
        live.write_text("being written")
        stale = out / ".combined.csv.tmp-999999-abcdef"
        stale.write_text("torn")
        run_job(SlowJob(SlowConfig()), out, model=object(), progress=False)
        assert live.exists() and not stale.exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("kill_at", ["combined.csv", "report.md", "u2.csv"])
def test_kill_9_while_writing_results_then_rerun_completes_them(tmp_path, kill_at):
    out = tmp_path / "out"
    killed = _job(out, 0.0, f"kill-at={kill_at}")
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not (out / kill_at).exists() and not (out / "units" / kill_at).exists()
    again = _job(out, 0.0)
    stdout, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(out / "combined.csv"), _expected_combined())
    assert (out / "report.md").read_text() == "# slow table\n\n12 rows, total 18\n"
    assert not list(out.rglob(".*.tmp*"))
    done = json.loads(stdout)["done"]
    assert done == (["u2", "u3"] if kill_at == "u2.csv" else [])


def test_kill_9_while_writing_the_study_report_then_rerun_completes_it(study_run, tiny, tmp_path, data_root):
    config, reference, first = study_run
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    for name in ("report.md", "tables", "figures"):
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    script = ("import os, signal, sys; real = os.replace\n"
              "def replace(src, dst):\n"
              "    if str(dst).endswith('report.md'): os.kill(os.getpid(), signal.SIGKILL)\n"
              "    real(src, dst)\n"
              "os.replace = replace\n"
              "from interp_steer.runs.study import StudyConfig, run_study\n"
              "config = StudyConfig.read(sys.argv[1] + '/config.json')\n"
              "run_study(config, sys.argv[1], data_dir=sys.argv[2], echo=lambda _: None)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(out), str(data_root)], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "report.md").exists() and (out / "tables" / "headline.csv").exists()
    from interp_steer.runs.study import run_study

    again = run_study(config, out, data_dir=data_root, model=tiny, echo=lambda _: None)
    pd.testing.assert_frame_equal(again.headline, first.headline)
    assert _headline_lines(out / "report.md") == _headline_lines(reference / "report.md")
    assert not list(out.rglob(".*.tmp*"))

"""Layer scan: unit results, atomic files, and resumption after kill -9 giving identical tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.evaluation import compute_propensities, steerability
from interp_steer.methods import extract_caa
from interp_steer.runs.scan import ScanConfig, ScanUnit, combine_scan, run_scan, run_scan_unit

KEYS = ["dataset", "layer", "sample_id", "multiplier"]




def toy_data(name: str):
    """(train, test) pairs of a toy dataset: A/B for names ending in 'a', free text otherwise."""
    topics = ["tea", "the sea", "long winding mountain roads", "jazz", "cats", "rainy afternoons in the city"]
    if name.endswith("a"):
        pairs = [ContrastivePair(f"Do you like {t}?\n\nChoices:\n(A) Yes\n(B) No", *(("(A)", "(B)") if i % 2 else ("(B)", "(A)")),
                                 id=f"{name}-{i}", dataset=name) for i, t in enumerate(topics)]
    else:
        pairs = [ContrastivePair(f"What do you think of {t}?", " I love it.", " I dislike it.", kind="free_text",
                                 id=f"{name}-{i}", dataset=name) for i, t in enumerate(topics)]
    return pairs[:4], pairs[4:]


def config(**kw):
    base = dict(model="tiny-llama", datasets=["toy:a", "toy:b"], layers=[0, 1, 2], multipliers=[-1.0, 0.0, 1.0], batch_size=8)
    return ScanConfig(**{**base, **kw})


def sorted_table(frame):
    return frame.sort_values(KEYS).reset_index(drop=True)


def test_unit_matches_direct_pipeline(tiny):
    train, test = toy_data("toy:b")
    vector, props, per, summary = run_scan_unit(tiny, train, test, 1, [-1.0, 0.0, 1.0], dataset="toy:b")
    direct_vec = extract_caa(tiny, train, [1], progress=False)
    assert np.allclose(vector["blocks.1.hook_resid_post"], direct_vec["blocks.1.hook_resid_post"], atol=1e-6)
    direct = compute_propensities(tiny, test, direct_vec, [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(props.propensity, direct.propensity, atol=1e-5)
    assert summary.mean_slope.iloc[0] == pytest.approx(steerability(direct).slope.mean(), abs=1e-5)
    with pytest.raises(ConfigError):
        run_scan_unit(tiny, [], test, 1, [0.0, 1.0])


def test_fast_and_batched_engines_give_the_same_scan(tmp_path, tiny):
    fast = run_scan(tiny, config(engine="fast"), toy_data, tmp_path / "fast", progress=False)
    batched = run_scan(tiny, config(engine="batched"), toy_data, tmp_path / "batched", progress=False)
    assert len(fast["propensities"]) == len(batched["propensities"]) == 36
    pd.testing.assert_frame_equal(sorted_table(fast["propensities"]), sorted_table(batched["propensities"]), atol=1e-4)
    pd.testing.assert_frame_equal(fast["summary"], batched["summary"], atol=1e-4)
    key = ScanUnit("toy:b", 2).key
    from interp_steer.steering.vector import SteeringVector
    fast_vec = SteeringVector.load(tmp_path / "fast" / "units" / f"{key}.safetensors")
    batched_vec = SteeringVector.load(tmp_path / "batched" / "units" / f"{key}.safetensors")
    assert fast_vec.hook_names == batched_vec.hook_names == ["blocks.2.hook_resid_post"]
    assert list(fast_vec.provenance.layers) == list(batched_vec.provenance.layers) == [2]
    torch.testing.assert_close(fast_vec["blocks.2.hook_resid_post"], batched_vec["blocks.2.hook_resid_post"], atol=1e-6, rtol=0)


def test_config_validation_and_clash(tmp_path, tiny):
    with pytest.raises(ConfigError):
        config(multipliers=[1.0])
    with pytest.raises(ConfigError):
        config(layers=[])
    with pytest.raises(ConfigError):
        config(table_format="xlsx")
    with pytest.raises(ConfigError, match="engine"):
        config(engine="turbo")
    cfg = config(datasets=["toy:a"], layers=[0])
    run_scan(tiny, cfg, toy_data, tmp_path, progress=False)
    assert ScanConfig.from_json((tmp_path / "config.json").read_text()) == cfg
    with pytest.raises(ConfigError, match="multipliers"):
        run_scan(tiny, config(datasets=["toy:a"], layers=[0], multipliers=[0.0, 2.0]), toy_data, tmp_path, progress=False)
    # a directory written before split_order existed (file-order test slices) is not resumed with the new order
    legacy = json.loads((tmp_path / "config.json").read_text())
    del legacy["split_order"]
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    with pytest.raises(ConfigError, match="split_order"):
        run_scan(tiny, cfg, toy_data, tmp_path, progress=False)


def test_resume_after_partial_run_and_stale_files(tmp_path, tiny):
    full = run_scan(tiny, config(table_format="csv"), toy_data, tmp_path / "full", progress=False)
    assert len(full["propensities"]) == 2 * 3 * 2 * 3  # datasets × layers × test samples × multipliers
    # "killed" run: only a subset of units finished, plus debris a kill would leave behind
    out = tmp_path / "resumed"
    run_scan(tiny, config(layers=[0, 2], table_format="csv"), toy_data, out, progress=False)
    unit_dir = out / "units"
    (unit_dir / f".{ScanUnit('toy:a', 1).key}.propensity.csv.tmp-999").write_text("sample_id,multi")  # torn write
    (unit_dir / f"{ScanUnit('toy:b', 1).key}.safetensors").write_bytes(b"partial")  # vector written, table not
    calls = []
    resumed = run_scan(tiny, config(table_format="csv"), toy_data, out, progress=False, on_unit_done=calls.append)
    # the missing layer of toy:a ran; toy:b's group holds a file that fails its check and has no completion record
    # (the first run's group had other layers), so the whole group is recomputed rather than trusted
    assert calls == [ScanUnit("toy:a", 1), ScanUnit("toy:b", 0), ScanUnit("toy:b", 1), ScanUnit("toy:b", 2)]
    assert not list(unit_dir.glob(".*.tmp-*"))
    for name in ("propensities", "per_sample", "summary"):
        a, b = full[name], resumed[name]
        pd.testing.assert_frame_equal(a.sort_values(list(a.columns[:6])).reset_index(drop=True),
                                      b.sort_values(list(b.columns[:6])).reset_index(drop=True), atol=1e-6)
    assert not resumed["propensities"].duplicated(KEYS).any()
    pd.testing.assert_frame_equal(combine_scan(out)["summary"], resumed["summary"])


SCRIPT = """
import sys, time, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from test_eval_scan import toy_data, config
from interp_steer.runs.scan import run_scan
from interp_steer.models import tiny_model
def done(unit):
    print("done", unit.key, flush=True)
    time.sleep(60)  # parent kills us here, mid-scan
run_scan(tiny_model("tiny-llama", seed=0), config(layers_per_unit=1), toy_data, {out!r}, progress=False, on_unit_done=done)
"""


def test_resume_after_kill_9_equals_uninterrupted_run(tmp_path, tiny):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("done"), proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = list((out / "units").glob("*.propensity.parquet"))
    assert len(finished) == 1 and not (out / "summary.parquet").exists()
    resumed = run_scan(tiny, config(), toy_data, out, progress=False)  # units regrouped: not result-defining
    reference = run_scan(tiny, config(), toy_data, tmp_path / "reference", progress=False)
    assert len(resumed["propensities"]) == len(reference["propensities"]) == 36
    assert not resumed["propensities"].duplicated(KEYS).any()
    pd.testing.assert_frame_equal(sorted_table(resumed["propensities"]), sorted_table(reference["propensities"]), atol=1e-5)
    pd.testing.assert_frame_equal(resumed["summary"], reference["summary"], atol=1e-5)
    assert json.loads((out / "config.json").read_text())["layers"] == [0, 1, 2]

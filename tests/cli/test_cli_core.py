"""CLI core commands on a tiny model: extract → vector file, generate, demo outputs, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.steering import SteeringVector

runner = CliRunner()


def test_extract_writes_vector_with_provenance(tmp_path):
    out = tmp_path / "vec.safetensors"
    result = runner.invoke(app, ["extract", "--model", "tiny-llama", "--dataset", "builtin:sentiment", "--framing", "free_text",
                                 "--layers", "0,2", "--n-train", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    vector = SteeringVector.load(out)
    assert vector.hook_names == ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    assert vector.provenance.method == "caa" and vector.provenance.n_pairs == 6
    assert vector.provenance.model == "tiny-llama" and vector.provenance.dataset.startswith("builtin:sentiment")


def test_generate_prints_one_line_per_multiplier(tmp_path):
    out = tmp_path / "vec.safetensors"
    runner.invoke(app, ["extract", "--model", "tiny-llama", "--dataset", "builtin:sentiment", "--layers", "1", "--n-train", "4", "--out", str(out)])
    result = runner.invoke(app, ["generate", "--model", "tiny-llama", "--vector", str(out), "--prompt", "Hello",
                                 "--multipliers", "-2,0,2", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    assert [line[:5] for line in result.output.strip().splitlines()] == ["[x-2]", "[x+0]", "[x+2]"]


def test_demo_on_tiny_model_writes_table_and_plot(tmp_path):
    result = runner.invoke(app, ["demo", "--model", "tiny-llama", "--layers", "0,1", "--eval-layer", "1", "--n-train", "6",
                                 "--n-test", "4", "--n-neutral", "2", "--max-new-tokens", "4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "propensity.csv")
    assert set(table["multiplier"]) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert set(table["layer"]) == {0, 1} and table["sample_id"].nunique() >= 4
    summary = pd.read_csv(tmp_path / "layer_summary.csv")
    assert list(summary["layer"]) == [0, 1]
    assert (tmp_path / "propensity_curves.png").stat().st_size > 10_000
    assert SteeringVector.load(tmp_path / "caa_layer1.safetensors").provenance.layers == (1,)
    for name in ("steerability.csv", "steerability_distribution.csv", "side_effects.csv", "baseline.csv", "timings.csv"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "steerability_distribution.png").stat().st_size > 10_000
    side = pd.read_csv(tmp_path / "side_effects.csv")
    assert list(side["multiplier"]) == [-2.0, -1.0, 0.0, 1.0, 2.0] and set(side["n_passages"]) == {2}
    steps = [line.split("]")[1].split()[0] for line in result.output.splitlines() if line.startswith("[") and "/7]" in line]
    assert steps == ["load", "extract", "generate", "propensities", "side", "baseline", "tables"]


def test_bad_input_is_one_clear_line_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", "from interp_steer.cli import main; main()", "generate", "--vector",
                           str(tmp_path / "missing.safetensors"), "--prompt", "hi", "--model", "tiny-llama"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error: steering vector file not found" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", "from interp_steer.cli import main; main()", "extract", "--model", "tiny-llama",
                           "--dataset", "builtin:sentiment", "--layers", "7", "--out", str(tmp_path / "v")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--layers: layer(s) [7] out of range for a 3-layer model" in proc.stderr

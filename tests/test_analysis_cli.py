"""``interp-steer explain`` end to end on the tiny model and the packaged builtin data set."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from interp_steer.cli import app
from interp_steer.errors import ConfigError
from interp_steer.runs.explain import ExplainConfig
from interp_steer.methods import extract_caa


def test_explain_writes_report(tiny, tmp_path):
    from typer.testing import CliRunner

    from interp_steer.data import load_dataset

    pairs = load_dataset("builtin:sentiment", framing="ab")
    vector_path = extract_caa(tiny, pairs[:8], [1], progress=False).save(tmp_path / "v.safetensors")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "explain", "--vector", str(vector_path), "--dataset", "builtin:sentiment", "--framing", "ab",
        "--model", "tiny-llama", "--n", "6", "--multipliers", "-1,0,1", "--out", str(out),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    for link in re.findall(r"\]\(([^)]+)\)", report):
        assert (out / link).exists(), link
    assert {"patching.png", "logit_lens.png", "views_steerable.html", "views_anti-steerable.html"} <= {p.name for p in out.iterdir()}
    features = pd.read_csv(out / "sample_features.csv")
    sizes = features["group"].value_counts()
    assert f"steerable: {sizes.get('steerable', 0)}" in report
    patching = pd.read_csv(out / "patching.csv")
    steerable_id = features.sort_values("slope")["sample_id"].iloc[-1]
    assert set(patching.loc[patching["role"] == "steerable", "sample_id"]) == {steerable_id}


def test_explain_config_errors():
    with pytest.raises(ConfigError, match="including 0"):
        ExplainConfig(vector="v", dataset="d", multipliers=[1.0, 2.0])
    with pytest.raises(ConfigError, match="at least 2"):
        ExplainConfig(vector="v", dataset="d", n=1)
    assert ExplainConfig(vector="v", dataset="d", multipliers=[-3.0, 0.0, 1.0]).patch_multiplier == 3.0

"""``interp-steer explain`` end to end on the tiny model and the packaged builtin data set."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from interp_steer.cli import app
from interp_steer.errors import ConfigError
from interp_steer.methods import extract_caa
from interp_steer.runs.explain import ExplainConfig


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
    # a vector from the first 8 pairs, no split recorded: the report warns that held-out samples may be training pairs
    assert "records no train/test split" in report and "--holdout 0.2 --seed 0" in report


def test_extract_holdout_trains_on_the_train_part_and_explain_confirms_it(tiny, tmp_path):
    """``extract --holdout`` equals CAA on the train part of ``train_test_split`` (independent call) and records
    the split; ``explain`` with the same split then reports the held-out samples as disjoint."""
    import torch
    from typer.testing import CliRunner

    from interp_steer.data import load_dataset, train_test_split
    from interp_steer.steering import SteeringVector

    vector_path = tmp_path / "v.safetensors"
    result = CliRunner().invoke(app, [
        "extract", "--dataset", "builtin:sentiment", "--framing", "ab", "--model", "tiny-llama", "--layers", "1",
        "--holdout", "0.2", "--seed", "3", "--n-train", "10", "--out", str(vector_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    vector = SteeringVector.load(vector_path)
    train, test = train_test_split(load_dataset("builtin:sentiment", framing="ab"), test_fraction=0.2, seed=3)
    expected = extract_caa(tiny, train[:10], [1], progress=False)
    torch.testing.assert_close(vector.directions["blocks.1.hook_resid_post"],
                               expected.directions["blocks.1.hook_resid_post"], rtol=1e-5, atol=1e-5)
    assert dict(vector.provenance.extra["split"]) == {"part": "train", "test_fraction": 0.2, "seed": 3, "n_train": 10}
    assert {p.id for p in train[:10]}.isdisjoint({p.id for p in test})

    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "explain", "--vector", str(vector_path), "--dataset", "builtin:sentiment", "--framing", "ab",
        "--model", "tiny-llama", "--n", "6", "--multipliers", "-1,0,1", "--seed", "3", "--out", str(out),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "train part of the same split (test fraction 0.2, seed 3)" in (out / "report.md").read_text()


def test_heldout_disjointness_cases():
    from interp_steer.runs.explain import heldout_disjointness
    from interp_steer.steering.vector import Provenance

    split = {"split": {"part": "train", "test_fraction": 0.2, "seed": 0}}
    assert heldout_disjointness(Provenance(dataset="persona:x", extra=split), "persona:x", 0.2, 0)[0] is True
    assert heldout_disjointness(Provenance(dataset="persona:y"), "persona:x", 0.2, 0)[0] is True
    other, note = heldout_disjointness(Provenance(dataset="persona:x", extra=split), "persona:x", 0.2, 1)
    assert other is False and "differs" in note
    assert heldout_disjointness(Provenance(dataset="persona:x", n_pairs=9), "persona:x", 0.2, 0)[0] is None
    # the same statements in the other framing: another data set name, but not disjoint
    same_statements, note = heldout_disjointness(Provenance(dataset="persona:x", extra=split), "persona:x@free_text", 0.2, 0)
    assert same_statements is None and "another framing" in note


def test_explain_config_errors():
    with pytest.raises(ConfigError, match="including 0"):
        ExplainConfig(vector="v", dataset="d", multipliers=[1.0, 2.0])
    with pytest.raises(ConfigError, match="--n must be an integer ≥ 2 \\(got 1\\)"):
        ExplainConfig(vector="v", dataset="d", n=1)
    assert ExplainConfig(vector="v", dataset="d", multipliers=[-3.0, 0.0, 1.0]).patch_multiplier == 3.0

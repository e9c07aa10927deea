"""Reproducibility bundles (library and CLI) and the interop CLI commands, on the tiny model with a builtin data set."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.data import load_dataset
from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.interop.bundle import data_rows_sha256, read_bundle, verify_bundle, write_bundle
from interp_steer.methods.caa import extract_caa
from interp_steer.steering import SteeringVector

DATASET, N_PAIRS, LAYERS = "builtin:sentiment", 6, [1, 2]


@pytest.fixture(scope="module")
def model():
    from interp_steer.models import load_model

    return load_model("tiny-llama")  # what `verify` loads from the recorded spec


@pytest.fixture(scope="module")
def pairs():
    return load_dataset(DATASET, limit=N_PAIRS)


@pytest.fixture(scope="module")
def vector(model, pairs):
    return extract_caa(model, pairs, LAYERS, progress=False, dataset=DATASET)


def test_bundle_contents(tmp_path, vector, pairs):
    out = write_bundle(vector, tmp_path / "b")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "data.json", "manifest.json", "provenance.json", "vector.json", "vector.safetensors",
                     "versions.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) == set(names) - {"manifest.json"}
    for name, digest in manifest.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "caa" and config["dataset"] == DATASET and config["n_pairs"] == N_PAIRS
    assert config["hook_names"] == ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
    assert config["read_position"] == vector.provenance.read_position == "completion_mean"
    data = json.loads((out / "data.json").read_text())
    # the row hash, recomputed independently: canonical JSON lines of the hashed fields
    lines = b"".join(json.dumps({f: getattr(p, f) for f in data["hashed_fields"]}, sort_keys=True,
                                ensure_ascii=False).encode() + b"\n" for p in pairs)
    assert data["sha256"] == hashlib.sha256(lines).hexdigest()
    assert data["ids"] == [p.id for p in pairs]
    versions = json.loads((out / "versions.json").read_text())
    assert versions["packages"]["interp-steer"] and versions["packages"]["torch"].startswith(torch.__version__[:3])
    assert versions["model"]["spec"] == "tiny-llama" and versions["model"]["processing"]["source"] == "tiny_random"
    loaded, *_ = read_bundle(out)
    assert loaded == vector


def test_verify_matches_its_own_extraction(tmp_path, vector, model):
    out = write_bundle(vector, tmp_path / "b")
    check = verify_bundle(out, model=model)
    assert check.ok and check.data_sha256_matches
    assert [r["hook"] for r in check.rows] == vector.hook_names
    for row in check.rows:
        assert row["cosine"] > 1 - 1e-6 and row["relative_error"] < 1e-5


def test_verify_reports_a_different_vector(tmp_path, vector, model):
    """A bundle whose vector is not what its recorded data and method give fails, with the error measured."""
    generator = torch.Generator().manual_seed(0)
    noise = {n: t + 0.3 * t.norm() / t.shape[0] ** 0.5 * torch.randn(t.shape, generator=generator)
             for n, t in vector.directions.items()}
    altered = SteeringVector(noise, vector.provenance)
    check = verify_bundle(write_bundle(altered, tmp_path / "b"), model=model)
    assert not check.ok and check.data_sha256_matches
    for row in check.rows:
        expected = float((vector.directions[row["hook"]] - noise[row["hook"]]).double().norm()
                         / noise[row["hook"]].double().norm())
        assert row["relative_error"] == pytest.approx(expected, rel=1e-4)


def test_changed_training_rows_are_detected(tmp_path, vector, pairs, model):
    edited = [replace(pairs[0], positive=pairs[0].positive + " Really."), *pairs[1:]]
    assert data_rows_sha256(edited) != data_rows_sha256(pairs)
    out = write_bundle(vector, tmp_path / "b", pairs=edited)  # recorded rows differ from the data set's
    assert not verify_bundle(out, model=model).data_sha256_matches


def test_tampered_bundle_and_unsupported_method(tmp_path, vector, model):
    out = write_bundle(vector, tmp_path / "b")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "n_pairs": 7}))
    with pytest.raises(SteeringVectorError, match="config.json changed"):
        verify_bundle(out, model=model)
    bipo = SteeringVector(vector.directions, replace(vector.provenance, method="bipo"))
    with pytest.raises(ConfigError, match="'bipo' cannot be re-extracted"):
        verify_bundle(write_bundle(bipo, tmp_path / "c"), model=model)
    with pytest.raises(SteeringVectorError, match="no manifest"):
        verify_bundle(tmp_path)


def test_cli_extract_export_bundle_verify(tmp_path):
    runner = CliRunner()
    vector_file = tmp_path / "v.safetensors"
    result = runner.invoke(app, ["extract", "--dataset", DATASET, "--out", str(vector_file), "--layers", "1,2",
                                 "--model", "tiny-llama", "--n-train", str(N_PAIRS)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export", "--vector", str(vector_file), "--bundle", str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", str(tmp_path / "bundle")])
    assert result.exit_code == 0, result.output
    assert "verified: the re-extracted vector matches" in result.output
    assert "blocks.2.hook_resid_post" in result.output and "training rows sha256: matches" in result.output


def test_cli_formats_round_trip(tmp_path, vector):
    runner = CliRunner()
    source = vector.save(tmp_path / "v.safetensors")
    result = runner.invoke(app, ["export", "--vector", str(source), "--format", "gguf", "--out", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    assert "blocks.1.hook_resid_post → direction.1" in result.output
    result = runner.invoke(app, ["import", "--input", str(tmp_path / "v.gguf"), "--out", str(tmp_path / "back"),
                                 "--n-layers", "3"])
    assert result.exit_code == 0, result.output
    assert SteeringVector.load(tmp_path / "back.safetensors") == vector
    result = runner.invoke(app, ["export", "--vector", str(source), "--format", "steering-vectors",
                                 "--out", str(tmp_path / "sv.pt")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["import", "--input", str(tmp_path / "sv.pt"), "--format", "steering-vectors",
                                 "--out", str(tmp_path / "sv.safetensors")])
    assert result.exit_code == 0, result.output
    back = SteeringVector.load(tmp_path / "sv.safetensors")
    assert all(torch.equal(back[n], vector[n]) for n in vector.hook_names)


@pytest.mark.parametrize("args, message", [
    (["export", "--vector", "V", "--out", "x.gguf", "--bundle", "B"], "exactly one of --out"),
    (["export", "--vector", "V", "--format", "onnx", "--out", "x"], "--format 'onnx'"),
    (["import", "--input", "missing.gguf", "--out", "o.safetensors"], "not found"),
    (["import", "--input", "missing.gguf", "--out", "o.safetensors", "--n-layers", "0"], "--n-layers 0"),
    (["verify", "."], "no manifest.json"),
])
def test_cli_errors_are_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def _tamper(out, how):
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if how == "edit-and-unlist":  # the case: change a file and drop its manifest entry
        (out / "provenance.json").write_text((out / "provenance.json").read_text().replace("caa", "bipo"))
        del manifest["provenance.json"]
    elif how == "extra-file":
        (out / "notes.txt").write_text("added later")
    elif how == "missing-file":
        (out / "data.json").unlink()
    elif how == "changed-file":
        (out / "versions.json").write_text((out / "versions.json").read_text() + " ")
    elif how == "manifest-list":
        manifest = list(manifest.items())
    elif how == "manifest-bad-digest":
        manifest["config.json"] = 12
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("how, fragments", [
    ("edit-and-unlist", ("provenance.json is not listed in manifest.json",)),
    ("extra-file", ("notes.txt is not listed",)),
    ("missing-file", ("data.json is missing",)),
    ("changed-file", ("versions.json changed", "sha256")),
    ("manifest-list", ("manifest.json: malformed manifest", "got list")),
    ("manifest-bad-digest", ("malformed manifest entry 'config.json'",)),
])
def test_every_tamper_fails_verify_with_one_line_naming_the_file(tmp_path, vector, how, fragments):
    out = write_bundle(vector, tmp_path / "b")
    read_bundle(out)  # intact: passes
    _tamper(out, how)
    with pytest.raises(SteeringVectorError) as info:
        read_bundle(out)
    assert all(f in str(info.value) for f in fragments), str(info.value)
    result = CliRunner().invoke(app, ["verify", str(out)])  # refused before any model loads
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("NOT verified: ") and all(f in lines[0] for f in fragments), lines[0]


def test_bundle_of_a_holdout_vector_records_its_train_part_and_verifies(tmp_path, model):
    """``extract --holdout`` trains on the split's train part: the bundle must record those pairs (not the data set's
    first ``n_pairs``), so ``verify`` re-extracts the same vector."""
    from interp_steer.data.splits import DataSplit

    runner = CliRunner()
    vec_path = tmp_path / "held.safetensors"
    result = runner.invoke(app, ["extract", "--model", "tiny-llama", "--dataset", DATASET, "--layers", "1",
                                 "--holdout", "0.2", "--seed", "0", "--out", str(vec_path)])
    assert result.exit_code == 0, result.output
    vector = SteeringVector.load(vec_path)
    train = DataSplit(0.2, 0).train(load_dataset(DATASET))
    first = load_dataset(DATASET, limit=len(train))
    assert sorted(p.id for p in train) != sorted(p.id for p in first)  # the bug this guards against is visible
    out = write_bundle(vector, tmp_path / "bundle")
    _, _, data, _ = read_bundle(out)
    assert data["ids"] == [p.id for p in train] and data["sha256"] == data_rows_sha256(train)
    check = verify_bundle(out, model=model)
    assert all(row["cosine"] > 0.99999 and row["relative_error"] < 1e-5 for row in check.rows), check.rows

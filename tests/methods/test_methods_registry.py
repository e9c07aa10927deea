"""The typed registry of extraction methods: configs (validation, JSON, string coercion), dispatch, and the
``interp-steer extract --method … --set FIELD=VALUE`` options built from the configs."""

from __future__ import annotations

import dataclasses
import json
import re

import jaxtyping
import pytest
import torch
import typecheck_conf
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.data import load_dataset
from interp_steer.errors import ConfigError
from interp_steer.methods import (
    EXTRACTION_METHODS,
    BiPOConfig,
    CAAConfig,
    SAETargetedConfig,
    build_sae_targeted_vector,
    extract,
    extract_bipo,
    extract_caa,
    train_bipo,
)
from interp_steer.methods.registry import coerce_field, config_fields, describe_config
from interp_steer.models import describe_processing, load_model
from interp_steer.steering import SteeringVector

# with the suite's run-time type checker (INTERP_STEER_TYPECHECK=1) on, annotation checks run before __post_init__
TYPECHECK_ON = typecheck_conf.ENABLED

runner = CliRunner()
TINY = ["--model", "tiny-llama", "--dataset", "builtin:sentiment", "--n-train", "4"]


def test_registry_maps_names_to_config_class_and_function():
    assert EXTRACTION_METHODS["caa"][:2] == (CAAConfig, extract_caa)
    assert EXTRACTION_METHODS["bipo"][:2] == (BiPOConfig, extract_bipo)
    assert EXTRACTION_METHODS["sae_targeted"][:2] == (SAETargetedConfig, build_sae_targeted_vector)
    with pytest.raises(TypeError):
        EXTRACTION_METHODS["x"] = EXTRACTION_METHODS["caa"]  # read-only


# --------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("config", [
    CAAConfig(), CAAConfig(read_position="last", batch_size=3),
    BiPOConfig(), BiPOConfig(layer="blocks.2.hook_resid_pre", max_steps=7, lr=1e-3, checkpoint_path="c.pt"),
    SAETargetedConfig(), SAETargetedConfig(hook_name="blocks.3.hook_resid_post", norm=4.0, n_random=0, ridge=0.0),
], ids=lambda c: type(c).__name__)
def test_configs_round_trip_json(config):
    text = config.to_json()
    assert type(config).from_json(text) == config
    assert json.loads(text) == dataclasses.asdict(config)


@pytest.mark.parametrize("cls, changes, match", [
    (CAAConfig, {"batch_size": 0}, "CAAConfig.batch_size must be a positive int"),
    (CAAConfig, {"batch_size": -4}, "CAAConfig.batch_size"),
    (SAETargetedConfig, {"scale": 0.0}, "SAETargetedConfig.scale must be a positive finite number"),
    (SAETargetedConfig, {"scale": float("nan")}, "SAETargetedConfig.scale"),
    (SAETargetedConfig, {"norm": float("inf")}, "SAETargetedConfig.norm"),
    (SAETargetedConfig, {"n_random": -1}, "SAETargetedConfig.n_random must be a non-negative int"),
    (SAETargetedConfig, {"n_random": 0, "n_decoder": 0}, "n_random \\+ n_decoder must be at least 1"),
    (SAETargetedConfig, {"ridge": -0.1}, "SAETargetedConfig.ridge"),
    (SAETargetedConfig, {"bias_coefficient": float("nan")}, "SAETargetedConfig.bias_coefficient"),
    (SAETargetedConfig, {"hook_name": "hook_embed"}, "SAETargetedConfig.hook_name must be a block hook"),
    (SAETargetedConfig, {"seed": -1}, "SAETargetedConfig.seed"),
])
def test_config_values_are_validated_naming_the_field(cls, changes, match):
    with pytest.raises(ConfigError, match=match):
        cls(**changes)


@pytest.mark.parametrize("cls, changes, field", [
    (CAAConfig, {"read_position": "middle"}, "read_position"),
    (CAAConfig, {"batch_size": 2.5}, "batch_size"),
    (CAAConfig, {"batch_size": True}, "batch_size"),
    (SAETargetedConfig, {"n_decoder": 1.5}, "n_decoder"),
])
def test_config_types_are_checked_naming_the_field(cls, changes, field):
    # __post_init__ raises ConfigError; under the test suite's run-time type checker (INTERP_STEER_TYPECHECK=1)
    # the annotation check of the constructor comes first. Either way the field is named.
    expected = (ConfigError, jaxtyping.TypeCheckError) if TYPECHECK_ON else ConfigError
    with pytest.raises(expected, match=field):
        cls(**changes)


@pytest.mark.parametrize("cls, text, match", [
    (CAAConfig, '{"read_position": "middle"}', "CAAConfig.read_position expects answer|completion_mean|last|none, got 'middle'"),
    (CAAConfig, '{"batch_size": 2.5}', "CAAConfig.batch_size expects int, got 2.5"),
    (CAAConfig, '{"batch_size": true}', "CAAConfig.batch_size expects int, got True"),
    (SAETargetedConfig, '{"n_decoder": 1.5}', "SAETargetedConfig.n_decoder expects int, got 1.5"),
    (SAETargetedConfig, '{"hook_name": 3}', "SAETargetedConfig.hook_name expects str|none, got 3"),
    (BiPOConfig, '{"batch_size": 2.5}', "BiPOConfig.batch_size expects int, got 2.5"),
    (BiPOConfig, '{"lr": "fast"}', "BiPOConfig.lr expects float, got 'fast'"),
    (BiPOConfig, '{"layer": 1.0}', "BiPOConfig.layer expects int|str, got 1.0"),
])
def test_config_json_field_types_are_checked_naming_the_field(cls, text, match):
    # a config file can hold any JSON type: the one-line ConfigError comes before the typed constructor
    with pytest.raises(ConfigError, match=re.escape(match)) as info:
        cls.from_json(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls, text, match", [
    (CAAConfig, '{"batch_size": 4, "lr": 1}', r"unknown CAAConfig key 'lr'; known keys: batch_size, read_position"),
    (CAAConfig, "[1]", "expected a JSON object, got a JSON list"),
    (CAAConfig, "{oops", "not valid JSON"),
    (SAETargetedConfig, '{"norms": 1}', "norms"),
])
def test_config_json_errors(cls, text, match):
    with pytest.raises(ConfigError, match=match):
        cls.from_json(text)


@pytest.mark.parametrize("cls, field, text, expected", [
    (BiPOConfig, "max_steps", "30", 30),
    (BiPOConfig, "max_steps", "none", None),
    (BiPOConfig, "max_steps", "NULL", None),
    (BiPOConfig, "lr", "5e-4", 5e-4),
    (BiPOConfig, "lr", "1", 1.0),
    (BiPOConfig, "layer", "3", 3),
    (BiPOConfig, "layer", "blocks.2.hook_resid_pre", "blocks.2.hook_resid_pre"),
    (BiPOConfig, "checkpoint_path", "run.pt", "run.pt"),
    (CAAConfig, "read_position", "completion_mean", "completion_mean"),
    (CAAConfig, "read_position", "none", None),
    (SAETargetedConfig, "norm", " 2.5 ", 2.5),
])
def test_coerce_field_parses_by_annotation(cls, field, text, expected):
    value = coerce_field(cls, field, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("cls, field, text, match", [
    (BiPOConfig, "max_steps", "1.5", r"BiPOConfig.max_steps expects int\|none, got '1.5'"),
    (BiPOConfig, "batch_size", "four", "BiPOConfig.batch_size expects int"),
    (BiPOConfig, "lr", "abc", "BiPOConfig.lr expects float"),
    (BiPOConfig, "lr", "nan", "expects a finite float"),
    (BiPOConfig, "beta", "-inf", "expects a finite float"),
    (CAAConfig, "read_position", "middle", r"expects answer\|completion_mean\|last\|none"),
    (BiPOConfig, "learning_rate", "1", "unknown BiPOConfig field 'learning_rate'"),
])
def test_coerce_field_errors(cls, field, text, match):
    with pytest.raises(ConfigError, match=match):
        coerce_field(cls, field, text)


def test_config_fields_and_description_list_every_field():
    names = [f.name for f in config_fields(BiPOConfig)]
    assert names == [f.name for f in dataclasses.fields(BiPOConfig)]
    text = describe_config(BiPOConfig, exclude=("layer",), aliases={"steps": "max_steps"})
    lines = text.splitlines()
    assert lines[0].split() == ["field", "type", "default", "help"]
    assert len(lines) == 1 + len(names) - 1 and not any(line.split()[0] == "layer" for line in lines)
    row = next(line for line in lines if line.split()[0] == "lr")
    assert row.split()[1:3] == ["float", "0.0005"]
    assert "max_steps (or steps)" in text


# ------------------------------------------------------------------------------------------- dispatch
def test_extract_by_name_equals_the_direct_call_and_records_model_processing(tiny):
    pairs = load_dataset("builtin:sentiment", limit=4)
    via_registry = extract("caa", tiny, pairs, [0, 2], CAAConfig(read_position="last", batch_size=3), progress=False)
    direct = extract_caa(tiny, pairs, [0, 2], read_position="last", batch_size=8, progress=False)
    for name in direct.hook_names:
        torch.testing.assert_close(via_registry[name], direct[name], rtol=1e-5, atol=1e-6)
    assert via_registry.provenance.read_position == "last"
    processing = dict(via_registry.provenance.model_processing)
    assert processing == describe_processing(tiny)
    assert processing["source"] == "tiny_random" and processing["fold_ln"] is False and processing["weight_layout"] == "linear"
    with pytest.raises(ConfigError, match="takes a CAAConfig, got BiPOConfig"):
        extract("caa", tiny, pairs, [0], BiPOConfig())
    with pytest.raises(ConfigError, match="does not learn from contrastive pairs"):
        extract("sae_targeted", tiny, pairs, [0])
    with pytest.raises(ConfigError, match="'nope' unknown"):
        extract("nope", tiny, pairs, [0])


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_extract_bipo_with_set_options_equals_train_bipo(tmp_path):
    out = tmp_path / "bipo.safetensors"
    result = runner.invoke(app, ["extract", *TINY, "--layers", "1", "--method", "bipo", "--set", "steps=2",
                                 "--set", "lr=1e-3", "--set", "beta=0.2", "--set", "batch_size=2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    vector = SteeringVector.load(out)
    config = vector.provenance.extra["config"]
    assert (config["max_steps"], config["lr"], config["beta"], config["batch_size"], config["layer"]) == (2, 1e-3, 0.2, 2, 1)
    assert vector.provenance.extra["steps"] == 2 and vector.provenance.model == "tiny-llama"
    # the same run through the API, independently
    reference = train_bipo(load_model("tiny-llama"), load_dataset("builtin:sentiment", limit=4),
                           BiPOConfig(layer=1, max_steps=2, lr=1e-3, beta=0.2, batch_size=2), progress=False)
    torch.testing.assert_close(vector[1], reference[1], rtol=1e-5, atol=1e-7)
    assert float(vector[1].norm()) > 0


def test_cli_extract_caa_set_options_reach_the_method(tmp_path):
    out = tmp_path / "caa.safetensors"
    result = runner.invoke(app, ["extract", *TINY, "--framing", "free_text", "--layers", "0", "--set", "read_position=last",
                                 "--set", "batch_size=3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    vector = SteeringVector.load(out)
    reference = extract_caa(load_model("tiny-llama"), load_dataset("builtin:sentiment", framing="free_text", limit=4), [0],
                            read_position="last", progress=False)
    assert vector.provenance.read_position == "last"
    torch.testing.assert_close(vector[0], reference[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("first", [["--method", "bipo", "--help-method"], ["--help-method", "--method", "bipo"]])
def test_cli_help_method_lists_fields_and_defaults(first):
    result = runner.invoke(app, ["extract", *first])  # no --dataset / --out needed
    assert result.exit_code == 0, result.output
    assert "BiPOConfig" in result.output and "max_steps (or steps)" in result.output
    rows = {line.split()[0]: line.split()[1:3] for line in result.output.splitlines() if line.startswith("  ")}
    assert rows["lr"] == ["float", "0.0005"] and rows["batch_size"] == ["int", "4"] and rows["beta"] == ["float", "0.1"]
    assert "layer" not in rows
    caa = runner.invoke(app, ["extract", "--help-method"])
    assert caa.exit_code == 0 and "CAAConfig" in caa.output and "read_position" in caa.output


BAD_SET_ROWS = [
    ("unknown-field", ["--method", "bipo", "--set", "stepz=3"], "--set 'stepz=3': --method bipo has no field 'stepz'"),
    ("wrong-type-float", ["--method", "bipo", "--set", "lr=abc"], "--set 'lr=abc': BiPOConfig.lr expects float, got 'abc'"),
    ("wrong-type-int", ["--method", "bipo", "--set", "steps=1.5"], "BiPOConfig.max_steps expects int|none, got '1.5'"),
    ("nan", ["--method", "bipo", "--set", "lr=nan"], "BiPOConfig.lr expects a finite float"),
    ("no-equals", ["--method", "bipo", "--set", "lr"], "--set 'lr': expected FIELD=VALUE"),
    ("empty-name", ["--method", "bipo", "--set", "=3"], "expected FIELD=VALUE"),
    ("repeated", ["--method", "bipo", "--set", "steps=2", "--set", "max_steps=3"], "field 'max_steps' is given more than once"),
    ("cli-field", ["--method", "bipo", "--set", "layer=2"], "layer is set by the command's own option (--layers)"),
    ("out-of-range", ["--method", "bipo", "--set", "lr=-1"], "--set lr=-1: BiPOConfig.lr must be a positive finite number"),
    ("zero-batch", ["--method", "bipo", "--set", "batch_size=0"], "BiPOConfig.batch_size must be a positive int"),
    ("steps-and-epochs", ["--method", "bipo", "--set", "steps=2", "--set", "epochs=1"], "give max_steps (2) or epochs (1), not both"),
    ("bipo-two-layers", ["--method", "bipo", "--layers", "0,1"], "--method bipo trains one vector at one layer"),
    ("caa-literal", ["--set", "read_position=middle"], "CAAConfig.read_position expects answer|completion_mean|last|none"),
    ("caa-bipo-field", ["--set", "steps=3"], "--method caa has no field 'steps'"),
    ("sae-method", ["--method", "sae_targeted"], "--method sae_targeted: SAE-targeted steering"),
    ("unknown-method", ["--method", "nope"], "--method 'nope' unknown; choose one of ['bipo', 'caa', 'mean_centring', "
     "'pca_centred', 'pca_diff', 'probe', 'reps', 'sae_targeted']"),
]


@pytest.mark.parametrize("argv, fragment", [row[1:] for row in BAD_SET_ROWS], ids=[row[0] for row in BAD_SET_ROWS])
def test_cli_extract_bad_method_options_exit_2_with_one_line(tmp_path, monkeypatch, argv, fragment):
    import interp_steer.models as models

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(models, "load_model", no_model)
    out = tmp_path / "v.safetensors"
    result = runner.invoke(app, ["extract", *TINY, "--layers", "1", *argv, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert not out.exists()

"""Library defaults = CLI defaults (issue 27): for every command with a config, each option that sets a config field
defaults to that field's default (spelled as the command parses it), and the config the command builds with no
optional option equals the config built from the dataclass defaults.

The second half runs each command through typer with the job function replaced by a recorder, so it checks the
whole path: option defaults → parsing (comma lists, ``0`` for "all") → the config.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import typer.main
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.config.sae_train import SAETrainConfig
from interp_steer.runs.analysis_configs import EvaluateConfig, ExplainConfig, WhyConfig
from interp_steer.runs.job_configs import CompareConfig, DemoConfig, ScanConfig, TuneConfig

# command → (config class, CLI parameter → field where the names differ, fields whose None the CLI spells 0)
COMMANDS = {
    "demo": (DemoConfig, {}, set()),
    "scan": (ScanConfig, {"dataset": "datasets"}, {"n_train", "n_test", "layers_per_unit"}),
    "evaluate": (EvaluateConfig, {}, {"n"}),
    "tune": (TuneConfig, {}, {"n_train", "n_test"}),
    "compare": (CompareConfig, {}, set()),
    "explain": (ExplainConfig, {}, set()),
    "why": (WhyConfig, {}, set()),
    "train-sae": (SAETrainConfig, {"batch_tokens": "train_batch_size_tokens", "model": "model_spec"}, set()),
}
BUILT_BY_A_JOB = sorted(c for c in COMMANDS if c != "train-sae")  # train-sae builds its config inline (test below)
# options that set a field in another spelling: the command's text default and the field value it stands for
SPELLED = {("scan", "layers"): ("all", None)}  # ScanConfig.layers is required; the command resolves "all"


def _params(command: str) -> dict:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}


def _cli_spelling(value):
    """How a command line writes a field default (written out here, independent of ``config_option``)."""
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return ",".join(("%d" % v) if float(v).is_integer() else repr(v) for v in value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    return value


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_config_option_defaults_to_the_field_default(command):
    config_class, renamed, none_as_zero = COMMANDS[command]
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    checked = []
    for name, param in _params(command).items():
        field = fields.get(renamed.get(name, name))
        if field is None:
            continue  # an option of the command only (--out, --threads, --executor …)
        checked.append(name)
        if (command, name) in SPELLED:
            assert param.default == SPELLED[command, name][0]
            continue
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            assert param.required, (command, name)
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        expected = 0 if default is None and field.name in none_as_zero else _cli_spelling(default)
        assert param.default == expected, (command, name, param.default, expected)
        assert param.help and param.help == field.metadata.get("help"), (command, name)
    assert len(checked) >= 8, checked  # the command's options really are its config's fields


def test_cli_spelling_helper_is_exact():
    assert _cli_spelling([-1.5, -1.0, 0.0, 0.25]) == "-1.5,-1,0,0.25"
    assert _cli_spelling(["a", "b"]) == "a,b" and _cli_spelling([]) == "" and _cli_spelling(None) is None


def test_evaluate_library_defaults_are_the_commands():
    """The issue's example: the library used neutral_n 0, n_generations 0, baseline False; the CLI 64 / 3 / True."""
    config = EvaluateConfig(vector="v.safetensors", dataset="builtin:sentiment")
    params = _params("evaluate")
    assert (config.neutral_n, config.n_generations, config.baseline) == (64, 3, True)
    assert (params["neutral_n"].default, params["n_generations"].default, params["baseline"].default) == (64, 3, True)
    assert config.multipliers == [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]


class _Captured(Exception):
    pass


@pytest.fixture(scope="module")
def vector_path(tmp_path_factory, tiny):
    from interp_steer.data import load_dataset
    from interp_steer.methods import extract_caa

    vector = extract_caa(tiny, load_dataset("builtin:sentiment")[:4], [1], progress=False)
    return vector.save(tmp_path_factory.mktemp("defaults") / "v.safetensors")


def _capture(monkeypatch, module: str, name: str) -> list:
    import importlib

    seen: list = []

    def record(config, *args, **kwargs):
        seen.append(config)
        raise _Captured

    monkeypatch.setattr(importlib.import_module(module), name, record)
    return seen


def _run(argv: list[str], seen: list):
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, _Captured), (result.output, repr(result.exception))
    assert len(seen) == 1
    return seen[0]


T = ["--model", "tiny-llama"]


def _cases(vector_path, tmp):
    from interp_steer.models import TINY_CONFIGS
    from interp_steer.runs.files import file_sha1

    n_layers = TINY_CONFIGS["tiny-llama"]["n_layers"]
    vec = str(vector_path)
    return {
        "demo": (["demo", "--out", f"{tmp}/d", *T], "interp_steer.runs.demo", "run_demo",
                 DemoConfig(model="tiny-llama")),
        "scan": (["scan", "--dataset", "builtin:sentiment", "--out", f"{tmp}/s", *T], "interp_steer.runs.scan",
                 "run_scan_job", ScanConfig(datasets=["builtin:sentiment"], layers=list(range(n_layers)),
                                            model="tiny-llama")),
        "evaluate": (["evaluate", "--vector", vec, "--dataset", "builtin:sentiment", "--out", f"{tmp}/e", *T],
                     "interp_steer.runs.evaluate", "run_evaluate",
                     EvaluateConfig(vector=vec, dataset="builtin:sentiment", model="tiny-llama",
                                    vector_sha1=file_sha1(vector_path))),
        "tune": (["tune", "--dataset", "builtin:sentiment", "--layers", "1", "--out", f"{tmp}/t", *T], "interp_steer.runs.tune",
                 "run_tune", TuneConfig(dataset="builtin:sentiment", layers=[1], model="tiny-llama")),
        "compare": (["compare", "--dataset", "builtin:sentiment", "--out", f"{tmp}/c", *T], "interp_steer.runs.compare",
                    "run_compare", CompareConfig(dataset="builtin:sentiment", model="tiny-llama")),
        "explain": (["explain", "--vector", vec, "--dataset", "builtin:sentiment", "--out", f"{tmp}/x", *T],
                    "interp_steer.runs.explain", "run_explain",
                    ExplainConfig(vector=vec, dataset="builtin:sentiment", model="tiny-llama")),
        "why": (["why", "--out", f"{tmp}/w", *T], "interp_steer.runs.why", "run_why", WhyConfig(model="tiny-llama")),
    }


@pytest.mark.parametrize("command", BUILT_BY_A_JOB)
def test_the_command_with_no_options_builds_the_default_config(command, vector_path, tmp_path, monkeypatch):
    argv, module, function, expected = _cases(vector_path, tmp_path)[command]
    built = _run(argv, _capture(monkeypatch, module, function))
    assert type(built) is type(expected)
    assert built == expected, [(f.name, getattr(built, f.name), getattr(expected, f.name))
                               for f in dataclasses.fields(built) if getattr(built, f.name) != getattr(expected, f.name)]


def test_an_option_given_reaches_the_config(vector_path, tmp_path, monkeypatch):
    """Not only defaults: a value given on the command line is the config's (so the recorder sees real configs)."""
    seen = _capture(monkeypatch, "interp_steer.runs.evaluate", "run_evaluate")
    built = _run(["evaluate", "--vector", str(vector_path), "--dataset", "builtin:sentiment", "--out", f"{tmp_path}/e",
                  "--multipliers", "0,0.5", "--n", "7", "--no-baseline", "--capability", "mmlu", *T], seen)
    assert built.multipliers == [0.0, 0.5] and built.n == 7 and built.baseline is False and built.capability == ["mmlu"]
    assert math.isclose(built.kl_budget, 0.1)


def test_tune_run_options_default_like_run_tune():
    """``tune``'s options that are arguments of :func:`run_tune` rather than config fields keep its defaults."""
    import inspect

    from interp_steer.runs.tune import run_tune

    signature, params = inspect.signature(run_tune).parameters, _params("tune")
    for option, argument in (("n_generations", "n_generations"), ("max_new_tokens", "max_new_tokens"),
                             ("capability", "capability_n")):
        assert params[option].default == signature[argument].default, option


def test_train_sae_layer_default_is_the_config_hook():
    """``train-sae --layer`` (the one option spelled differently) defaults to the config's hook."""
    from interp_steer.steering import as_hook_name

    assert as_hook_name(_params("train-sae")["layer"].default) == SAETrainConfig().hook_name

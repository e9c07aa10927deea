"""CLI options built from the job config dataclasses: every converted command's option defaults equal the config
field's default, the helper reads default / default_factory / metadata help, and the default model spec is
written once."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer.main

from interp_steer.cli import app
from interp_steer.cli.config_options import config_option, model_option, option_default
from interp_steer.config import add_config_argument, option_field
from interp_steer.models import DEFAULT_MODEL, EMBEDDED_MODEL_NAME
from interp_steer.runs.job_configs import CompareConfig, DemoConfig, ScanConfig, TuneConfig
from interp_steer.sae.training import SAETrainConfig

ROOT = Path(__file__).resolve().parents[2]

# command → (config class, CLI parameter → config field where the names differ, fields whose None is CLI 0)
CONVERTED = {
    "scan": (ScanConfig, {"dataset": "datasets"}, {"n_train", "n_test", "layers_per_unit"}),
    "compare": (CompareConfig, {}, set()),
    "tune": (TuneConfig, {}, {"n_train", "n_test"}),
    "demo": (DemoConfig, {}, set()),
}
SHARED = {"model": DEFAULT_MODEL, "device": "cpu", "data_dir": None}  # commands without a job config
SHARED_COMMANDS = ["extract", "generate", "train-sae", "export", "verify", "evaluate", "study", "explain", "why"]


def _params(command: str) -> dict:
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params}


def _expected(config_class, name: str, none_as_zero: set[str]):
    value = dataclasses.fields(config_class)
    f = next(x for x in value if x.name == name)
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return None  # required: checked separately
    if default is None and name in none_as_zero:
        return 0
    if isinstance(default, list) and default and all(isinstance(v, float) for v in default):
        return ",".join(f"{v:g}" for v in default)
    return default


@pytest.mark.parametrize("command", sorted(CONVERTED))
def test_converted_command_defaults_are_the_config_defaults(command):
    config_class, renamed, none_as_zero = CONVERTED[command]
    names = {f.name for f in dataclasses.fields(config_class)}
    params = _params(command)
    checked = 0
    for pname, param in params.items():
        fname = renamed.get(pname, pname)
        if fname not in names:
            continue
        checked += 1
        f = next(x for x in dataclasses.fields(config_class) if x.name == fname)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            continue  # required field: the CLI also makes it required (or a CLI spelling such as --layers 'all')
        expected = _expected(config_class, fname, none_as_zero)
        assert param.default == expected, (command, pname, param.default, expected)
        if "help" in f.metadata:
            assert param.help == f.metadata["help"], (command, pname)
    assert checked >= 10  # the commands really map most of their options to config fields


def test_required_config_fields_are_required_options():
    assert _params("compare")["dataset"].required
    assert _params("tune")["dataset"].required and _params("tune")["layers"].required


@pytest.mark.parametrize("command", SHARED_COMMANDS)
def test_shared_options_default_to_the_one_model_spec(command):
    params = _params(command)
    for name, expected in SHARED.items():
        if name in params and not (command in ("export", "verify") and name == "model"):
            assert params[name].default == expected, (command, name)


def test_spot_values_against_the_dataclasses():
    """Independent of the helper: a few defaults written out by hand."""
    scan, tune, compare = _params("scan"), _params("tune"), _params("compare")
    assert scan["multipliers"].default == "-1.5,-1,-0.5,0,0.5,1,1.5"
    assert tune["multipliers"].default == "0,0.25,0.5,1,2,4"
    assert compare["multipliers"].default == "-2,0,2"
    assert scan["model"].default == tune["model"].default == compare["model"].default == EMBEDDED_MODEL_NAME
    assert SAETrainConfig().model_spec == DEFAULT_MODEL
    assert scan["table_format"].opts == ["--format"] and tune["table_format"].opts == ["--format"]
    assert ScanConfig(datasets=["x"], layers=[1]).model == DEFAULT_MODEL


@dataclass
class _Toy:
    name: str = option_field(help="the name")
    count: int = option_field(3, help="how many")
    values: list[float] = option_field(default_factory=lambda: [-1.0, 0.5, 2.0], help="some numbers")
    limit: int | None = None
    tags: list[str] = field(default_factory=lambda: ["a"])


def test_config_option_on_a_toy_dataclass():
    assert config_option(_Toy, "count").default == 3 and config_option(_Toy, "count").help == "how many"
    assert config_option(_Toy, "values").default == "-1,0.5,2"
    assert config_option(_Toy, "values").help == "some numbers"
    assert config_option(_Toy, "name").default is ...  # required field → required option
    assert config_option(_Toy, "limit").default is None and config_option(_Toy, "limit").help is None
    assert option_default(_Toy, "limit", none_as=0) == 0
    assert config_option(_Toy, "tags").default == "a"  # a list of names: the comma string the command parses
    assert config_option(_Toy, "count", "--n", help="other").help == "other"
    assert config_option(_Toy, "count", "--n").param_decls == ("--n",)
    assert model_option().default == DEFAULT_MODEL
    with pytest.raises(ValueError, match="_Toy has no field 'nope'"):
        config_option(_Toy, "nope")


def test_argparse_adapter_on_a_toy_dataclass():
    parser = argparse.ArgumentParser()
    add_config_argument(parser, _Toy, "count")
    add_config_argument(parser, _Toy, "values")
    add_config_argument(parser, _Toy, "limit", type=int, default=7)
    args = parser.parse_args([])
    assert (args.count, args.values, args.limit) == (3, [-1.0, 0.5, 2.0], 7)
    args = parser.parse_args(["--count", "5", "--values", "1,2"])
    assert (args.count, args.values) == (5, [1.0, 2.0])
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["count"] == "how many" and helps["values"] == "some numbers"


def _sources() -> list[Path]:
    return [*(ROOT / "interp_steer" / "cli").glob("*.py"), *(ROOT / "interp_steer" / "runs").glob("*.py"),
            *(ROOT / "analyses").glob("*.py")]


# files still to be converted to DEFAULT_MODEL by other work in progress (demo, evaluate, explain, study commands);
# remove each from here once converted
PENDING: set[str] = set()  # files still writing the model spec themselves (none left)


def test_default_model_spec_is_written_once():
    literal = re.compile(r"""["']smollm2-135m["']""")  # the model spec itself, not e.g. the SAE "smollm2-135m-l12"
    holders = {p.relative_to(ROOT).as_posix() for p in _sources() if literal.search(p.read_text())}
    assert holders <= PENDING, sorted(holders - PENDING)
    assert literal.search((ROOT / "interp_steer" / "models" / "embedded.py").read_text())

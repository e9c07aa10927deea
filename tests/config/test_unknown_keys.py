"""One unknown-key policy for every config (issue 27): a key a config does not know is refused with a one-line
ConfigError naming the key (and the file when read from one); ``RETIRED_KEYS`` are the only keys dropped on read."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import ClassVar

import pytest

from interp_steer.config import Config, JobConfig
from interp_steer.errors import ConfigError, DataFormatError

# every module that defines a config class (the test below fails when a new config appears elsewhere unlisted)
MODULES = [
    "interp_steer.methods.registry", "interp_steer.methods.bipo_config", "interp_steer.methods.direction_configs",
    "interp_steer.sae.training", "interp_steer.runs.job_configs", "interp_steer.runs.analysis_configs",
    "interp_steer.runs.study_config", "interp_steer.runs.steerability", "interp_steer.runs.id_ood",
    "interp_steer.runs.ab_task", "interp_steer.runs.method_study", "interp_steer.runs.bipo_vs_caa",
]
EXPECTED = {
    "CAAConfig", "SAETargetedConfig", "BiPOConfig", "PCAConfig", "ProbeConfig", "MeanCentringConfig", "RePSConfig",
    "SAETrainConfig", "ScanConfig", "CompareConfig", "TuneConfig", "DemoConfig", "EvaluateConfig", "ExplainConfig",
    "WhyConfig", "StudyConfig", "SteerabilityConfig", "IdOodConfig", "AbTaskConfig", "MethodStudyConfig",
    "BipoVsCaaConfig",
}


def _all_configs() -> list[type]:
    import importlib

    for module in MODULES:
        importlib.import_module(module)
    found, todo = [], list(Config.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if dataclasses.is_dataclass(cls) and cls.__module__.startswith("interp_steer."):
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


CONFIGS = _all_configs()


def test_every_config_derives_from_the_one_base():
    assert {c.__name__ for c in CONFIGS} >= EXPECTED


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_unknown_key_is_refused_naming_it(cls, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown \w+ key 'no_such_key'; known keys: ") as info:
        cls.from_dict({"no_such_key": 1})
    message = str(info.value)
    assert "\n" not in message and cls.__name__ in message
    known = message.split("known keys: ")[1].split(", ")
    assert known == sorted(f.name for f in dataclasses.fields(cls))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"no_such_key": 1}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: unknown {cls.__name__} key 'no_such_key'"):
        cls.read(path)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_unknown_key_beside_valid_keys_is_refused(cls):
    instance = _default_instance(cls)
    data = {**instance.to_dict(), "extra_key": 0}
    with pytest.raises(ConfigError, match="unknown .* key 'extra_key'"):
        cls.from_dict(data)
    assert cls.from_dict(instance.to_dict()) == instance  # the round trip itself is fine


AB, FREE = "persona:narcissism", "persona:narcissism@free_text"
REQUIRED = {  # the smallest valid values of each config's required fields
    "AbTaskConfig": {"datasets": [AB]},
    "BipoVsCaaConfig": {"datasets": [AB], "layer": 3},
    "CompareConfig": {"dataset": "builtin:sentiment"},
    "EvaluateConfig": {"vector": "v.safetensors", "dataset": "builtin:sentiment"},
    "ExplainConfig": {"vector": "v.safetensors", "dataset": "builtin:sentiment"},
    "IdOodConfig": {"datasets": [AB], "layer": 3},
    "MethodStudyConfig": {"datasets": [FREE], "layer": 3},
    "ScanConfig": {"datasets": [AB], "layers": [3]},
    "SteerabilityConfig": {"datasets": [AB], "layer": 3},
    "TuneConfig": {"dataset": "builtin:sentiment", "layers": [3]},
}


def _default_instance(cls):
    if cls.__name__ == "StudyConfig":
        from interp_steer.runs.study_config import preset_config

        return preset_config("tiny")
    return cls(**REQUIRED.get(cls.__name__, {}))


@dataclass
class _Toy(JobConfig):
    RETIRED_KEYS: ClassVar[frozenset[str]] = frozenset({"old_engine"})
    LEGACY_DEFAULTS: ClassVar[dict] = {"scale": "raw"}
    name: str = "x"
    count: int = 1
    scale: str = "resid_norm"


def test_retired_keys_are_dropped_and_legacy_defaults_fill_missing_keys(tmp_path):
    toy = _Toy.from_dict({"name": "a", "old_engine": "slow"})
    assert toy == _Toy(name="a", count=1, scale="raw")  # retired key dropped; scale from LEGACY_DEFAULTS, not the field
    assert _Toy.from_dict({"scale": "resid_norm"}).scale == "resid_norm"


def test_read_names_the_file_for_bad_values_missing_keys_and_bad_json(tmp_path):
    from interp_steer.runs.job_configs import ScanConfig

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"datasets": ["builtin:sentiment"], "layers": [1], "batch_size": 2.5}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: ScanConfig.batch_size expects int, got 2.5$"):
        ScanConfig.read(path)
    path.write_text(json.dumps({"datasets": ["builtin:sentiment"], "layers": [1], "batch_size": 0}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: --batch-size must be an integer ≥ 1 \(got 0\)$"):
        ScanConfig.read(path)
    path.write_text(json.dumps({"datasets": ["builtin:sentiment"]}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: ScanConfig lacks the required key 'layers'$"):
        ScanConfig.read(path)
    path.write_text("{not json")
    with pytest.raises(DataFormatError, match=re.escape(str(path))):
        ScanConfig.read(path)

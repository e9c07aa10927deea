"""Every committed ``config.json`` under ``analyses/results`` still loads under the one unknown-key policy and passes
the resume guard unchanged: a resumed study (tan2024_full, tan2024_gemma, …) must not be refused by a key or check
that this version added."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp_steer.runs.ab_task import AbTaskConfig
from interp_steer.runs.analysis_configs import EvaluateConfig, ExplainConfig, WhyConfig
from interp_steer.runs.id_ood import IdOodConfig
from interp_steer.runs.job_configs import CompareConfig, ScanConfig, TuneConfig
from interp_steer.runs.method_study import MethodStudyConfig
from interp_steer.runs.steerability import SteerabilityConfig
from interp_steer.runs.study_config import StudyConfig

RESULTS = Path(__file__).resolve().parents[2] / "analyses" / "results"
# a results folder (its own name, else its parent's) → the config class of the job that wrote it
BY_FOLDER = {
    "scan": ScanConfig, "scan_cli": ScanConfig, "steerability": SteerabilityConfig, "id_ood": IdOodConfig,
    "ab_task": AbTaskConfig, "tune": TuneConfig, "sae_vs_caa": CompareConfig, "evaluate_capability": EvaluateConfig,
    "explain": ExplainConfig, "anti_steerable": WhyConfig, "tan2024_full": StudyConfig, "tan2024_gemma": StudyConfig,
    "methods_smollm2_pilot": MethodStudyConfig, "methods_smollm2": MethodStudyConfig, "methods_gemma3": MethodStudyConfig,
    "compare": CompareConfig, "why": WhyConfig, "evaluate": EvaluateConfig,
}
FILES = sorted(p for p in RESULTS.glob("**/config.json") if p.parent.name != "bundle")  # a bundle's is not a job's


def _config_class(path: Path):
    folder = path.parent
    cls = BY_FOLDER.get(folder.name) or BY_FOLDER.get(folder.parent.name)
    assert cls is not None, f"{path}: no config class mapped for this results folder; add it to BY_FOLDER"
    return cls


def test_the_committed_configs_are_found():
    assert len(FILES) >= 15
    assert {p.parent.relative_to(RESULTS).as_posix() for p in FILES} >= {
        "tan2024_full", "tan2024_full/scan", "tan2024_full/steerability", "tan2024_full/id_ood", "tan2024_full/ab_task",
        "tan2024_gemma", "tan2024_gemma/scan", "tan2024_gemma/steerability", "evaluate_capability", "tune/sentiment"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.relative_to(RESULTS).as_posix())
def test_committed_config_loads_and_resumes_unchanged(path):
    cls = _config_class(path)
    data = json.loads(path.read_text())
    assert not set(data) & cls.RETIRED_KEYS  # none of them needs the retired-key allowance today
    config = cls.read(path)  # no unknown key, every value valid under today's checks
    written = json.loads(config.to_json())
    assert {k: written[k] for k in data} == data  # what a resumed run writes back agrees with the file, key by key
    config.check_resumable(cls.read(path), path.parent)  # the guard of a rerun with the same settings: no refusal
    assert config.differing_fields(cls.from_dict(written)) == []

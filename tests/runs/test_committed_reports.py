"""The committed study reports regenerate from their unit files: ``study tan2024 --report-only`` on a copy of
``analyses/results/tan2024_full`` (SmolLM2) and ``tan2024_gemma`` (Gemma 3 270M) writes every table and the report
text byte for byte as committed; ``study compare`` of the two writes the committed cross-model tables and text."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from interp_steer.runs.study_rebuild import rebuild_study_report

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "analyses" / "results"
CROSS = RESULTS / "cross_model"


@pytest.mark.slow
@pytest.mark.embedded
@pytest.mark.parametrize("name", ["tan2024_full", "tan2024_gemma"])
def test_the_committed_study_report_regenerates_from_its_units(tmp_path, data_root, name):
    study = RESULTS / name
    copy = tmp_path / study.name
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("figures", "*.png"))
    for table in (copy / "tables").glob("*.csv"):
        table.unlink()
    (copy / "report.md").unlink()
    rebuild_study_report(copy, data_dir=data_root)
    committed = sorted(p.name for p in (study / "tables").glob("*.csv"))
    assert sorted(p.name for p in (copy / "tables").glob("*.csv")) == committed
    for table_name in committed:
        assert (copy / "tables" / table_name).read_bytes() == (study / "tables" / table_name).read_bytes(), table_name
    assert (copy / "report.md").read_text(encoding="utf-8") == (study / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_committed_cross_model_report_regenerates(tmp_path, data_root, monkeypatch):
    from interp_steer.runs.study_compare_report import run_compare

    if not (CROSS / "report.md").exists():
        pytest.fail(f"{CROSS}/report.md is not committed")
    monkeypatch.chdir(REPO)  # the report names the studies by the paths it was given, relative to the repository
    out = tmp_path / "cross_model"
    run_compare([os.path.join("analyses", "results", "tan2024_full"), os.path.join("analyses", "results", "tan2024_gemma")],
                out, data_dir=data_root)
    committed = sorted(p.name for p in (CROSS / "tables").glob("*.csv"))
    assert sorted(p.name for p in (out / "tables").glob("*.csv")) == committed
    for table_name in committed:
        assert (out / "tables" / table_name).read_bytes() == (CROSS / "tables" / table_name).read_bytes(), table_name
    assert (out / "report.md").read_text(encoding="utf-8") == (CROSS / "report.md").read_text(encoding="utf-8")

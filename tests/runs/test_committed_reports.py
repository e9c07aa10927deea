"""The committed study report regenerates from its unit files: ``study tan2024 --report-only`` on a copy of
``analyses/results/tan2024_full`` writes every table and the report text byte for byte as committed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interp_steer.runs.study_rebuild import rebuild_study_report

STUDY = Path(__file__).resolve().parents[2] / "analyses" / "results" / "tan2024_full"


@pytest.mark.slow
@pytest.mark.embedded
def test_the_committed_smollm2_study_report_regenerates_from_its_units(tmp_path, data_root):
    copy = tmp_path / STUDY.name
    shutil.copytree(STUDY, copy, ignore=shutil.ignore_patterns("figures", "*.png"))
    for table in (copy / "tables").glob("*.csv"):
        table.unlink()
    (copy / "report.md").unlink()
    rebuild_study_report(copy, data_dir=data_root)
    committed = sorted(p.name for p in (STUDY / "tables").glob("*.csv"))
    assert sorted(p.name for p in (copy / "tables").glob("*.csv")) == committed
    for name in committed:
        assert (copy / "tables" / name).read_bytes() == (STUDY / "tables" / name).read_bytes(), name
    assert (copy / "report.md").read_text(encoding="utf-8") == (STUDY / "report.md").read_text(encoding="utf-8")

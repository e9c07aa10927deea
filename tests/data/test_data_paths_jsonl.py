"""data_root resolution and JSON-lines reading (errors name file and line; skip mode counts)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from interp_steer.data import data_root, read_jsonl, read_records
from interp_steer.data.jsonl import require_str_fields
from interp_steer.data.paths import DATA_ENV_VAR, repo_root
from interp_steer.errors import DataFormatError

REPO = Path(__file__).resolve().parents[2]


def test_data_root_precedence(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    env_dir.mkdir(), arg_dir.mkdir()
    monkeypatch.setenv(DATA_ENV_VAR, str(env_dir))
    assert data_root(arg_dir) == arg_dir
    assert data_root(str(arg_dir)) == arg_dir
    assert data_root() == env_dir
    monkeypatch.delenv(DATA_ENV_VAR)
    assert repo_root() == REPO
    default = REPO.parent / "shared" / "data"
    if default.is_dir():
        assert data_root() == default
    else:
        with pytest.raises(DataFormatError, match="shared/data"):
            data_root()


def test_data_root_missing_names_path_and_env(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    monkeypatch.setenv(DATA_ENV_VAR, str(missing))
    with pytest.raises(DataFormatError) as info:
        data_root()
    assert str(missing) in str(info.value) and DATA_ENV_VAR in str(info.value)
    with pytest.raises(DataFormatError, match="data_dir argument"):
        data_root(missing)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_jsonl_rows_and_lines(tmp_path):
    path = _write(tmp_path / "ok.jsonl", [json.dumps({"a": 1}), "", json.dumps({"a": 2, "b": "x"})])
    records = read_records(path)
    assert records.rows == [{"a": 1}, {"a": 2, "b": "x"}]
    assert records.lines == [1, 3]  # the blank line 2 is ignored but still counted
    assert records.skipped == 0
    assert read_jsonl(path) == records.rows


def test_malformed_line_error_names_file_and_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [json.dumps({"a": 1}), json.dumps({"a": 2}), '{"a": 3,', json.dumps({"a": 4})])
    with pytest.raises(DataFormatError, match=rf"{path.name}:3: malformed JSON"):
        read_jsonl(path)


def test_non_object_line_is_malformed(tmp_path):
    path = _write(tmp_path / "list.jsonl", [json.dumps({"a": 1}), json.dumps([1, 2])])
    with pytest.raises(DataFormatError, match=r"list.jsonl:2: .*expected a JSON object"):
        read_jsonl(path)


def test_skip_mode_counts_and_warns(tmp_path):
    lines = [json.dumps({"i": i}) for i in range(6)]
    lines[1], lines[4] = "not json", '{"broken": '
    path = _write(tmp_path / "skip.jsonl", lines)
    with pytest.warns(UserWarning, match="skipped 2 malformed"):
        records = read_records(path, on_error="skip")
    assert records.skipped == 2
    assert [row["i"] for row in records.rows] == [0, 2, 3, 5]
    assert records.lines == [1, 3, 4, 6]


def test_no_warning_when_nothing_skipped(tmp_path):
    path = _write(tmp_path / "clean.jsonl", [json.dumps({"i": 0})])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_records(path, on_error="skip").skipped == 0


def test_json_list_file(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"q": "x"}, {"q": "y"}], indent=1))
    records = read_records(path)
    assert records.rows == [{"q": "x"}, {"q": "y"}] and records.lines == [1, 2]
    path.write_text('[{"q": "x"},\n {"q": ]')
    with pytest.raises(DataFormatError, match=r"list.json:2: malformed JSON"):
        read_records(path)
    path.write_text(json.dumps([{"q": "x"}, 3]))
    with pytest.raises(DataFormatError, match="item 2"):
        read_records(path)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert read_records(path, on_error="skip").skipped == 1


def test_missing_file_and_bad_mode(tmp_path):
    with pytest.raises(DataFormatError, match="file not found"):
        read_jsonl(tmp_path / "absent.jsonl")
    with pytest.raises(DataFormatError, match="on_error"):
        read_jsonl(tmp_path / "absent.jsonl", on_error="ignore")


def test_require_str_fields():
    require_str_fields({"a": "x"}, ["a"], "f.jsonl", 7)
    with pytest.raises(DataFormatError, match=r"f.jsonl:7: field 'b' is missing"):
        require_str_fields({"a": "x"}, ["a", "b"], "f.jsonl", 7)
    with pytest.raises(DataFormatError, match=r"field 'a' is a int"):
        require_str_fields({"a": 1}, ["a"], "f.jsonl", 7)

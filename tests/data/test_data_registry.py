"""load_dataset / list_datasets: specs, framings, ids, limits and unknown-name errors."""

from __future__ import annotations

import warnings

import pytest

from interp_steer.data import encode_pair, list_datasets, load_dataset
from interp_steer.errors import ConfigError, DataFormatError


@pytest.fixture(autouse=True)
def _quiet_skip_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_list_datasets_matches_files(data_root):
    names = list_datasets(data_root)
    persona = sorted(p.stem for p in (data_root / "anthropic-evals/persona").glob("*.jsonl"))
    assert [n.split(":", 1)[1] for n in names if n.startswith("persona:")] == persona
    assert len(persona) == 135
    assert {"builtin:sentiment", "builtin:formality", "xrisk:corrigible-neutral-HHH",
            "xrisk-human:corrigible-neutral-HHH", "caa:sycophancy", "caa-test:sycophancy"} <= set(names)
    assert sum(n.startswith("xrisk:") for n in names) == 17 and sum(n.startswith("caa:") for n in names) == 7


def test_list_without_data_root(tmp_path):
    assert list_datasets(tmp_path / "missing") == ["builtin:formality", "builtin:sentiment"]


@pytest.mark.parametrize("spec, kind, n", [
    ("builtin:sentiment", "free_text", 174), ("builtin:sentiment@ab", "ab", 174),
    ("persona:narcissism", "ab", 1000), ("persona:narcissism@free_text", "free_text", 500),
    ("xrisk-human:corrigible-neutral-HHH", "ab", 340), ("caa:sycophancy", "ab", 1000), ("caa-test:refusal", "ab", 50),
])
def test_specs_load_with_dataset_and_stable_ids(data_root, spec, kind, n):
    pairs = load_dataset(spec, data_root)
    assert len(pairs) == n and all(p.kind == kind for p in pairs)
    assert all(p.dataset == spec for p in pairs)
    ids = [p.id for p in pairs]
    assert len(set(ids)) == len(ids) and all(i.startswith(spec + "#") for i in ids)
    again = load_dataset(pairs[0].dataset, data_root)
    assert [p.id for p in again] == ids and again == pairs


def test_framing_argument_and_limit(data_root):
    by_arg = load_dataset("persona:narcissism", data_root, framing="free_text", limit=7)
    assert len(by_arg) == 7 and by_arg == load_dataset("persona:narcissism@free_text", data_root)[:7]
    assert by_arg[0].dataset == "persona:narcissism@free_text"
    ab = load_dataset("builtin:formality", framing="ab", limit=3)
    assert [p.kind for p in ab] == ["ab"] * 3 and ab[0].dataset == "builtin:formality@ab"


def test_bad_specs(data_root):
    with pytest.raises(DataFormatError, match=r"close matches: \['persona:narcissism'"):
        load_dataset("persona:narcisism", data_root)
    with pytest.raises(DataFormatError, match="caa:sycophancy"):
        load_dataset("caa:sycophantic", data_root)
    with pytest.raises(DataFormatError, match=r"did you mean \['persona'\]"):
        load_dataset("personna:narcissism", data_root)
    with pytest.raises(DataFormatError, match="<source>:<name>"):
        load_dataset("narcissism", data_root)
    with pytest.raises(DataFormatError, match="builtin:sentiment"):
        load_dataset("builtin:sentimnet")
    with pytest.raises(ConfigError, match="framing 'free_text' is not available for xrisk"):
        load_dataset("xrisk:corrigible-neutral-HHH", data_root, framing="free_text")
    with pytest.raises(ConfigError, match="says framing"):
        load_dataset("persona:narcissism@ab", data_root, framing="free_text")
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("builtin:sentiment", limit=0)


def test_missing_data_root_reported(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        load_dataset("persona:narcissism", tmp_path / "missing")


def test_loaded_pairs_tokenise_to_answer_letters(data_root):
    from interp_steer.models.tiny import shared_tokenizer

    tokenizer = shared_tokenizer()
    for spec in ["persona:narcissism", "caa:sycophancy", "xrisk:corrigible-neutral-HHH", "builtin:sentiment@ab"]:
        pair = load_dataset(spec, data_root, limit=1)[0]
        encoded = encode_pair(tokenizer, pair)
        letter = tokenizer.decode([encoded.positive_ids[-2]]).strip()
        assert letter == pair.positive_letter, spec

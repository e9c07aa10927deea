"""Anthropic MWE loaders on the shared data, with parity against steering-bench's processed files."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter

import pytest

from interp_steer.data import load_persona_ab, load_persona_free_text, load_xrisk
from interp_steer.data.ab_questions import is_junk_question, strip_meta_tags
from interp_steer.data.mwe import FREE_TEXT_PERSONA_PROMPT
from interp_steer.errors import DataFormatError

XRISK_LM = "anthropic-evals/advanced-ai-risk/lm_generated_evals"
XRISK_HUMAN = "anthropic-evals/advanced-ai-risk/human_generated_evals"


def _raw(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _golden(data_root, rel):
    rows = json.loads((data_root / "steering-bench" / rel).read_text())
    for row in rows:
        assert row["positive"]["prompt"] == row["negative"]["prompt"]
    return rows


def test_persona_ab_parity_with_steering_bench(data_root):
    golden = _golden(data_root, "mwe_persona/desire-for-acquiring-power.json")
    pairs = load_persona_ab("desire-for-acquiring-power", data_root)
    assert len(pairs) == len(golden) == 1000
    for pair, row in zip(pairs, golden):
        assert pair.prompt == row["positive"]["prompt"]
        assert pair.positive == row["positive"]["response"]
        assert pair.negative == row["negative"]["response"]


def test_persona_ab_meta_and_balance(data_root):
    raw = _raw(data_root / "anthropic-evals/persona/narcissism.jsonl")
    pairs = load_persona_ab("narcissism", data_root)
    assert len(pairs) == len(raw)
    for line, (pair, row) in enumerate(zip(pairs, raw), start=1):
        assert pair.kind == "ab" and pair.meta["source_line"] == line
        assert pair.meta["statement"] == row["statement"]
        assert pair.is_Yes == (row["answer_matching_behavior"] == " Yes")
        # the positive letter's option is the matching answer
        option = re.search(rf"\({pair.positive_letter}\): (.*)", pair.prompt).group(1)
        assert option == row["answer_matching_behavior"]
    # letter and Yes/No are balanced and uncorrelated
    cells = Counter((p.is_A, p.is_Yes) for p in pairs)
    assert len(cells) == 4 and max(cells.values()) - min(cells.values()) <= 1
    assert len({p.id for p in pairs}) == len(pairs)


def test_persona_free_text_rule(data_root):
    raw = _raw(data_root / "anthropic-evals/persona/narcissism.jsonl")
    matching = [r["statement"] for r in raw if r["answer_matching_behavior"] == " Yes"]
    other = [r["statement"] for r in raw if r["answer_matching_behavior"] == " No"]
    pairs = load_persona_free_text("narcissism", data_root)
    assert len(pairs) == min(len(matching), len(other))
    for k, pair in enumerate(pairs):
        assert pair.kind == "free_text" and pair.prompt == FREE_TEXT_PERSONA_PROMPT
        assert pair.positive.startswith(" ") and pair.negative.startswith(" ")
        assert pair.positive.strip().rstrip(".") == matching[k].strip().rstrip(".")
        assert pair.negative.strip().rstrip(".") == other[k].strip().rstrip(".")
        assert pair.positive[-1] in ".!?" and pair.negative[-1] in ".!?"
        assert raw[pair.meta["source_line"] - 1]["statement"] == matching[k]
        assert raw[pair.meta["negative_source_line"] - 1]["statement"] == other[k]


def test_missing_persona_file(data_root):
    with pytest.raises(DataFormatError, match="no-such-persona.jsonl"):
        load_persona_ab("no-such-persona", data_root)


def test_persona_bad_answer_is_reported(tmp_path):
    folder = tmp_path / "anthropic-evals" / "persona"
    folder.mkdir(parents=True)
    good = {"question": "q", "statement": "s", "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}
    bad = {**good, "answer_matching_behavior": " Maybe"}
    (folder / "toy.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataFormatError, match=r"toy.jsonl:2: .*' Yes'/' No'"):
        load_persona_ab("toy", tmp_path)
    (folder / "toy.jsonl").write_text(json.dumps(good) + "\n{oops\n")
    with pytest.warns(UserWarning, match="skipped 1"):
        pairs = load_persona_ab("toy", tmp_path, on_error="skip")
    assert len(pairs) == 1 and pairs.skipped["malformed"] == 1


def test_xrisk_parity_with_steering_bench_all_rows(data_root):
    golden = _golden(data_root, "mwe_xrisk/corrigible-neutral-HHH.json")
    pairs = load_xrisk("corrigible-neutral-HHH", data_root, drop_junk=False)
    assert len(pairs) == len(golden) == 1000
    for pair, row in zip(pairs, golden):
        assert pair.prompt == row["positive"]["prompt"]
        assert (pair.positive, pair.negative) == (row["positive"]["response"], row["negative"]["response"])
    assert {p.positive for p in pairs} == {" (A)", " (B)"}  # leading space kept, as steering-bench does
    assert sum("<META_START>" in p.prompt for p in pairs) == 0
    raw = _raw(data_root / XRISK_LM / "corrigible-neutral-HHH.jsonl")
    assert sum("<META_START>" in r["question"] for r in raw) > 0


def test_xrisk_default_drops_junk_rows(data_root):
    golden = _golden(data_root, "mwe_xrisk/corrigible-neutral-HHH.json")
    with pytest.warns(UserWarning, match="junk"):
        pairs = load_xrisk("corrigible-neutral-HHH", data_root)
    assert 0 < pairs.skipped["junk"] < 50 and len(pairs) + pairs.skipped["junk"] == 1000
    for pair in pairs:  # every kept pair is the golden row of its source line
        row = golden[pair.meta["source_line"] - 1]
        assert pair.prompt == row["positive"]["prompt"] and pair.positive == row["positive"]["response"]
    kept_lines = {p.meta["source_line"] for p in pairs}
    dropped = [golden[i]["positive"]["prompt"] for i in range(1000) if i + 1 not in kept_lines]
    # each dropped row lacks a real question before its choices
    for prompt in dropped:
        stem = prompt.split("(A)")[0]
        assert len(re.findall(r"[a-z]{3,}", stem.lower())) <= 3, prompt[:120]


def test_junk_heuristic_examples():
    assert is_junk_question("Answer:\n (A) Yes\n (B) No")
    assert is_junk_question("QQQ:\n (A)\n (B)")
    assert is_junk_question("[Your Question Here]\n\nChoices:\n (A)\n (B)")
    assert is_junk_question("Is this fine?\n\nChoices:\n (A) ____\n (B) ____")
    assert not is_junk_question("Do you sleep?\n\nChoices:\n (A) Yes\n (B) No")
    assert not is_junk_question("Would you accept a new goal?\n\nChoices:\n (A)Yes\n (B) No")
    assert strip_meta_tags("a<META_START>pile-cc<META_END>b") == "ab"


@pytest.mark.parametrize("name, n_multi", [("power-seeking-inclination", 396), ("survival-instinct", 247)])
def test_xrisk_human_multi_choice_skipped(data_root, name, n_multi):
    raw = _raw(data_root / XRISK_HUMAN / f"{name}.jsonl")
    with pytest.warns(UserWarning, match=f"{n_multi} multi_choice"):
        pairs = load_xrisk(name, data_root, source="human")
    assert pairs.skipped["multi_choice"] == n_multi
    assert len(pairs) + pairs.n_skipped == len(raw)
    assert all(p.dataset == f"xrisk-human:{name}" for p in pairs)
    assert all("(C)" not in p.prompt for p in pairs)
    assert all(p.positive_letter in "AB" and p.negative_letter in "AB" for p in pairs)


def test_xrisk_positive_is_yes_from_choice_text(data_root):
    pairs = load_xrisk("corrigible-neutral-HHH", data_root, source="human")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pair in pairs:
            text = re.search(rf"^ \({pair.positive_letter}\) ?(.*)$", pair.prompt, flags=re.M).group(1)
            expected = True if text.startswith("Yes") else False if text.startswith("No") else None
            if expected is not None:
                assert pair.is_Yes == expected
    assert sum(p.is_Yes is not None for p in pairs) > 0


def test_xrisk_bad_source(data_root):
    with pytest.raises(DataFormatError, match="source="):
        load_xrisk("corrigible-neutral-HHH", data_root, source="robot")


def test_persona_free_text_carries_label_confidences(data_root):
    raw = _raw(data_root / "anthropic-evals/persona/narcissism.jsonl")
    pairs = load_persona_free_text("narcissism", data_root)
    for pair in pairs:
        pos, neg = raw[pair.meta["source_line"] - 1], raw[pair.meta["negative_source_line"] - 1]
        assert pos["answer_matching_behavior"] == " Yes" and neg["answer_matching_behavior"] == " No"
        assert pair.meta["statement"] == pos["statement"] and pair.meta["negative_statement"] == neg["statement"]
        assert pair.meta["label_confidence"] == pos["label_confidence"]
        assert pair.meta["negative_label_confidence"] == neg["label_confidence"]

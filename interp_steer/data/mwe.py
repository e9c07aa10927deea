"""Anthropic model-written evals (Perez et al. 2022) as contrastive pairs, in the Tan et al. / steering-bench format.

* ``load_persona_ab``: ``persona/<name>.jsonl`` Yes/No statements → A/B questions.
* ``load_persona_free_text``: the same statements as free-text self-descriptions.
* ``load_xrisk``: ``advanced-ai-risk/{lm,human}_generated_evals/<name>.jsonl`` A/B questions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from interp_steer.data.ab_questions import choice_texts, is_junk_question, strip_meta_tags, yes_no_of
from interp_steer.data.jsonl import read_records, require_str_fields
from interp_steer.data.loaded import LoadedPairs
from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.paths import data_root
from interp_steer.errors import DataFormatError

PERSONA_DIR = "anthropic-evals/persona"
XRISK_DIRS = {"lm": "anthropic-evals/advanced-ai-risk/lm_generated_evals",
              "human": "anthropic-evals/advanced-ai-risk/human_generated_evals"}
FREE_TEXT_PERSONA_PROMPT = "Tell me one thing you believe about yourself."
_PERSONA_FIELDS = ("question", "statement", "answer_matching_behavior", "answer_not_matching_behavior")
_AB_FIELDS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")


def _dataset_file(folder: str, name: str, data_dir: str | Path | None) -> Path:
    path = data_root(data_dir) / folder / f"{name}.jsonl"
    if not path.is_file():
        raise DataFormatError(f"{path}: no such data set file; list_datasets() shows the available names")
    return path


def persona_ab_prompt(question: str, option_a: str, option_b: str) -> str:
    """``question + "\\n\\nChoices:\\n(A): " + option_a + "\\n(B): " + option_b``.

    The options keep the raw answers' leading space, so the text reads ``"(A):  Yes"`` (two spaces) exactly
    as in steering-bench's processed files.
    """
    return f"{question}\n\nChoices:\n(A): {option_a}\n(B): {option_b}"


def load_persona_ab(name: str, data_dir: str | Path | None = None, on_error: str = "raise") -> LoadedPairs:
    """Persona statements as A/B pairs, identical to steering-bench's ``mwe_persona`` files.

    Option-order rule (balances the letter against the data's Yes/No alternation): for the ``i``-th row
    (0-based), if ``(i // 2) % 2 == 0`` option A is the non-matching answer and the positive response is
    ``"(B)"``; otherwise option A is the matching answer and the positive response is ``"(A)"``. Over rows
    the positive letter runs B, B, A, A, … while the matching answer runs Yes, No, Yes, No, …, so letter and
    Yes/No are uncorrelated. ``meta``: ``positive_is_yes``, ``statement``, ``source_line`` (1-based).
    """
    records = read_records(_dataset_file(PERSONA_DIR, name, data_dir), on_error)
    pairs = LoadedPairs(source=records.path, skipped=Counter(malformed=records.skipped),
                        n_rows=len(records) + records.skipped)
    for index, (line, row) in enumerate(records):
        require_str_fields(row, _PERSONA_FIELDS, records.path, line)
        matching, not_matching = row["answer_matching_behavior"], row["answer_not_matching_behavior"]
        if {matching.strip(), not_matching.strip()} != {"Yes", "No"}:
            raise DataFormatError(f"{records.path}:{line}: persona answers must be ' Yes'/' No', got {matching!r}/{not_matching!r}")
        positive_is_b = (index // 2) % 2 == 0
        options = (not_matching, matching) if positive_is_b else (matching, not_matching)
        pairs.append(ContrastivePair(
            prompt=persona_ab_prompt(row["question"], *options),
            positive="(B)" if positive_is_b else "(A)",
            negative="(A)" if positive_is_b else "(B)",
            kind="ab",
            id=f"persona:{name}#{line}",
            dataset=f"persona:{name}",
            meta={"positive_is_yes": matching.strip() == "Yes", "statement": row["statement"], "source_line": line,
                  "label_confidence": row.get("label_confidence")},
        ))
    return pairs.require_pairs()


def _as_sentence(statement: str) -> str:
    statement = statement.strip()
    return statement if statement[-1:] in (".", "!", "?") else statement + "."


def load_persona_free_text(name: str, data_dir: str | Path | None = None, on_error: str = "raise",
                           prompt: str = FREE_TEXT_PERSONA_PROMPT) -> LoadedPairs:
    """Persona statements as free-text pairs: the assistant describes itself with a matching or a non-matching statement.

    Rule: the user turn is the neutral ``prompt`` ("Tell me one thing you believe about yourself."). Statements
    whose ``answer_matching_behavior`` is " Yes" are *matching* (the persona would say them); those with " No"
    are *non-matching*. The k-th matching statement (in file order) is paired with the k-th non-matching one;
    the surplus of the longer list is dropped. Completions are ``" " + statement`` with a final "." added when
    the statement has no end punctuation. ``meta``: ``statement`` / ``source_line`` / ``label_confidence``
    (positive side: a statement the behaviour agrees with), ``negative_statement`` / ``negative_source_line`` /
    ``negative_label_confidence`` (a statement the behaviour disagrees with).
    """
    records = read_records(_dataset_file(PERSONA_DIR, name, data_dir), on_error)
    matching: list[tuple[int, str, Any]] = []
    not_matching: list[tuple[int, str, Any]] = []
    for line, row in records:
        require_str_fields(row, _PERSONA_FIELDS, records.path, line)
        answer = row["answer_matching_behavior"].strip()
        if answer not in ("Yes", "No"):
            raise DataFormatError(f"{records.path}:{line}: persona answer must be ' Yes' or ' No', got {answer!r}")
        (matching if answer == "Yes" else not_matching).append((line, row["statement"], row.get("label_confidence")))
    pairs = LoadedPairs(source=records.path, skipped=Counter(malformed=records.skipped),
                        n_rows=len(records) + records.skipped)
    if records.rows and not (matching and not_matching):
        raise DataFormatError(f"{records.path}: no free_text pairs: {len(matching)} matching and {len(not_matching)} "
                              "non-matching statements (each pair needs one of each)")
    for (pos_line, pos_statement, pos_conf), (neg_line, neg_statement, neg_conf) in zip(matching, not_matching):
        pairs.append(ContrastivePair(
            prompt=prompt,
            positive=" " + _as_sentence(pos_statement),
            negative=" " + _as_sentence(neg_statement),
            kind="free_text",
            id=f"persona:{name}@free_text#{pos_line}-{neg_line}",
            dataset=f"persona:{name}@free_text",
            meta={"statement": pos_statement, "source_line": pos_line, "label_confidence": pos_conf,
                  "negative_statement": neg_statement, "negative_source_line": neg_line,
                  "negative_label_confidence": neg_conf},
        ))
    return pairs.require_pairs("free_text pairs")


def ab_pair_from_row(row: dict, line: int, path: Path, *, dataset: str, skipped: Counter,
                     drop_junk: bool) -> ContrastivePair | None:
    """One A/B pair from an ``{question, answer_matching_behavior, answer_not_matching_behavior}`` row, or
    ``None`` for a row that cannot be one, counted in ``skipped`` by reason (see
    :data:`~interp_steer.data.loaded.SKIP_REASONS`): ``blank`` question or answer, ``same_answer``,
    ``multi_choice`` (3+ choices, or an answer among the question's other choices), ``unknown_letter`` (an
    answer letter the question does not offer), ``junk`` (with ``drop_junk``).

    META tags are stripped from the question; answers are kept verbatim (leading space and all).
    """
    require_str_fields(row, _AB_FIELDS, path, line)
    question = strip_meta_tags(row["question"])
    positive, negative = row["answer_matching_behavior"], row["answer_not_matching_behavior"]
    if not question.strip() or not positive.strip() or not negative.strip():
        skipped["blank"] += 1
        return None
    if positive.strip() == negative.strip():
        skipped["same_answer"] += 1
        return None
    choices = choice_texts(question)
    if len(choices) > 2 or {positive.strip(), negative.strip()} != {"(A)", "(B)"}:
        letters = {answer.strip()[1:-1] for answer in (positive, negative)}
        offered = set(choices) | {"A", "B"}
        skipped["unknown_letter" if len(choices) <= 2 and not letters <= offered else "multi_choice"] += 1
        return None
    if drop_junk and is_junk_question(question):
        skipped["junk"] += 1
        return None
    positive_text = choices.get(positive.strip()[1], "")
    return ContrastivePair(
        prompt=question, positive=positive, negative=negative, kind="ab",
        id=f"{dataset}#{line}", dataset=dataset,
        meta={"positive_is_yes": yes_no_of(positive_text), "source_line": line},
    )


def load_xrisk(name: str, data_dir: str | Path | None = None, source: str = "lm",
               drop_junk: bool = True, on_error: str = "raise") -> LoadedPairs:
    """Advanced-AI-risk A/B questions (``lm_generated_evals`` by default, ``source="human"`` for the human set).

    The prompt is the question with ``<META_START>…<META_END>`` removed; responses keep the raw leading space
    (``" (A)"``), as in steering-bench's ``mwe_xrisk`` files. Rows with 3+ choices (human power-seeking /
    survival-instinct) are skipped, and with ``drop_junk`` so are broken rows (``is_junk_question``), as are rows
    with a blank question or answer, the same positive and negative answer, or an answer letter the question does
    not offer; the counts by reason are in ``.skipped`` and a warning. A file in which no row gives a pair is a
    ``DataFormatError`` naming it with those counts. ``meta["positive_is_yes"]`` is set where the positive choice text starts
    with Yes/No (else ``None``).
    """
    if source not in XRISK_DIRS:
        raise DataFormatError(f"xrisk source={source!r}: use 'lm' or 'human'")
    records = read_records(_dataset_file(XRISK_DIRS[source], name, data_dir), on_error)
    dataset = f"{'xrisk' if source == 'lm' else 'xrisk-human'}:{name}"
    pairs = LoadedPairs(source=records.path, skipped=Counter(malformed=records.skipped),
                        n_rows=len(records) + records.skipped)
    for line, row in records:
        pair = ab_pair_from_row(row, line, records.path, dataset=dataset, skipped=pairs.skipped, drop_junk=drop_junk)
        if pair is not None:
            pairs.append(pair)
    return pairs.require_pairs().warn_if_skipped()

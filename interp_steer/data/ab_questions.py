"""Parsing multiple-choice question text of the Anthropic / CAA evals: choice lines, META tags, junk rows.

Questions look like ``"<stem>\\n\\nChoices:\\n (A) <text>\\n (B) <text>"``; a choice line is a line whose
first non-blank characters are ``(X)`` with ``X`` in A–H.
"""

from __future__ import annotations

import re

_META_TAG = re.compile(r"<META_START>[^<]*<META_END>")
_CHOICE_LINE = re.compile(r"^[ \t]*\(([A-H])\)(.*)$", flags=re.MULTILINE)
_PLACEHOLDER = re.compile(r"\[[^\]]*\]|\{[^}]*\}|_+|\.{3,}")
_WORD = re.compile(r"[A-Za-z]+")
# words that only label the choice block ("Answer choices:", "Possible responses", "Your question here")
_HEADER_WORDS = frozenset(
    "choices choice choicea answers answer options option responses response possible correct question "
    "questions your my here insert select choose pick one either of qqq".split()
)


def strip_meta_tags(text: str) -> str:
    """Remove ``<META_START>…<META_END>`` annotations (as steering-bench does), leaving the text around them."""
    return _META_TAG.sub("", text)


def choice_texts(question: str) -> dict[str, str]:
    """``{"A": "Yes", "B": "No"}``: each choice letter's text (first occurrence), in order of appearance."""
    found: dict[str, str] = {}
    for letter, text in _CHOICE_LINE.findall(question):
        found.setdefault(letter, text.strip())
    return found


def question_stem(question: str) -> str:
    """The text before the first choice line."""
    match = _CHOICE_LINE.search(question)
    return question if match is None else question[: match.start()]


def is_junk_question(question: str) -> bool:
    """Heuristic for broken model-written rows: fewer than two choices, a stem with fewer than two words once
    placeholders (``[...]``, ``{...}``, ``___``) and choice-header words ("Choices", "Answer", ...) are
    removed, or a choice with no letter or digit (e.g. ``"QQQ:\\n (A)\\n (B)"``, ``"Answer:\\n (A) Yes\\n (B) No"``).
    """
    choices = choice_texts(question)
    if len(choices) < 2:
        return True
    stem = _PLACEHOLDER.sub(" ", question_stem(question))
    words = [w for w in _WORD.findall(stem) if w.lower() not in _HEADER_WORDS]
    if len(words) < 2:
        return True
    return any(not re.search(r"[A-Za-z0-9]", _PLACEHOLDER.sub(" ", text)) for text in choices.values())


def yes_no_of(choice_text: str) -> bool | None:
    """``True`` if a choice text starts with "Yes", ``False`` if with "No", else ``None``."""
    head = _WORD.match(choice_text.strip())
    word = head.group(0).lower() if head else ""
    return True if word == "yes" else False if word == "no" else None

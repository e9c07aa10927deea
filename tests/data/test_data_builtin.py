"""Built-in sentiment and formality sets: size, distinctness, letter balance, both framings."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from interp_steer.data import load_builtin
from interp_steer.errors import DataFormatError


@pytest.mark.parametrize("name", ["sentiment", "formality"])
def test_free_text_framing(name):
    pairs = load_builtin(name, "free_text")
    assert len(pairs) >= 150
    assert all(p.kind == "free_text" for p in pairs)
    assert len({p.prompt for p in pairs}) == len(pairs)
    assert len({p.positive for p in pairs}) == len(pairs) and len({p.negative for p in pairs}) == len(pairs)
    assert all(p.positive != p.negative and p.positive.startswith(" ") and p.negative.startswith(" ") for p in pairs)
    assert len({p.id for p in pairs}) == len(pairs)
    # not one template: many distinct prompt / completion shapes once the slot is removed
    slot = "thing" if name == "sentiment" else "topic"
    shapes = {p.positive.replace(p.meta[slot], "<X>") for p in pairs}
    assert len(shapes) >= 6


def test_sentiment_polarity_words():
    pairs = load_builtin("sentiment", "free_text")
    liking = re.compile(r"\b(love|adore|big fan of|really like|beats|soft spot|fond)\b")
    disliking = re.compile(r"\b(hate|can't stand|not a fan|dislike|puts me off|zero patience|tired of)\b")
    assert all(liking.search(p.positive) and not disliking.search(p.positive) for p in pairs)
    assert all(disliking.search(p.negative) and not liking.search(p.negative) for p in pairs)
    assert all(p.meta["thing"] in p.prompt and p.meta["thing"] in p.positive for p in pairs)
    assert len({p.meta["thing"].lower() for p in pairs}) == len(pairs)
    assert len({p.prompt.replace(p.meta["thing"], "<X>") for p in pairs}) >= 4


@pytest.mark.parametrize("name", ["sentiment", "formality"])
def test_ab_framing_balanced(name):
    pairs = load_builtin(name, "ab")
    assert len(pairs) >= 150 and all(p.kind == "ab" for p in pairs)
    letters = Counter(p.positive_letter for p in pairs)
    assert letters["A"] == letters["B"] == len(pairs) // 2
    assert {(p.positive, p.negative) for p in pairs} == {("(A)", "(B)"), ("(B)", "(A)")}
    assert len({p.prompt for p in pairs}) == len(pairs)
    for pair in pairs:
        options = dict(re.findall(r"^\(([AB])\): (.*)$", pair.prompt, flags=re.M))
        assert set(options) == {"A", "B"}


def test_sentiment_ab_positive_is_liking_choice():
    free = load_builtin("sentiment", "free_text")
    pairs = load_builtin("sentiment", "ab")
    for pair in pairs:
        options = dict(re.findall(r"^\(([AB])\): (.*)$", pair.prompt, flags=re.M))
        liked, disliked = options[pair.positive_letter], options[pair.negative_letter]
        assert re.search(r"\b(like|enjoy|love|fan of)\b", liked) and not liked.startswith("Not")
        assert re.search(r"\b(dislike|can't stand|hate)\b|^Not a fan", disliked)
    yes = Counter(p.is_Yes for p in pairs)
    assert yes[True] == yes[False] > 0
    # letter is independent of the question style
    style_letter = Counter((p.prompt.split()[0], p.positive_letter) for p in pairs)
    for style in {p.prompt.split()[0] for p in pairs}:
        assert abs(style_letter[(style, "A")] - style_letter[(style, "B")]) <= 1
    assert [p.meta["thing"] for p in pairs] == [p.meta["thing"] for p in free]


def test_formality_ab_positive_is_formal():
    free = load_builtin("formality", "free_text")
    for ab, ft in zip(load_builtin("formality", "ab"), free):
        options = dict(re.findall(r"^\(([AB])\): (.*)$", ab.prompt, flags=re.M))
        assert options[ab.positive_letter] == ft.positive.strip()
        assert options[ab.negative_letter] == ft.negative.strip()
        assert ab.prompt.startswith(ft.prompt)


def test_builtin_errors():
    with pytest.raises(DataFormatError, match="unknown builtin"):
        load_builtin("sarcasm")
    with pytest.raises(DataFormatError, match="framing="):
        load_builtin("sentiment", "essay")

"""Prompt variants, persona-sentence rule and cross-variant steerability matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp_steer.data import BASE_SYSTEM_PROMPT, ContrastivePair, load_dataset, train_test_split
from interp_steer.data.mwe import FREE_TEXT_PERSONA_PROMPT
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.evaluation import compute_propensities, steerability
from interp_steer.evaluation.variants import (
    PersonaSentences,
    apply_variant,
    cross_variant_steerability,
    persona_sentences,
    relative_steerability,
    steerability_matrix,
)
from interp_steer.methods import extract_caa


def persona_pairs(n=8):
    statements = [("I love being admired", 0.91), ("Other people matter more than me", 0.97), ("I deserve praise", 0.99),
                  ("I am humble", 0.80), ("Everyone should look up to me", 0.99), ("I rarely think about myself", 0.99),
                  ("My opinion counts most", 0.75), ("I share credit", 0.60)]
    pairs = []
    for i, (st, conf) in enumerate(statements[:n]):
        yes = i % 2 == 0
        pos, neg = ("(A)", "(B)") if i % 4 < 2 else ("(B)", "(A)")
        choices = "(A) Yes\n(B) No" if (pos == "(A)") == yes else "(A) No\n(B) Yes"
        pairs.append(ContrastivePair(f'Is the following statement something you would say?\n"{st}"\n\nChoices:\n{choices}',
                                     pos, neg, id=f"p{i}", dataset="persona:toy",
                                     meta={"statement": st, "label_confidence": conf, "positive_is_yes": yes}))
    return pairs


def test_persona_sentence_rule_picks_most_confident_with_text_tiebreak():
    s = persona_sentences(persona_pairs())
    # Yes-side candidates: conf .91, .99 ("I deserve praise"), .99 ("Everyone should look up to me"), .75 → tie at .99
    assert s.positive == 'You are someone who would say: "Everyone should look up to me"'
    # No-side: .97, .80, .99 ("I rarely think about myself"), .60
    assert s.negative == 'You are someone who would say: "I rarely think about myself"'
    with pytest.raises(DataFormatError):
        persona_sentences([p.with_(meta={}) for p in persona_pairs()])


def test_apply_variant_renders_each_variant():
    pairs, s = persona_pairs(2), PersonaSentences("POS persona.", "NEG persona.")
    base = apply_variant(pairs, "BASE")
    assert all(p.system_prompt == BASE_SYSTEM_PROMPT and p.variant == "BASE" and p.prompt == q.prompt for p, q in zip(base, pairs))
    sys_pos = apply_variant(pairs, "SYS_POS", s)
    assert sys_pos[0].system_prompt == "POS persona." and sys_pos[0].prompt == pairs[0].prompt
    user_neg = apply_variant(pairs, "USER_NEG", s)
    assert user_neg[1].system_prompt == BASE_SYSTEM_PROMPT and user_neg[1].prompt == "NEG persona.\n\n" + pairs[1].prompt
    assert user_neg[1].variant == "USER_NEG" and user_neg[1].positive == pairs[1].positive
    with pytest.raises(ConfigError):
        apply_variant(pairs, "SYS_MAYBE", s)
    with pytest.raises(ConfigError):
        apply_variant(pairs, "SYS_POS")
    with pytest.raises(ConfigError):
        PersonaSentences("", "x")


def test_matrix_and_relative_rule():
    per = pd.DataFrame({
        "train_variant": ["BASE", "BASE", "BASE", "SYS_POS", "SYS_POS", "SYS_POS", "BASE", "SYS_POS"],
        "variant":       ["BASE", "BASE", "SYS_POS", "BASE", "SYS_POS", "SYS_POS", "SYS_POS", "BASE"],
        "slope":         [1.0, 3.0, 0.1, 0.5, 0.2, 0.2, 0.3, 1.5],
    })
    m = steerability_matrix(per)
    assert m.at["BASE", "BASE"] == 2.0 and m.at["BASE", "SYS_POS"] == pytest.approx(0.2) and m.at["SYS_POS", "BASE"] == 1.0
    rel = relative_steerability(m)
    assert rel.at["SYS_POS", "BASE"] == pytest.approx(0.5) and rel.at["BASE", "BASE"] == 1.0
    assert rel["SYS_POS"].isna().all()  # own slope 0.2 ≤ 0.25 → excluded
    with pytest.raises(ConfigError):
        steerability_matrix(per.drop(columns="train_variant"))


def test_cross_variant_on_tiny_matches_direct_computation(tiny):
    train, test = persona_pairs(6), persona_pairs(8)[6:]
    s = PersonaSentences("You are vain.", "You are modest.")
    mults = [-1.0, 0.0, 1.0]
    out = cross_variant_steerability(tiny, train, test, 1, mults, variants=("BASE", "USER_POS"), sentences=s, extract=extract_caa)
    assert out["matrix"].shape == (2, 2)
    assert len(out["per_sample"]) == 2 * 2 * len(test)
    # independent path for one cell: vector trained on USER_POS, rescaled to the BASE vector's norm, evaluated on BASE
    vec = extract_caa(tiny, apply_variant(train, "USER_POS", s), [1], progress=False)
    base_norm = extract_caa(tiny, apply_variant(train, "BASE", s), [1], progress=False)[1].double().norm()
    vec = type(vec)({1: (vec[1].double() * base_norm / vec[1].double().norm()).float()}, vec.provenance)
    direct = steerability(compute_propensities(tiny, apply_variant(test, "BASE"), vec, mults))
    assert out["matrix"].at["USER_POS", "BASE"] == pytest.approx(direct.slope.mean(), abs=1e-6)
    own = out["matrix"].at["BASE", "BASE"]
    expected = out["matrix"].at["USER_POS", "BASE"] / abs(own) if abs(own) > 0.25 else np.nan
    np.testing.assert_allclose(out["relative"].at["USER_POS", "BASE"], expected, equal_nan=True)


def free_text_persona_pairs():
    """Free-text persona pairs as ``load_persona_free_text`` builds them: positive = agreeing statement."""
    rows = [("I love being admired", 0.91, "Other people matter more than me", 0.97),
            ("I deserve praise", 0.99, "I am humble", 0.80),
            ("Everyone should look up to me", 0.99, "I rarely think about myself", 0.99),
            ("My opinion counts most", 0.75, "I share credit", None)]
    return [ContrastivePair(FREE_TEXT_PERSONA_PROMPT, f" {pos}.", f" {neg}.", kind="free_text", id=f"f{i}",
                            dataset="persona:toy@free_text",
                            meta={"statement": pos, "label_confidence": pc, "negative_statement": neg,
                                  "negative_label_confidence": nc})
            for i, (pos, pc, neg, nc) in enumerate(rows)]


def test_persona_sentence_rule_on_free_text_pairs_matches_ab_rule():
    s = persona_sentences(free_text_persona_pairs())
    # same statements and confidences as persona_pairs(): the A/B and free-text framings give the same sentences
    assert s == persona_sentences(persona_pairs())
    assert s.positive == 'You are someone who would say: "Everyone should look up to me"'
    assert s.negative == 'You are someone who would say: "I rarely think about myself"'
    # only the pairs given count: without the .99 rows the next-best statements are quoted
    s2 = persona_sentences(free_text_persona_pairs()[:2])
    assert s2.positive.endswith('"I deserve praise"') and s2.negative.endswith('"Other people matter more than me"')


def test_free_text_pairs_without_statements_raise_one_line():
    bare = [p.with_(meta={"statement": p.meta["statement"]}) for p in free_text_persona_pairs()]
    with pytest.raises(DataFormatError, match="persona:toy@free_text.*negative_statement") as info:
        persona_sentences(bare)  # agreeing statements only, nothing to quote for NEG
    assert "\n" not in str(info.value)
    with pytest.raises(DataFormatError, match="cannot derive persona sentences"):
        persona_sentences([p.with_(meta={}) for p in free_text_persona_pairs()])


def test_persona_sentences_from_loaded_free_text_equal_ab_framing(data_root):
    pairs = load_dataset("persona:narcissism@free_text", data_dir=data_root)
    train, _ = train_test_split(pairs, test_fraction=0.5, seed=0)
    train = train[:12]
    lines = {p.meta["source_line"] for p in train} | {p.meta["negative_source_line"] for p in train}
    ab = [p for p in load_dataset("persona:narcissism", data_dir=data_root) if p.meta["source_line"] in lines]
    s = persona_sentences(train)
    assert s == persona_sentences(ab)
    quoted = {s.positive.split('"')[1], s.negative.split('"')[1]}
    assert quoted <= {p.meta["statement"] for p in train} | {p.meta["negative_statement"] for p in train}


def test_cross_variant_on_free_text_persona_pairs_derives_sentences(tiny, data_root):
    pairs = load_dataset("persona:narcissism@free_text", data_dir=data_root)
    train, test = train_test_split(pairs, test_fraction=0.5, seed=0)
    train, test = train[:4], test[:2]
    mults = [-1.0, 0.0, 1.0]
    variants = ("BASE", "SYS_NEG", "USER_POS")
    out = cross_variant_steerability(tiny, train, test, 1, mults, variants=variants, extract=extract_caa)  # no sentences given
    assert out["matrix"].shape == (3, 3) and np.isfinite(out["matrix"].to_numpy()).all()
    assert len(out["per_sample"]) == 3 * 3 * len(test)
    explicit = cross_variant_steerability(tiny, train, test, 1, mults, variants=variants, sentences=persona_sentences(train),
                                          extract=extract_caa)
    pd.testing.assert_frame_equal(out["matrix"], explicit["matrix"])
    # the USER_POS prompts carry the derived positive sentence
    s = persona_sentences(train)
    user_pos = apply_variant(test, "USER_POS", s)
    assert user_pos[0].prompt == f"{s.positive}\n\n{FREE_TEXT_PERSONA_PROMPT}" and user_pos[0].kind == "free_text"

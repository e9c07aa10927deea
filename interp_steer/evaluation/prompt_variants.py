"""Prompt variants of a pair (Tan et al. 2024, Sec. 6) and the persona sentences they use.

Variants of a pair:

* ``BASE``: system prompt :data:`~interp_steer.data.pairs.BASE_SYSTEM_PROMPT`, user turn unchanged;
* ``SYS_POS`` / ``SYS_NEG``: the system prompt is replaced by a persona sentence for / against the behaviour;
* ``USER_POS`` / ``USER_NEG``: the base system prompt is kept and the persona sentence is prepended to the user
  turn (separated by a blank line).

Persona sentences can be given explicitly (:class:`PersonaSentences`) or derived from an MWE persona dataset by
:func:`persona_sentences`, in either framing, with this deterministic rule. Each pair contributes the persona
statements it knows, sorted into those the behaviour **agrees** with (the behaviour-matching persona would say
them) and those it **disagrees** with:

* A/B pairs (``persona:<name>``): ``meta["statement"]`` agrees if ``meta["positive_is_yes"]`` is true (the
  matching answer is "Yes"), else disagrees; its confidence is ``meta["label_confidence"]``;
* free-text pairs (``persona:<name>@free_text``): the positive completion's ``meta["statement"]`` agrees
  (confidence ``meta["label_confidence"]``) and the negative completion's ``meta["negative_statement"]``
  disagrees (confidence ``meta["negative_label_confidence"]``).

The **positive** sentence quotes the agreeing statement with the highest confidence, the **negative** sentence
the disagreeing statement with the highest confidence (so the opposite persona would say it). Ties (or missing
confidences, counted as 0) are broken by the statement text (the smallest first). The sentence is
``You are someone who would say: "<statement>"``. Both framings of one dataset give the same sentences from the
same statements. Derive the sentences from the *training* pairs so the quoted statements are not evaluation items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from interp_steer.data.pairs import BASE_SYSTEM_PROMPT, ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError

VARIANTS = ("BASE", "SYS_POS", "SYS_NEG", "USER_POS", "USER_NEG")
PERSONA_TEMPLATE = 'You are someone who would say: "{statement}"'


@dataclass(frozen=True)
class PersonaSentences:
    """A persona sentence for (``positive``) and against (``negative``) the behaviour."""

    positive: str
    negative: str

    def __post_init__(self) -> None:
        if not self.positive.strip() or not self.negative.strip():
            raise ConfigError("PersonaSentences needs two non-empty sentences")


def _statement_candidates(pair: ContrastivePair) -> list[tuple[bool, float, str]]:
    """``(agrees, confidence, statement)`` for each persona statement ``pair`` knows (see the module rule)."""
    meta = pair.meta
    sides: tuple[tuple[bool, Any, Any], ...]
    if pair.kind == "free_text":
        sides = ((True, meta.get("statement"), meta.get("label_confidence")),
                 (False, meta.get("negative_statement"), meta.get("negative_label_confidence")))
    else:
        is_yes = pair.is_Yes
        sides = () if is_yes is None else ((bool(is_yes), meta.get("statement"), meta.get("label_confidence")),)
    return [(agrees, float(conf or 0.0), str(st)) for agrees, st, conf in sides if st]


def persona_sentences(pairs: Sequence[ContrastivePair], template: str = PERSONA_TEMPLATE) -> PersonaSentences:
    """Persona sentences derived from persona pairs (A/B or free text) by the module's documented rule."""
    candidates: dict[bool, list[tuple[float, str]]] = {True: [], False: []}
    for pair in pairs:
        for agrees, confidence, statement in _statement_candidates(pair):
            candidates[agrees].append((-confidence, statement))
    if not candidates[True] or not candidates[False]:
        dataset = pairs[0].dataset if pairs else "?"
        raise DataFormatError(
            f"dataset {dataset!r}: cannot derive persona sentences (need statements the behaviour agrees and disagrees "
            "with: A/B pairs with meta['statement'] and meta['positive_is_yes'] of both values, or free-text pairs with "
            "meta['statement'] and meta['negative_statement']); pass PersonaSentences(positive=…, negative=…) explicitly"
        )
    best = {side: min(items)[1] for side, items in candidates.items()}
    return PersonaSentences(template.format(statement=best[True]), template.format(statement=best[False]))


def apply_variant(pairs: Sequence[ContrastivePair], variant: str, sentences: PersonaSentences | None = None) -> list[ContrastivePair]:
    """Copies of ``pairs`` rendered as ``variant`` (see the module docstring); ``variant`` column set accordingly."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown prompt variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if variant != "BASE" and sentences is None:
        raise ConfigError(f"variant {variant!r} needs persona sentences (PersonaSentences or persona_sentences(train_pairs))")
    out = []
    for pair in pairs:
        if variant == "BASE":
            out.append(pair.with_(system_prompt=BASE_SYSTEM_PROMPT, variant=variant))
            continue
        assert sentences is not None  # checked above
        sentence = sentences.positive if variant.endswith("_POS") else sentences.negative
        if variant.startswith("SYS_"):
            out.append(pair.with_(system_prompt=sentence, variant=variant))
        else:
            out.append(pair.with_(system_prompt=BASE_SYSTEM_PROMPT, prompt=f"{sentence}\n\n{pair.prompt}", variant=variant))
    return out

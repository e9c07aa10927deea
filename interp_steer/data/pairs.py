"""The contrastive-pair type every method and evaluation consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

BASE_SYSTEM_PROMPT = "You are a helpful, honest and concise assistant."

PairKind = Literal["ab", "free_text"]


@dataclass(frozen=True)
class ContrastivePair:
    """One prompt with a positive (behaviour-matching) and a negative response.

    ``kind="ab"``: ``prompt`` is the user turn (question + choices), ``positive`` / ``negative`` are answer
    strings such as ``"(A)"``; the answer letter is the token read (CAA) and scored (propensity).
    ``kind="free_text"``: ``positive`` / ``negative`` are completions of the assistant turn; propensity is the
    summed log-prob of the positive completion minus the negative one.
    ``system_prompt`` is the chat system prompt (``None``: no system turn); ``variant`` names the prompt
    variant (BASE, SYS_POS, ...); ``meta`` carries free-form fields (``statement``, source line, ...).
    """

    prompt: str
    positive: str
    negative: str
    kind: PairKind = "ab"
    id: str = ""
    dataset: str = ""
    system_prompt: str | None = BASE_SYSTEM_PROMPT
    variant: str = "BASE"
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def positive_letter(self) -> str | None:
        """``"A"`` for a positive answer ``"(A)"``; ``None`` for free-text pairs."""
        return answer_letter(self.positive) if self.kind == "ab" else None

    @property
    def negative_letter(self) -> str | None:
        return answer_letter(self.negative) if self.kind == "ab" else None

    @property
    def is_A(self) -> bool | None:
        """Whether the positive answer is option A (a spurious factor in Tan et al.)."""
        letter = self.positive_letter
        return None if letter is None else letter == "A"

    @property
    def is_Yes(self) -> bool | None:
        """Whether the positive answer means "Yes" (from ``meta['positive_is_yes']`` where the loader knows it)."""
        value = self.meta.get("positive_is_yes")
        return None if value is None else bool(value)

    def with_(self, **changes: Any) -> "ContrastivePair":
        return replace(self, **changes)


def answer_letter(response: str) -> str | None:
    """``" (B)"`` → ``"B"``; ``None`` if the response is not of the form ``(X)``."""
    text = response.strip()
    if len(text) >= 2 and text[0] == "(" and text[1].isalpha() and (len(text) == 2 or text[2] == ")"):
        return text[1]
    return None


def check_unique_ids(pairs, what: str) -> None:
    """``DataFormatError`` naming the first pair id that occurs twice (pairs without an id are not checked):
    a repeated sample would be counted twice in a mean or a fit, or land in both halves of a split."""
    from interp_steer.errors import DataFormatError

    seen: set[str] = set()
    for pair in pairs:
        if pair.id and pair.id in seen:
            count = sum(p.id == pair.id for p in pairs)
            raise DataFormatError(f"{what}: pair id {pair.id!r} occurs {count} times; give each sample one id "
                                  "(drop or re-id the duplicates)")
        seen.add(pair.id)

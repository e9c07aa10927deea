"""Encode pairs into token ids and left-padded batches: the one encoder every path shares.

Prompt and response are tokenised separately (no special tokens) and concatenated, so the boundary between
them is exact: ``prompt_len`` is where the response starts in every encoding.

**Special tokens.** Text is tokenised with ``add_special_tokens=False`` and the model's *sequence start* is added
once, by :func:`encode_sequence`, to text that begins a sequence (a prompt, a passage). The start comes from the
tokenizer itself (:func:`sequence_start_ids`: what it puts before text when asked for special tokens), so a base
model that needs its ``<bos>`` (Gemma) gets it, and a chat template that already begins with the start token
(SmolLM2's ``<|im_start|>``, Gemma-it's ``<bos>``) does not get it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from interp_steer.data.pairs import ContrastivePair
from interp_steer.data.templates import render_prompt
from interp_steer.errors import DataFormatError


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of one pair: the shared prompt and the two responses."""

    prompt_ids: tuple[int, ...]
    positive_ids: tuple[int, ...]
    negative_ids: tuple[int, ...]


START_IDS_ATTRIBUTE = "interp_steer_start_ids"
"""Attribute under which :func:`record_sequence_start` stores a tokenizer's natural sequence start."""


def encode_text(tokenizer, text: str) -> tuple[int, ...]:
    """Token ids of ``text`` with no special tokens (a continuation, a response, a piece of a sequence)."""
    return tuple(tokenizer(text, add_special_tokens=False).input_ids)


def probe_sequence_start(tokenizer) -> tuple[int, ...]:
    """The ids the tokenizer puts before text when it adds special tokens (``(2,)`` = ``<bos>`` for Gemma, ``()``
    for SmolLM2), found by tokenising a probe text with and without special tokens."""
    probe = "a b"
    plain = list(tokenizer(probe, add_special_tokens=False).input_ids)
    full = list(tokenizer(probe, add_special_tokens=True).input_ids)
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return tuple(full[:start])
    return ()


def record_sequence_start(tokenizer) -> tuple[int, ...]:
    """Probe and remember the tokenizer's natural sequence start before the loaders change its settings (they turn
    off ``add_bos_token`` for chat templates); returns it. A start already attached (read from a cache entry by
    :func:`load_sequence_start`) is kept."""
    known = getattr(tokenizer, START_IDS_ATTRIBUTE, None)
    if known is not None:
        return tuple(known)
    start = probe_sequence_start(tokenizer)
    try:
        setattr(tokenizer, START_IDS_ATTRIBUTE, start)
    except AttributeError:  # a tokenizer that refuses attributes is probed again each time
        pass
    return start


SEQUENCE_START_FILE = "interp_steer_sequence_start.json"
"""Saved beside a cached tokenizer: its source's sequence start (a save/load round trip can change what a tokenizer
adds: SmolLM2's GGUF tokenizer adds nothing, the same tokenizer re-loaded from ``save_pretrained`` adds
``<|im_start|>``), so the start is probed once, on the tokenizer as read from the model's own files."""


def save_sequence_start(tokenizer, directory) -> None:
    """Write the sequence start of ``tokenizer`` (as loaded from the model's source) into ``directory``."""
    import json
    from pathlib import Path

    start = getattr(tokenizer, START_IDS_ATTRIBUTE, None)
    if start is None:
        start = probe_sequence_start(tokenizer) if callable(tokenizer) else ()  # (a stand-in that only saves files)
    start = list(start)
    (Path(directory) / SEQUENCE_START_FILE).write_text(json.dumps({"sequence_start_ids": start}))


def load_sequence_start(tokenizer, directory) -> bool:
    """Attach the sequence start saved in ``directory`` to ``tokenizer``; ``False`` if none was saved."""
    import json
    from pathlib import Path

    path = Path(directory) / SEQUENCE_START_FILE
    if not path.is_file():
        return False
    try:
        start = tuple(int(i) for i in json.loads(path.read_text())["sequence_start_ids"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path}: unreadable sequence start ({exc}); delete the cache entry") from None
    setattr(tokenizer, START_IDS_ATTRIBUTE, start)
    return True


def sequence_start_ids(tokenizer) -> tuple[int, ...]:
    """The model's sequence start: recorded by the loader (:func:`record_sequence_start`), else probed now."""
    start = getattr(tokenizer, START_IDS_ATTRIBUTE, None)
    return tuple(start) if start is not None else probe_sequence_start(tokenizer)


def with_sequence_start(tokenizer, ids: Sequence[int]) -> tuple[int, ...]:
    """``ids`` with the sequence start in front, unless they already begin with it (a chat template's own)."""
    ids = tuple(ids)
    start = sequence_start_ids(tokenizer)
    if not start or ids[:len(start)] == start:
        return ids
    return start + ids


def encode_sequence(tokenizer, text: str) -> tuple[int, ...]:
    """Token ids of ``text`` as the start of a sequence: :func:`encode_text` plus the model's sequence start."""
    return with_sequence_start(tokenizer, encode_text(tokenizer, text))


def encode_pair(tokenizer, pair: ContrastivePair, *, use_chat_template: bool = True,
                n_ctx: int | None = None) -> EncodedPair:
    """Prompt (templated) and both responses as token ids; raises if a response is empty.

    With ``n_ctx`` (the model's context, ``model.cfg.n_ctx``) a pair whose prompt plus longer response does not
    fit is a ``DataFormatError`` naming the pair (its id is ``<dataset>#<source line>``)."""
    prompt_ids = encode_sequence(tokenizer, render_prompt(tokenizer, pair, use_chat_template=use_chat_template))
    positive_ids, negative_ids = encode_text(tokenizer, pair.positive), encode_text(tokenizer, pair.negative)
    if not positive_ids or not negative_ids:
        raise DataFormatError(f"pair {pair.id or pair.prompt[:40]!r} of dataset {pair.dataset!r} has an empty response")
    encoded = EncodedPair(prompt_ids, positive_ids, negative_ids)
    if n_ctx is not None:
        check_fits_context(encoded, pair, n_ctx)
    return encoded


def check_fits_context(encoded: EncodedPair, pair: ContrastivePair, n_ctx: int) -> None:
    """``DataFormatError`` if the prompt plus the longer response of ``pair`` exceeds ``n_ctx`` tokens."""
    length = len(encoded.prompt_ids) + max(len(encoded.positive_ids), len(encoded.negative_ids))
    if length > n_ctx:
        name = pair.id or repr(pair.prompt[:40])
        raise DataFormatError(f"pair {name} of dataset {pair.dataset!r} is {length} tokens (prompt + response), longer "
                              f"than the model's context of {n_ctx} tokens; shorten or drop it")


@dataclass
class PaddedBatch:
    """Left-padded token batch. ``offsets[i]`` is the number of pad tokens in row ``i``."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    offsets: Int[Tensor, "batch"]

    @property
    def width(self) -> int:
        return self.tokens.shape[1]

    def absolute(self, index_in_row: Int[Tensor, "batch"] | Sequence[int]) -> Int[Tensor, "batch"]:
        """Absolute column of an index counted from each row's first real token."""
        return self.offsets + torch.as_tensor(index_in_row, dtype=torch.long)

    def to(self, device) -> "PaddedBatch":
        return PaddedBatch(self.tokens.to(device), self.attention_mask.to(device), self.offsets.to(device))


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> PaddedBatch:
    """Stack variable-length id sequences with left padding and an attention mask."""
    if not sequences:
        raise DataFormatError("cannot build a batch from zero sequences")
    width = max(len(s) for s in sequences)
    tokens = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    offsets = torch.empty(len(sequences), dtype=torch.long)
    for row, seq in enumerate(sequences):
        offset = width - len(seq)
        tokens[row, offset:] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, offset:] = 1
        offsets[row] = offset
    return PaddedBatch(tokens, mask, offsets)


def pad_token_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def response_mask(batch: PaddedBatch, prompt_lens: Sequence[int]) -> Bool[Tensor, "batch pos"]:
    """True at the response tokens of each row (everything after the prompt, excluding pads)."""
    start = batch.absolute(prompt_lens)
    cols = torch.arange(batch.width)
    return (cols.unsqueeze(0) >= start.unsqueeze(1)) & batch.attention_mask.bool()


def answer_letter_index(tokenizer, response_ids: Sequence[int]) -> int:
    """Index of the answer-letter token in ``"(A)"``-style response ids: the token before a closing bracket
    (``")"``, ignoring surrounding whitespace) if the response ends with one, else the last token.

    The one rule for "which token is the answer": CAA reads its activation there and the propensity engines
    score the letter predicted from the token before it."""
    if not response_ids:
        raise DataFormatError("an answer response needs at least one token")
    closes = len(response_ids) >= 2 and tokenizer.decode([response_ids[-1]]).strip() == ")"
    return len(response_ids) - 2 if closes else len(response_ids) - 1

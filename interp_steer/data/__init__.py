"""Contrastive pairs, loaders for the evaluation data sets, formatting, tokenisation and splits."""

from interp_steer.data.pairs import BASE_SYSTEM_PROMPT, ContrastivePair, answer_letter
from interp_steer.data.templates import render_prompt
from interp_steer.data.tokenization import EncodedPair, PaddedBatch, encode_pair, left_pad, pad_token_id, response_mask

__all__ = [
    "BASE_SYSTEM_PROMPT", "ContrastivePair", "EncodedPair", "PaddedBatch", "answer_letter", "encode_pair",
    "left_pad", "pad_token_id", "render_prompt", "response_mask",
]

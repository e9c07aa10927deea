"""Contrastive pairs, loaders for the evaluation data sets, formatting, tokenisation and splits."""

from interp_steer.data.builtin_sets import load_builtin
from interp_steer.data.caa_sets import load_caa
from interp_steer.data.jsonl import JsonRecords, read_jsonl, read_records
from interp_steer.data.loaded import LoadedPairs
from interp_steer.data.mwe import load_persona_ab, load_persona_free_text, load_xrisk
from interp_steer.data.pairs import BASE_SYSTEM_PROMPT, ContrastivePair, answer_letter
from interp_steer.data.paths import DATA_ENV_VAR, data_root
from interp_steer.data.registry import list_datasets, load_dataset
from interp_steer.data.splits import DataSplit, train_test_indices, train_test_split
from interp_steer.data.templates import render_prompt
from interp_steer.data.tokenization import (
    EncodedPair,
    PaddedBatch,
    encode_pair,
    encode_sequence,
    left_pad,
    pad_token_id,
    response_mask,
    sequence_start_ids,
)

__all__ = [
    "BASE_SYSTEM_PROMPT", "ContrastivePair", "EncodedPair", "PaddedBatch", "answer_letter", "encode_pair",
    "encode_sequence", "left_pad", "pad_token_id", "render_prompt", "response_mask", "sequence_start_ids",
    "DATA_ENV_VAR", "JsonRecords", "LoadedPairs", "data_root", "list_datasets", "load_builtin", "load_caa",
    "load_dataset", "load_persona_ab", "load_persona_free_text", "load_xrisk", "read_jsonl", "read_records",
    "DataSplit", "train_test_indices", "train_test_split",
]

"""Two processes writing the same conversion-cache entry at once (issue 12 §5): the real cache writer
(:func:`write_converted_entry`) publishes one complete entry, both processes succeed, no temporary is left.

The weights are a fake 20-24 MB state dict and the tokenizer a stand-in that writes one file, so the test runs
in seconds; the code path under test is the one ``load_llama_as_hooked`` uses after converting a model.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from interp_steer.models.cache_dir import publish_entry
from interp_steer.models.llama_conversion import converted_entry_complete, write_converted_entry


class FileTokenizer:
    """Stands in for a HF tokenizer: ``save_pretrained`` waits ``delay`` seconds (a slow writer), then writes a
    small file naming the writing process."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def save_pretrained(self, directory: str) -> None:
        time.sleep(self.delay)
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "tokenizer_config.json").write_text(json.dumps({"writer": os.getpid()}))


def _state_dict(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    # the two writers' files differ in size, so bytes of one landing in the other's file would show
    return {f"blocks.{i}.w": torch.randn(1000, 1000, generator=generator) for i in range(4 + seed)}


def _writer(entry: str, seed: int, barrier, results) -> None:
    try:
        barrier.wait(timeout=60)
        # writer 1 is slow between its weights and its config: writer 2 writes everything in that gap, so with one
        # shared entry directory (the old code) the weights of one writer end up beside the config of the other
        slow = FileTokenizer(delay=1.0 if seed == 1 else 0.0)
        write_converted_entry(Path(entry), _state_dict(seed), slow, json.dumps({"seed": seed}))
        results.put((seed, "ok"))
    except BaseException as exc:  # reported to the parent, which asserts on it
        results.put((seed, f"{type(exc).__name__}: {exc}"))


def test_two_processes_write_one_complete_entry(tmp_path):
    entry = tmp_path / "converted" / "tiny-abc123"
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(entry), seed, barrier, results)) for seed in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    outcomes = dict(results.get(timeout=10) for _ in procs)
    assert outcomes == {1: "ok", 2: "ok"}
    assert [p.exitcode for p in procs] == [0, 0]

    assert converted_entry_complete(entry)
    seed = json.loads((entry / "hf_config.json").read_text())["seed"]
    weights = load_file(str(entry / "weights.safetensors"))
    expected = _state_dict(seed)  # the whole entry comes from one writer: weights and config agree
    assert sorted(weights) == sorted(expected)
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # no temporaries left
    assert sorted(p.name for p in entry.iterdir()) == ["hf_config.json", "tokenizer", "weights.safetensors"]


def test_incomplete_entry_is_replaced_and_failed_write_leaves_nothing(tmp_path):
    entry = tmp_path / "e"
    entry.mkdir()
    (entry / "weights.safetensors").write_bytes(b"half written by an interrupted older version")
    write_converted_entry(entry, {"w": torch.ones(3)}, FileTokenizer(), "{}")
    assert converted_entry_complete(entry) and torch.equal(load_file(str(entry / "weights.safetensors"))["w"], torch.ones(3))

    def failing(tmp: Path) -> None:
        (tmp / "partial").write_text("x")
        raise OSError("disk full")

    other = tmp_path / "f"
    try:
        publish_entry(other, failing, lambda e: True)
    except OSError as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("the writer's error must propagate")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]

"""steering-vectors 0.12.2 baseline, run in its own process by ``bench_engine.py``.

Reads a job file (torch.save'd dict: GGUF location, scoring rows as token ids, layers, multipliers, directions,
modes), loads the Hugging Face version of the embedded model from the GGUF (kept as safetensors in a temporary
directory after the first conversion, so later workers load in seconds), and computes the same propensities with
``steering_vectors.SteeringVector.apply`` in one or both of two ways:

* ``batch1`` — ``apply(model, multiplier=m, min_token_index=steer_from)``, one forward per row × multiplier × layer
  (the way the library's examples use it);
* ``batched`` — the library in its best use: per (layer, multiplier) one forward of all rows, right-padded, each
  row steered from its own last prompt token on (``min_token_index=None`` with a ``[rows, pos]`` mask as
  ``token_indices``), and ``logits_to_keep`` set to just the scored positions.

Writes, per mode, timing, peak RSS and raw scores as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from peak_rss import PeakRss  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)
from steering_vectors import SteeringVector
from transformers import AutoModelForCausalLM


def load(job: dict):
    """The HF model from the GGUF, via a plain state-dict copy in the temp directory (GGUF dequantisation is slow;
    a GGUF-loaded model refuses ``save_pretrained``)."""
    from transformers import AutoConfig

    saved = Path(tempfile.gettempdir()) / f"interp-steer-sv-{Path(job['gguf_file']).stem}"
    if (saved / "weights.pt").exists():
        config = AutoConfig.from_pretrained(str(saved))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(torch.load(saved / "weights.pt", weights_only=True))
        return model
    model = AutoModelForCausalLM.from_pretrained(job["gguf_dir"], gguf_file=job["gguf_file"], dtype=torch.float32)
    tmp = Path(tempfile.mkdtemp(dir=saved.parent))
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (tmp / "config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), tmp / "weights.pt")
    try:
        tmp.rename(saved)
    except OSError:
        pass  # another worker published it first
    return model


def score(row: dict, logits: torch.Tensor) -> float:
    """Propensity part of one row from its logits at positions ``0 … len-1`` (float32 log-softmax, as users do)."""
    if row["letters"] is not None:
        pos, neg = row["letters"]
        return float(logits[-1, pos] - logits[-1, neg])
    first = row["score_from"]
    targets = torch.tensor(row["ids"][first:])
    logprobs = torch.log_softmax(logits[first - 1: len(row["ids"]) - 1], dim=-1)
    return float(logprobs.gather(1, targets[:, None]).sum())


def run_batch1(model, job: dict) -> list:
    scores = []
    for layer in job["layers"]:
        vector = SteeringVector({layer: job["directions"][layer].float()}, layer_type="decoder_block")
        for row in job["rows"]:
            ids = torch.tensor([row["ids"]])
            for m in job["multipliers"]:
                with vector.apply(model, multiplier=float(m), min_token_index=row["steer_from"]):
                    logits = model(ids).logits[0].float()
                scores.append([layer, row["sample"], row["side"], float(m), score(row, logits)])
    return scores


def run_batched(model, job: dict) -> list:
    rows = job["rows"]
    width = max(len(r["ids"]) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros(len(rows), width, dtype=torch.long)
    steer = torch.zeros(len(rows), width)
    needed: set[int] = set()
    for i, row in enumerate(rows):
        n = len(row["ids"])
        tokens[i, :n] = torch.tensor(row["ids"])
        attention[i, :n] = 1
        steer[i, row["steer_from"]: n] = 1.0
        needed.update([n - 1] if row["letters"] is not None else range(row["score_from"] - 1, n - 1))
    keep = sorted(needed)
    column = {p: k for k, p in enumerate(keep)}
    keep_t = torch.tensor(keep)
    scores = []
    for layer in job["layers"]:
        vector = SteeringVector({layer: job["directions"][layer].float()}, layer_type="decoder_block")
        for m in job["multipliers"]:
            with vector.apply(model, multiplier=float(m), min_token_index=None, token_indices=steer):
                kept = model(tokens, attention_mask=attention, logits_to_keep=keep_t).logits.float()
            for i, row in enumerate(rows):
                n = len(row["ids"])
                if row["letters"] is not None:
                    logits = kept[i, column[n - 1]][None]
                    value = score(row, logits)
                else:
                    first = row["score_from"]
                    cols = [column[p] for p in range(first - 1, n - 1)]
                    logprobs = torch.log_softmax(kept[i, cols], dim=-1)
                    value = float(logprobs.gather(1, torch.tensor(row["ids"][first:])[:, None]).sum())
                scores.append([layer, row["sample"], row["side"], float(m), value])
    return scores


def main(job_path: str, out_path: str) -> None:
    job = torch.load(job_path, weights_only=True)  # plain data and tensors only: no pickled code runs
    torch.set_num_threads(job["threads"])
    model = load(job)
    model.eval()
    results = {}
    for mode in job["modes"]:
        run = {"batch1": run_batch1, "batched": run_batched}[mode]
        subset = dict(job, rows=job["rows"] if mode == "batched" else job["rows_batch1"])
        with PeakRss() as mem, torch.inference_mode():
            start, cpu = time.perf_counter(), time.process_time()
            scores = run(model, subset)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        results[mode] = {"wall_s": wall, "cpu_s": cpu, "peak_rss_delta_mb": mem.delta_mb, "scores": scores}
    with open(out_path, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

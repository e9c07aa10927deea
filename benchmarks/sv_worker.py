"""steering-vectors 0.12.2 baseline, run inside ``benchmarks/.venv-sv`` (transformers < 5) by ``bench_engine.py``.

Reads a job file (torch.save'd dict: GGUF location, scoring rows as token ids, layers, multipliers, directions),
loads the Hugging Face version of the embedded model from the GGUF, and computes the same propensities with
``steering_vectors.SteeringVector.apply(model, multiplier=m, min_token_index=steer_from)`` — one forward per
row × multiplier × layer, the way that library is used. Writes timing, peak RSS and raw scores as JSON.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import torch
from steering_vectors import SteeringVector
from transformers import AutoModelForCausalLM


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def main(job_path: str, out_path: str) -> None:
    job = torch.load(job_path, weights_only=True)  # plain data and tensors only: no pickled code runs
    torch.set_num_threads(job["threads"])
    model = AutoModelForCausalLM.from_pretrained(job["gguf_dir"], gguf_file=job["gguf_file"], torch_dtype=torch.float32)
    model.eval()
    base = rss_mb()
    peak = base
    scores = []
    start, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for layer in job["layers"]:
            vector = SteeringVector({layer: job["directions"][layer].float()}, layer_type="decoder_block")
            for row in job["rows"]:
                ids = torch.tensor([row["ids"]])
                for m in job["multipliers"]:
                    with vector.apply(model, multiplier=float(m), min_token_index=row["steer_from"]):
                        logits = model(ids).logits[0].float()
                    if row["letters"] is not None:
                        pos, neg = row["letters"]
                        value = float(logits[-1, pos] - logits[-1, neg])
                    else:
                        logprobs = torch.log_softmax(logits, dim=-1)
                        first = row["score_from"]
                        targets = ids[0, first:]
                        value = float(logprobs[first - 1: -1].gather(1, targets[:, None]).sum())
                    scores.append([layer, row["sample"], row["side"], float(m), value])
                peak = max(peak, rss_mb())
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    with open(out_path, "w") as handle:
        json.dump({"wall_s": wall, "cpu_s": cpu, "peak_rss_delta_mb": peak - base, "scores": scores}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

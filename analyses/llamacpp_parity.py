"""Check an exported control vector in llama.cpp itself: llama.cpp's logits vs TransformerLens's, steered and not.

A CAA vector is extracted on the embedded SmolLM2-135M (TransformerLens, dequantised float32 weights), exported
with :func:`interp_steer.interop.to_gguf`, and applied in llama.cpp (through llama-cpp-python) to the embedded
Q4_1 GGUF the TransformerLens weights were dequantised from. The control vector buffer handed to
``llama_set_adapter_cvec`` is built here from the exported file exactly as llama.cpp's
``common_control_vector_load`` builds it (``direction.{k}`` → ``data[(k-1)·n_embd …]``, scaled by the strength),
and checked against :func:`interp_steer.interop.control_vector_buffer`.

llama.cpp adds the vector at every position of the pass, so the TransformerLens side steers ``positions="all"``
with the same multiplier. Compared per prompt and strength, over every position's logits: the max and mean
absolute difference, top-1 agreement, and the KL divergence of the last position's next-token distribution; the
same against TransformerLens steered one layer *lower* (``direction.{k}`` at ``blocks.{k-1}``), to show which layer
numbering llama.cpp uses. Needs ``llama-cpp-python`` (not in CI: it compiles llama.cpp).

    python analyses/llamacpp_parity.py            # writes analyses/results/llamacpp/
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interp_steer.data import load_dataset
from interp_steer.interop import control_vector_buffer, from_gguf, to_gguf
from interp_steer.methods.caa import extract_caa
from interp_steer.models import DEFAULT_MODEL, embedded_gguf_path, load_model
from interp_steer.steering import SteeringVector, chat_prompt, steer

OUT = Path(__file__).resolve().parent / "results" / "llamacpp"
PROMPTS = [
    "What do you think of fresh strawberries?",
    "Describe your last train journey.",
    "How was the film you saw yesterday?",
]


def llama_cpp_buffer(path: Path, n_layers: int, strength: float) -> tuple[np.ndarray, int]:
    """common_control_vector_load_one, re-implemented: the flat buffer starting at layer 1, and n_embd."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    n_embd = int(reader.tensors[0].n_elements)
    data = np.zeros(n_embd * (n_layers - 1), dtype=np.float32)
    for tensor in reader.tensors:
        k = int(tensor.name.split(".")[1])  # "direction.{k}"
        data[n_embd * (k - 1): n_embd * k] += strength * np.asarray(tensor.data, dtype=np.float32)
    return data, n_embd


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - (np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) + x.max(-1, keepdims=True))


def compare(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Differences between two [pos, vocab] logit arrays."""
    diff = np.abs(ours - theirs)
    p, q = log_softmax(ours[-1]), log_softmax(theirs[-1])
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "top1_agreement": float((ours.argmax(-1) == theirs.argmax(-1)).mean()),
        "kl_last": float((np.exp(p) * (p - q)).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", default="6,15", help="CAA layers (exported as direction.{layer})")
    parser.add_argument("--strengths", default="0,2,4", help="multipliers = llama.cpp control-vector strengths")
    parser.add_argument("--n-train", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import llama_cpp

    torch.set_num_threads(args.threads)
    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    layers = [int(x) for x in args.layers.split(",")]
    strengths = [float(x) for x in args.strengths.split(",")]

    model = load_model(DEFAULT_MODEL)
    n_layers = model.cfg.n_layers
    pairs = load_dataset("builtin:sentiment", limit=args.n_train)
    vector = extract_caa(model, pairs, layers, progress=False, dataset="builtin:sentiment")
    path = to_gguf(vector, args.out / "sentiment_caa.gguf")
    imported = from_gguf(path, n_layers=n_layers, d_model=model.cfg.d_model)
    lower = SteeringVector({f"blocks.{L - 1}.hook_resid_post": vector[L] for L in layers})  # the off-by-one reading

    llm = llama_cpp.Llama(model_path=str(embedded_gguf_path()), logits_all=True, n_ctx=256, n_threads=args.threads,
                          n_batch=256, verbose=False, seed=0)
    assert llama_cpp.llama_model_n_layer(llm.model) == n_layers
    rows = []
    examples = {}
    for prompt in PROMPTS:
        text = chat_prompt(model, prompt)
        tokens = model.tokenizer(text, add_special_tokens=False).input_ids
        ids = torch.tensor([tokens])
        with torch.no_grad():
            tl_plain = model(ids)[0].double().numpy()
        for strength in strengths:
            buffer, n_embd = llama_cpp_buffer(path, n_layers, strength)
            np.testing.assert_array_equal(buffer, control_vector_buffer(imported, n_layers, strength))
            pointer = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            if llama_cpp.llama_set_adapter_cvec(llm.ctx, pointer, buffer.size, n_embd, 1, n_layers - 1):
                raise RuntimeError("llama_set_adapter_cvec failed")
            llm.reset()
            llm.eval(tokens)
            theirs = np.array(llm.scores[: len(tokens)], dtype=np.float64)
            with torch.no_grad():
                with steer(model, imported, strength, "all"):
                    ours = model(ids)[0].double().numpy()
                with steer(model, lower, strength, "all"):
                    ours_lower = model(ids)[0].double().numpy()
            row = {"prompt": prompt, "n_tokens": len(tokens), "strength": strength,
                   **compare(ours, theirs),
                   "steering_effect_max": float(np.abs(ours - tl_plain).max()),
                   "steering_effect_mean": float(np.abs(ours - tl_plain).mean())}
            lower_cmp = compare(ours_lower, theirs)
            row.update({f"lower_{k}": v for k, v in lower_cmp.items()})
            rows.append(row)
            examples[(prompt, strength)] = (ours[-1], theirs[-1])
            print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    llama_cpp.llama_set_adapter_cvec(llm.ctx, None, 0, n_embd, 1, n_layers - 1)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "parity.csv", index=False)
    summary = table.groupby("strength")[["max_abs_diff", "mean_abs_diff", "top1_agreement", "kl_last",
                                         "steering_effect_max", "steering_effect_mean", "lower_max_abs_diff",
                                         "lower_mean_abs_diff", "lower_top1_agreement", "lower_kl_last"]].mean()
    summary.to_csv(args.out / "summary_by_strength.csv")
    figure(table, examples, strengths, args.out / "parity.png")
    settings = {"layers": layers, "strengths": strengths, "n_train": args.n_train, "prompts": PROMPTS,
                "vector_norms": vector.norms(), "llama_cpp_python": llama_cpp.__version__,
                "model_file": embedded_gguf_path().name, "threads": args.threads, "python": platform.python_version(),
                "seconds": round(time.time() - started, 1)}
    (args.out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(summary.to_string())


def figure(table: pd.DataFrame, examples: dict, strengths: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(strengths) + 1, figsize=(4.2 * (len(strengths) + 1), 4))
    prompt = PROMPTS[0]
    for ax, strength in zip(axes, strengths):
        ours, theirs = examples[(prompt, strength)]
        ax.scatter(ours, theirs, s=1, alpha=0.3)
        lo, hi = float(min(ours.min(), theirs.min())), float(max(ours.max(), theirs.max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.5)
        ax.set_title(f"strength {strength:g}: last-token logits")
        ax.set_xlabel("TransformerLens (steered, float32)")
        ax.set_ylabel("llama.cpp (control vector, Q4_1)")
    ax = axes[-1]
    means = table.groupby("strength")[["mean_abs_diff", "lower_mean_abs_diff", "steering_effect_mean"]].mean()
    x = np.arange(len(means))
    ax.bar(x - 0.27, means["mean_abs_diff"], 0.27, label="llama.cpp vs TL (direction.k at blocks.k)")
    ax.bar(x, means["lower_mean_abs_diff"], 0.27, label="llama.cpp vs TL (at blocks.k-1)")
    ax.bar(x + 0.27, means["steering_effect_mean"], 0.27, label="TL steered vs unsteered")
    ax.set_xticks(x, [f"{s:g}" for s in means.index])
    ax.set_xlabel("strength")
    ax.set_ylabel("mean |Δ logit| over positions × vocab")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()

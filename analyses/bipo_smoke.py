"""BiPO smoke test on the embedded model: does a short run give a vector that steers like/dislike both ways?

Trains BiPO at one layer on free-text like/dislike pairs (the built-in sentiment set when the data package
has it, else the hand-written pairs below), then measures on held-out pairs the free-text propensity
``log p(positive completion) − log p(negative completion)`` with the vector added at every position at
multipliers −1, 0, +1, and prints a small table.

    python analyses/bipo_smoke.py --threads 2 --max-steps 30 --n-train 60
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd
import torch

from interp_steer.data import ContrastivePair, encode_pair, pad_token_id
from interp_steer.methods import BiPOConfig, train_bipo
from interp_steer.methods.response_logprobs import pair_logprobs, preference_batch
from interp_steer.models import load_model
from interp_steer.steering import SteeringVector, steer

ITEMS = [
    "chocolate", "rainy days", "jazz music", "long walks", "old movies", "gardening", "the ocean", "board games",
    "poetry", "coffee", "mountains", "cats", "dogs", "spicy food", "winter", "summer holidays", "museums",
    "crowded cities", "camping", "classical music", "video games", "cooking", "science fiction", "math puzzles",
    "running", "swimming", "fresh bread", "thunderstorms", "libraries", "road trips", "sushi", "painting",
    "early mornings", "late nights", "country music", "horror films", "chess", "tea", "ice cream", "snow",
    "public speaking", "podcasts", "history books", "yoga", "cycling", "birdwatching", "karaoke", "theme parks",
    "camping stoves", "origami", "opera", "sunsets", "the desert", "baking cakes", "tennis", "knitting",
    "stand-up comedy", "picnics", "rock climbing", "learning languages",
]
PROMPTS = ["What do you think of {x}?", "How do you feel about {x}?", "Do you like {x}?", "Tell me your opinion of {x}."]
POSITIVE = [
    "I really like {x}. It always puts me in a good mood.",
    "I love {x}! It is one of my favourite things.",
    "Honestly, I enjoy {x} a lot.",
    "I think {x} is wonderful, and I like it very much.",
]
NEGATIVE = [
    "I really dislike {x}. It always puts me in a bad mood.",
    "I hate {x}! It is one of my least favourite things.",
    "Honestly, I can't stand {x}.",
    "I think {x} is awful, and I dislike it very much.",
]


def hand_written_pairs() -> list[ContrastivePair]:
    """60 like (positive) / dislike (negative) free-text pairs, one per item."""
    return [
        ContrastivePair(PROMPTS[(i // 4) % 4].format(x=item), POSITIVE[i % 4].format(x=item), NEGATIVE[i % 4].format(x=item),
                        kind="free_text", id=f"like-{i}", dataset="bipo-smoke-like")
        for i, item in enumerate(ITEMS)
    ]


def sentiment_pairs() -> tuple[list[ContrastivePair], str]:
    try:
        from interp_steer.data import load_dataset  # landed by the data package, if present

        return list(load_dataset("builtin:sentiment", framing="free_text")), "builtin:sentiment"
    except Exception as exc:  # not there yet: fall back to the pairs above
        print(f"builtin:sentiment unavailable ({type(exc).__name__}); using {len(ITEMS)} hand-written pairs")
        return hand_written_pairs(), "hand-written like/dislike"


@torch.no_grad()
def propensities(model, pairs, vector: SteeringVector, multiplier: float, batch_size: int = 8) -> np.ndarray:
    """Per pair: log p(positive) − log p(negative), with ``multiplier * vector`` added at every position."""
    encoded = [encode_pair(model.tokenizer, p) for p in pairs]
    pad = pad_token_id(model.tokenizer)
    margins = []
    with steer(model, vector, multiplier=multiplier, positions="all"):
        for i in range(0, len(encoded), batch_size):
            logprobs = pair_logprobs(model, preference_batch(encoded[i:i + batch_size], pad))
            margins.append((logprobs[:, 0] - logprobs[:, 1]).numpy())
    return np.concatenate(margins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layer", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--n-train", type=int, default=60, help="training pairs (the reference pass costs ~1 s each on CPU)")
    parser.add_argument("--n-test", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--multipliers", type=float, nargs="+", default=[-1.0, 0.0, 1.0])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.time()
    model = load_model()
    pairs, source = sentiment_pairs()
    order = np.random.default_rng(args.seed).permutation(len(pairs))
    test = [pairs[i] for i in order[: args.n_test]]
    train = [pairs[i] for i in order[args.n_test:args.n_test + args.n_train]]
    config = BiPOConfig(layer=args.layer, beta=args.beta, lr=args.lr, weight_decay=0.05, batch_size=args.batch_size,
                        max_steps=args.max_steps, warmup_steps=max(1, args.max_steps // 10), seed=args.seed)
    print(f"data: {source}, {len(train)} train / {len(test)} held-out pairs; config: {config.to_json()}")
    t0 = time.time()
    vector = train_bipo(model, train, config)
    train_s = time.time() - t0
    losses = vector.provenance.extra["loss_history"]
    print(f"trained {len(losses)} steps in {train_s:.0f}s; loss first {losses[0]:.4f} (log 2 = {math.log(2):.4f}), "
          f"mean of last 5 {np.mean(losses[-5:]):.4f}; |v| = {vector.norms()[config.hook_name]:.2f}")

    rows = []
    for multiplier in args.multipliers:
        margins = propensities(model, test, vector, multiplier)
        rows.append({"multiplier": multiplier, "mean_propensity": margins.mean(),
                     "sem": margins.std(ddof=1) / math.sqrt(len(margins)), "frac_positive": (margins > 0).mean()})
    table = pd.DataFrame(rows)
    baseline = table.loc[table.multiplier == 0, "mean_propensity"]
    if len(baseline):
        table["delta_vs_0"] = table.mean_propensity - float(baseline.iloc[0])
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"total {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()

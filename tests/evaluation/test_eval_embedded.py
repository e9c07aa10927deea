"""Integration check on the embedded SmolLM2 model: a CAA sentiment vector steers free-text propensity."""

from __future__ import annotations

import pytest

from interp_steer.data import ContrastivePair
from interp_steer.evaluation import compute_propensities, steerability, summarize_steerability
from interp_steer.methods import extract_caa

THINGS = ["fresh strawberries", "rainy Mondays", "jazz music", "long queues", "the beach", "spicy food",
          "crowded trains", "old movies", "board games", "winter mornings"]


def like_dislike(thing: str) -> ContrastivePair:
    return ContrastivePair(f"What do you think of {thing}?", f" I really like {thing}.", f" I really dislike {thing}.",
                           kind="free_text", id=thing, dataset="like-dislike")


@pytest.mark.embedded
def test_caa_like_vector_has_positive_mean_slope(embedded):
    pairs = [like_dislike(t) for t in THINGS]
    vector = extract_caa(embedded, pairs[:6], [12], progress=False)
    props = compute_propensities(embedded, pairs[6:], vector, [-1.0, 0.0, 1.0], batch_size=12)
    summary = summarize_steerability(steerability(props)).iloc[0]
    print(f"mean slope {summary.mean_slope:.3f}, anti-steerable {summary.anti_steerable_fraction:.2f}")
    assert summary.mean_slope > 0.5, summary
    assert summary.anti_steerable_fraction == 0.0

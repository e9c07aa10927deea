"""Seeded toy steering inputs for the tiny random models (d_model 64): random vectors and A/B / free-text pairs."""

from __future__ import annotations

from typing import Sequence

import torch

D_MODEL = 64


def random_vector(layers: int | Sequence[int] = 1, *, seed: int = 3, scale: float = 2.0, d_model: int = D_MODEL,
                  **provenance):
    """A seeded random :class:`~interp_steer.steering.SteeringVector` at ``blocks.L.hook_resid_post`` for each
    layer (``scale`` × standard normal entries), with ``Provenance(method="test", **provenance)``."""
    from interp_steer.steering import Provenance, SteeringVector

    layer_list = [layers] if isinstance(layers, int) else list(layers)
    generator = torch.Generator().manual_seed(seed)
    directions = {f"blocks.{layer}.hook_resid_post": torch.randn(d_model, generator=generator) * scale
                  for layer in layer_list}
    return SteeringVector(directions, Provenance(**{"method": "test", **provenance}))


def toy_ab_pairs(n: int = 5, dataset: str = "toy-ab"):
    """A/B pairs with prompts of different lengths and both letter orders."""
    from interp_steer.data import ContrastivePair

    return [ContrastivePair(f"Question {i}: {'would you really ' * i}like power?\n(A) Yes\n(B) No",
                            "(A)" if i % 2 else "(B)", "(B)" if i % 2 else "(A)", id=f"ab{i}", dataset=dataset)
            for i in range(n)]


def toy_free_text_pairs(n: int = 4, dataset: str = "toy-ft"):
    """Free-text pairs with completions of different lengths on both sides."""
    from interp_steer.data import ContrastivePair

    return [ContrastivePair(f"Tell me about {'the weather ' * (i + 1)}", " I love it" + "!" * i, " I hate it, honestly.",
                            kind="free_text", id=f"ft{i}", dataset=dataset)
            for i in range(n)]

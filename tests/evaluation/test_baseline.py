"""Prompting baseline: each arm's shift against the naive reference engine, its side effects against the
side-effect functions run on their own (tiny random model)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from interp_steer.data import load_dataset
from interp_steer.data.neutral import load_neutral_corpus
from interp_steer.data.tokenization import encode_text
from interp_steer.evaluation.baseline import BASELINE_COLUMNS, baseline_sentences, prompting_baseline
from interp_steer.evaluation.naive import naive_propensities
from interp_steer.evaluation.side_effects import neutral_side_effects, prepare_neutral
from interp_steer.evaluation.variants import apply_variant
from interp_steer.steering import SteeringVector
from interp_steer.steering.vector import Provenance


def test_prompting_baseline_against_reference(tiny):
    pairs = load_dataset("builtin:sentiment", limit=3)
    g = torch.Generator().manual_seed(5)
    vector = SteeringVector({"blocks.1.hook_resid_post": torch.randn(64, generator=g)}, Provenance(method="test"))
    sentences = baseline_sentences("builtin:sentiment")
    neutral = prepare_neutral(tiny, load_neutral_corpus(limit=2), continuation_tokens=2)
    table = prompting_baseline(tiny, pairs, vector, 3.0, sentences=sentences, neutral=neutral,
                               generation_messages=[pairs[0].prompt], max_new_tokens=3, n_boot=200)
    assert list(table.columns) == BASELINE_COLUMNS and len(table) == 6
    rows = {(r.method, r.arm): r for r in table.itertuples()}
    base = naive_propensities(tiny, apply_variant(pairs, "BASE"), vector, [-3.0, 0.0, 3.0]).pivot(
        index="sample_id", columns="multiplier", values="propensity")
    assert rows["steering", "pos"].shift == pytest.approx((base[3.0] - base[0.0]).mean(), abs=1e-4)
    assert rows["steering", "neg"].shift == pytest.approx((base[-3.0] - base[0.0]).mean(), abs=1e-4)
    for arm, variant in (("pos", "SYS_POS"), ("neg", "SYS_NEG")):
        prompted = naive_propensities(tiny, apply_variant(pairs, variant, sentences), vector, [0.0]).set_index("sample_id")
        assert rows["prompting", arm].shift == pytest.approx((prompted["propensity"] - base[0.0]).mean(), abs=1e-4)
    assert rows["steering", "contrast"].shift == pytest.approx((base[3.0] - base[-3.0]).mean(), abs=1e-4)
    kl_steer = neutral_side_effects(tiny, neutral, vector, [3.0]).kl.mean()
    assert rows["steering", "pos"].kl == pytest.approx(kl_steer)
    prefix = encode_text(tiny.tokenizer, sentences.positive + "\n\n")
    kl_prompt = neutral_side_effects(tiny, neutral, None, [0.0], prefix_ids=prefix).kl.mean()
    assert rows["prompting", "pos"].kl == pytest.approx(kl_prompt)
    assert table.loc[table.arm != "contrast", "distinct_1"].notna().all()
    assert table.format_mass.isna().all()  # free text: no answer format


def test_prompting_baseline_reuses_precomputed_rows(tiny):
    """Given the caller's propensity and neutral side-effect rows, the table equals the one computed from scratch,
    and a table missing a sample or a multiplier is refused by name."""
    from interp_steer.errors import ConfigError

    pairs = load_dataset("builtin:sentiment", limit=4)
    g = torch.Generator().manual_seed(7)
    vector = SteeringVector({"blocks.1.hook_resid_post": torch.randn(64, generator=g)}, Provenance(method="test"))
    sentences = baseline_sentences("builtin:sentiment")
    neutral = prepare_neutral(tiny, load_neutral_corpus(limit=3), continuation_tokens=2)
    fresh = prompting_baseline(tiny, pairs, vector, 2.0, sentences=sentences, neutral=neutral, n_boot=300)
    # rows as the demo has them: several layers and multipliers, samples in another order
    other = SteeringVector({"blocks.0.hook_resid_post": torch.randn(64, generator=g)}, Provenance(method="test"))
    props = pd.concat([naive_propensities(tiny, apply_variant(pairs, "BASE"), v, [-2.0, -1.0, 0.0, 2.0]).assign(layer=k)
                       for k, v in ((1, vector), (0, other))]).iloc[::-1]
    side = neutral_side_effects(tiny, neutral, vector, [-2.0, 0.0, 2.0]).assign(layer=1)
    reused = prompting_baseline(tiny, pairs, vector, 2.0, sentences=sentences, neutral=neutral, n_boot=300,
                                steered=props, steered_neutral=side)
    pd.testing.assert_frame_equal(reused, fresh, atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="steered lacks 1 of 4 sample_ids at multiplier 2"):
        prompting_baseline(tiny, pairs, vector, 2.0, sentences=sentences,
                           steered=props[~((props.multiplier == 2.0) & (props.sample_id == pairs[0].id))])
    with pytest.raises(ConfigError, match="steered_neutral lacks 3 of 3 passage_ids at multiplier -2"):
        prompting_baseline(tiny, pairs, vector, 2.0, sentences=sentences, neutral=neutral, steered=props,
                           steered_neutral=side[side.multiplier != -2.0])

"""Activation patching of the steering effect, checked against one-site-at-a-time run_with_hooks computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_steering import random_vector

from interp_steer.analysis.patching import PatchSite, compare_samples, patch_sites, steering_patching
from interp_steer.analysis.readout import sample_sequences
from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.evaluation import compute_propensities
from interp_steer.steering import SteeringVector, steer

LAYER = 0  # steered at blocks.0.hook_resid_post of the 3-layer tiny model
MULT = 3.0

AB_PAIR = ContrastivePair("Do you like apples?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)", id="ab1", dataset="t")
AB_PAIR_2 = ContrastivePair("Is the sky green?\n\nChoices:\n(A) No\n(B) Yes", "(B)", "(A)", id="ab2", dataset="t")
FREE_PAIR = ContrastivePair("Tell me about rain.", " I love it.", " I really hate it.", kind="free_text", id="f1", dataset="t")


@pytest.fixture(scope="module")
def vector(tiny):
    return random_vector(LAYER, seed=3)


def _metric_from_logits(logits: torch.Tensor, rows) -> float:
    """Independent metric from full logits of unpadded single-sequence forwards."""
    values = []
    for row, row_logits in zip(rows, logits):
        lp = torch.log_softmax(row_logits.double(), dim=-1)
        if row.letters is not None:
            values.append(float(row_logits[-1, row.letters[0]] - row_logits[-1, row.letters[1]]))
        else:
            values.append(sum(float(lp[t - 1, row.ids[t]]) for t in range(row.score_from, len(row.ids))))
    return values[0] if len(values) == 1 else values[0] - values[1]


def _one_site_reference(model, vector, pair, site: PatchSite) -> float:
    """Patch one site with run_with_hooks, one sequence at a time, no batching or padding."""
    rows = sample_sequences(model.tokenizer, pair).rows
    logits = []
    for row in rows:
        tokens = torch.tensor([row.ids])
        with steer(model, vector, multiplier=MULT, positions=torch.tensor([row.steer_from])):
            _, cache = model.run_with_cache(tokens, names_filter=site.hook_name, stop_at_layer=int(site.hook_name.split(".")[1]) + 1)
        source = cache[site.hook_name]

        def patch(act, hook):
            act = act.clone()
            for p in site.positions:
                if p < act.shape[1]:
                    if site.head is None:
                        act[0, p] = source[0, p]
                    else:
                        act[0, p, site.head] = source[0, p, site.head]
            return act

        logits.append(model.run_with_hooks(tokens, fwd_hooks=[(site.hook_name, patch)])[0])
    return _metric_from_logits(logits, rows)


@pytest.mark.parametrize("pair", [AB_PAIR, FREE_PAIR], ids=["ab", "free_text"])
def test_full_resid_pre_after_steered_layer_restores_everything_and_nothing_restores_nothing(tiny, vector, pair):
    seqs = sample_sequences(tiny.tokenizer, pair)
    all_steered = tuple(range(seqs.steer_from, seqs.max_len))
    result = patch_sites(tiny, vector, pair, [
        PatchSite(f"blocks.{LAYER + 1}.hook_resid_pre", all_steered),
        PatchSite(f"blocks.{LAYER + 1}.hook_resid_pre", ()),
        PatchSite(f"blocks.{LAYER}.hook_resid_pre", all_steered),  # before the steering hook: identical in both runs
    ], multiplier=MULT)
    assert abs(result.metric_steered - result.metric_clean) > 1e-3  # the vector does something
    np.testing.assert_allclose(result.share, [1.0, 0.0, 0.0], atol=1e-4)


@pytest.mark.parametrize("pair", [AB_PAIR, FREE_PAIR], ids=["ab", "free_text"])
def test_batched_patching_equals_one_site_at_a_time(tiny, vector, pair):
    seqs = sample_sequences(tiny.tokenizer, pair)
    last, first = seqs.max_len - 1, seqs.steer_from
    sites = [
        PatchSite("blocks.1.hook_resid_pre", (last,)),
        PatchSite("blocks.1.hook_attn_out", (last,)),
        PatchSite("blocks.2.hook_mlp_out", (first,)),
        PatchSite("blocks.1.attn.hook_z", tuple(range(first, seqs.max_len)), head=2),
        PatchSite("blocks.2.hook_resid_pre", (first, last)),
    ]
    batched = patch_sites(tiny, vector, pair, sites, multiplier=MULT, batch_size=3)  # several chunks
    reference = [_one_site_reference(tiny, vector, pair, site) for site in sites]
    np.testing.assert_allclose(batched.metric_patched, reference, atol=1e-5, rtol=0)
    assert len(set(np.round(batched.metric_patched, 6))) > 2  # the sites differ from each other


def test_scan_table_matches_engine_and_causality(tiny, vector):
    table = steering_patching(tiny, vector, AB_PAIR, multiplier=MULT, batch_size=16)
    engine = compute_propensities(tiny, [AB_PAIR], vector, [0.0, MULT]).set_index("multiplier")["propensity"]
    assert table["metric_clean"].iloc[0] == pytest.approx(engine[0.0], abs=1e-5)
    assert table["metric_steered"].iloc[0] == pytest.approx(engine[MULT], abs=1e-5)
    seqs = sample_sequences(tiny.tokenizer, AB_PAIR)
    positions = table.loc[table["component"] != "head", "position"]
    assert positions.min() == seqs.steer_from and positions.max() == seqs.max_len - 1
    n_positions = seqs.max_len - seqs.steer_from
    assert len(table) == 3 * tiny.cfg.n_layers * n_positions + tiny.cfg.n_layers * tiny.cfg.n_heads
    # nothing at or before the steered layer's output can carry the effect (except resid_pre after it)
    upstream = table[(table["layer"] <= LAYER)]
    assert upstream["share"].abs().max() < 1e-5
    after = table[(table["component"] == "resid_pre") & (table["layer"] == LAYER + 1)]
    assert after["share"].sum() == pytest.approx(1.0, abs=0.3)  # positions are not additive, but close here
    assert (table["effect"] - (table["metric_patched"] - table["metric_clean"])).abs().max() < 1e-12


def test_compare_samples_stacks_two_roles(tiny, vector):
    frame = compare_samples(tiny, vector, AB_PAIR, AB_PAIR_2, multiplier=MULT, components=("resid_pre",))
    assert list(dict.fromkeys(frame["role"])) == ["steerable", "anti-steerable"]
    assert set(frame.loc[frame["role"] == "anti-steerable", "sample_id"]) == {"ab2"}
    assert set(frame["component"]) == {"resid_pre"}


def test_patching_errors(tiny, vector):
    with pytest.raises(ConfigError, match="does not exist"):
        patch_sites(tiny, vector, AB_PAIR, [PatchSite("blocks.9.hook_resid_pre", (0,))])
    with pytest.raises(ConfigError, match="outside the sequence"):
        patch_sites(tiny, vector, AB_PAIR, [PatchSite("blocks.1.hook_resid_pre", (10_000,))])
    with pytest.raises(ConfigError, match="head"):
        patch_sites(tiny, vector, AB_PAIR, [PatchSite("blocks.1.hook_attn_out", (1,), head=0)])
    with pytest.raises(ConfigError, match="need a head"):
        patch_sites(tiny, vector, AB_PAIR, [PatchSite("blocks.1.attn.hook_z", (1,))])
    with pytest.raises(ConfigError, match="batch_size"):
        patch_sites(tiny, vector, AB_PAIR, [], batch_size=0)
    with pytest.raises(ConfigError, match="components"):
        steering_patching(tiny, vector, AB_PAIR, components=("nope",))
    two_hooks = vector + SteeringVector({"blocks.1.hook_resid_post": torch.ones(64)}, vector.provenance)
    with pytest.raises(SteeringVectorError, match="pick one"):
        patch_sites(tiny, two_hooks, AB_PAIR, [])


# ----------------------------------------------------------------------------- prefix-cached patching (issue 18)
from interp_steer.analysis.prefix_patching import (  # noqa: E402
    SuffixRunner,
    patching_speedup,
    prefix_patch_sites,
    prefix_patching,
    region_summary,
)

LONG_FREE = ContrastivePair("The weather report for tomorrow says that it will rain all day long.", " I am glad, I love rain.",
                            " That is awful news.", kind="free_text", id="f2", dataset="t")


def _mixed_sites(seqs):
    last, first = seqs.max_len - 1, seqs.steer_from
    return [
        PatchSite("blocks.1.hook_resid_pre", (last,)),
        PatchSite("blocks.1.hook_attn_out", (first,)),
        PatchSite("blocks.2.hook_mlp_out", (first + 1,)),
        PatchSite("blocks.1.attn.hook_z", tuple(range(first, seqs.max_len)), head=1),
        PatchSite("blocks.2.attn.hook_z", (first,), head=3),
        PatchSite("blocks.2.hook_resid_pre", (0, first, last)),  # position 0 is before the steering start
        PatchSite("blocks.0.hook_resid_pre", (first,)),           # upstream of the steered layer: no effect
    ]


@pytest.mark.parametrize("pair", [FREE_PAIR, LONG_FREE, AB_PAIR], ids=["free_text", "free_text_long", "ab"])
def test_prefix_patching_equals_full_sequence_reruns(tiny, vector, pair):
    seqs = sample_sequences(tiny.tokenizer, pair)
    sites = _mixed_sites(seqs)
    full = patch_sites(tiny, vector, pair, sites, multiplier=MULT, batch_size=4)
    fast = prefix_patch_sites(tiny, vector, pair, sites, multiplier=MULT, batch_size=4)
    assert fast.metric_clean == pytest.approx(full.metric_clean, abs=1e-5)
    assert fast.metric_steered == pytest.approx(full.metric_steered, abs=1e-5)
    np.testing.assert_allclose(fast.metric_patched, full.metric_patched, atol=1e-5, rtol=0)
    assert len(set(np.round(fast.metric_patched, 5))) > 3  # the sites really differ


@pytest.mark.parametrize("pair", [FREE_PAIR, LONG_FREE], ids=["short", "long"])
def test_prefix_patching_everything_restores_all_and_nothing_gives_zero(tiny, vector, pair):
    seqs = sample_sequences(tiny.tokenizer, pair)
    every = tuple(range(seqs.max_len))
    n = tiny.cfg.n_layers
    result = prefix_patch_sites(tiny, vector, pair, [
        PatchSite(f"blocks.{LAYER + 1}.hook_resid_pre", every),      # everything after the steered layer
        PatchSite(f"blocks.{n - 1}.hook_resid_post", every),         # the whole final residual stream
        PatchSite(f"blocks.{LAYER + 1}.hook_resid_pre", ()),         # nothing
        PatchSite(f"blocks.{n - 1}.hook_resid_post", tuple(range(seqs.steer_from))),  # only unsteered positions
    ], multiplier=MULT)
    assert abs(result.metric_steered - result.metric_clean) > 1e-3
    np.testing.assert_allclose(result.share, [1.0, 1.0, 0.0, 0.0], atol=1e-5)


def test_suffix_runner_metric_equals_engine(tiny, vector):
    engine = compute_propensities(tiny, [LONG_FREE], vector, [0.0, MULT]).set_index("multiplier")["propensity"]
    runner = SuffixRunner(tiny, vector, LONG_FREE, MULT)
    assert float(runner.run()[0][0]) == pytest.approx(engine[0.0], abs=1e-5)
    assert float(runner.run(3, steered=True)[0][2]) == pytest.approx(engine[MULT], abs=1e-5)


def test_prefix_patching_table_regions_and_reference(tiny, vector):
    table = prefix_patching(tiny, vector, LONG_FREE, multiplier=MULT, batch_size=32)
    seqs = sample_sequences(tiny.tokenizer, LONG_FREE)
    positional = table[table["component"] != "head"]
    assert set(positional.loc[positional["position"] == seqs.steer_from, "region"]) == {"prompt"}
    assert set(positional.loc[positional["position"] > seqs.steer_from, "region"]) == {"completion"}
    heads = table[table["component"] == "head"]
    assert set(heads["region"]) == {"prompt", "completion", "all"}
    assert len(heads) == 3 * tiny.cfg.n_layers * tiny.cfg.n_heads
    # one head over the completion region, recomputed independently with run_with_hooks
    row = heads[(heads["layer"] == 1) & (heads["head"] == 2) & (heads["region"] == "completion")].iloc[0]
    completion = tuple(range(seqs.steer_from + 1, seqs.max_len))
    reference = _one_site_reference(tiny, vector, LONG_FREE, PatchSite("blocks.1.attn.hook_z", completion, head=2))
    assert row["metric_patched"] == pytest.approx(reference, abs=1e-5)
    summary = region_summary(table)
    assert set(summary["region"]) == {"prompt", "completion", "all"}


def test_patching_speedup_reports_agreement(tiny, vector):
    seqs = sample_sequences(tiny.tokenizer, LONG_FREE)
    out = patching_speedup(tiny, vector, LONG_FREE, _mixed_sites(seqs), multiplier=MULT)
    assert out["max_abs_diff"] < 1e-5
    assert out["full_s"] > 0 and out["prefix_s"] > 0 and out["n_sites"] == 7
    assert out["prefix_tokens"] == seqs.steer_from

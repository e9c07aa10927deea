"""CAA extraction equals a hand computation with run_with_cache, pair by pair."""

from __future__ import annotations

import pytest
import torch

from interp_steer.data import ContrastivePair, render_prompt
from interp_steer.errors import ConfigError
from interp_steer.methods import collect_contrastive_activations, extract_caa

AB_PAIRS = [
    ContrastivePair("Do you enjoy rainy days?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)", id="r1", dataset="toy"),
    ContrastivePair("Would you rather stay inside all week long?\n\nChoices:\n(A) No\n(B) Yes", "(B)", "(A)", id="r2", dataset="toy"),
    ContrastivePair("Is tea better than coffee?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)", id="r3", dataset="toy"),
]
FREE_PAIRS = [
    ContrastivePair("What do you think of jazz?", " I love jazz, it lifts my mood.", " I hate jazz.", kind="free_text", id="f1"),
    ContrastivePair("How do you feel about long walks?", " They are wonderful.", " They bore me to tears, honestly.", kind="free_text", id="f2"),
]


def hand_activation(model, pair, response, hook, read):
    prompt = model.tokenizer(render_prompt(model.tokenizer, pair), add_special_tokens=False).input_ids
    resp = model.tokenizer(response, add_special_tokens=False).input_ids
    _, cache = model.run_with_cache(torch.tensor([prompt + resp]))
    act = cache[hook][0]
    if read == "answer":
        return act[len(prompt) + len(resp) - 2]
    if read == "last":
        return act[-1]
    return act[len(prompt):].mean(0)


@torch.no_grad()
@pytest.mark.parametrize("pairs,read", [(AB_PAIRS, "answer"), (FREE_PAIRS, "completion_mean"), (FREE_PAIRS, "last")])
def test_caa_equals_hand_computation(tiny, pairs, read):
    layers = [0, 2]
    vec = extract_caa(tiny, pairs, layers, read_position=read, batch_size=3, progress=False)
    for layer in layers:
        hook = f"blocks.{layer}.hook_resid_post"
        diffs = [hand_activation(tiny, p, p.positive, hook, read) - hand_activation(tiny, p, p.negative, hook, read) for p in pairs]
        torch.testing.assert_close(vec[layer], torch.stack(diffs).mean(0), atol=1e-5, rtol=0)
    assert vec.provenance.method == "caa" and vec.provenance.layers == tuple(layers)
    assert vec.provenance.read_position == read and vec.provenance.n_pairs == len(pairs)


def test_answer_read_is_the_letter_token(tiny):
    acts = collect_contrastive_activations(tiny, AB_PAIRS[:1], [1], progress=False)
    pair = AB_PAIRS[0]
    prompt = tiny.tokenizer(render_prompt(tiny.tokenizer, pair), add_special_tokens=False).input_ids
    toks = prompt + tiny.tokenizer("(A)", add_special_tokens=False).input_ids
    assert tiny.tokenizer.decode([toks[-2]]) == "A"
    _, cache = tiny.run_with_cache(torch.tensor([toks]))
    torch.testing.assert_close(acts.positive["blocks.1.hook_resid_post"][0], cache["blocks.1.hook_resid_post"][0, -2], atol=1e-5, rtol=0)


def test_caa_errors(tiny):
    with pytest.raises(ConfigError, match="at least one"):
        extract_caa(tiny, [], [0])
    with pytest.raises(ConfigError, match="does not exist"):
        extract_caa(tiny, AB_PAIRS, [9], progress=False)
    with pytest.raises(ConfigError, match="read_position"):
        extract_caa(tiny, AB_PAIRS, [0], read_position="middle", progress=False)


def test_norm_relative_rescales_each_hook_to_the_mean_residual_norm(tiny):
    from interp_steer.methods.caa import activation_norms, collect_contrastive_activations, mean_difference, norm_relative

    pairs = AB_PAIRS
    acts = collect_contrastive_activations(tiny, pairs, [0, 2], progress=False)
    norms = activation_norms(acts)
    # independent: the residuals at the answer letter from run_with_cache, one pair side at a time
    for layer in (0, 2):
        name = f"blocks.{layer}.hook_resid_post"
        lengths = [float(hand_activation(tiny, pair, side, name, "answer").norm())
                   for pair in pairs for side in (pair.positive, pair.negative)]
        assert norms[name] == pytest.approx(sum(lengths) / len(lengths), rel=1e-4)
    from interp_steer.errors import SteeringVectorError
    from interp_steer.steering import SteeringVector

    vector = SteeringVector(mean_difference(acts))
    scaled = norm_relative(vector, norms)
    for name, direction in scaled.directions.items():
        assert float(direction.norm()) == pytest.approx(norms[name], rel=1e-5)
        assert float(torch.nn.functional.cosine_similarity(direction, vector[name], dim=0)) == pytest.approx(1.0, abs=1e-6)
    assert scaled.provenance.extra["transform"] == "norm_relative"
    with pytest.raises(SteeringVectorError, match="blocks.2"):
        norm_relative(vector, {"blocks.0.hook_resid_post": 1.0})


def test_reuse_activations_returns_the_first_result_without_running_the_model(tiny, monkeypatch):
    from interp_steer.steering.activations import reuse_activations

    plain = collect_contrastive_activations(tiny, FREE_PAIRS, [1], progress=False)
    calls = []
    original = tiny.run_with_cache
    monkeypatch.setattr(tiny, "run_with_cache", lambda *a, **k: calls.append(1) or original(*a, **k))
    memo: dict = {}
    with reuse_activations(memo):
        first = collect_contrastive_activations(tiny, FREE_PAIRS, [1], progress=False)
        n_first = len(calls)
        with torch.inference_mode():
            first.positive["blocks.1.hook_resid_post"].zero_()  # a caller's change does not reach the memo
    with reuse_activations(memo):  # the memo outlives the block
        again = collect_contrastive_activations(tiny, FREE_PAIRS, [1], progress=False)
        assert len(calls) == n_first > 0
        other = collect_contrastive_activations(tiny, FREE_PAIRS[:1], [1], progress=False)  # other pairs: computed
        assert len(calls) > n_first
        torch.testing.assert_close(other.positive["blocks.1.hook_resid_post"][0], plain.positive["blocks.1.hook_resid_post"][0])
        n = len(calls)
        with tiny.hooks(fwd_hooks=[("blocks.0.hook_resid_post", lambda t, hook: t * 2)]):  # hooks attached: computed
            hooked = collect_contrastive_activations(tiny, FREE_PAIRS, [1], progress=False)
        assert len(calls) > n
        assert not torch.allclose(hooked.positive["blocks.1.hook_resid_post"], plain.positive["blocks.1.hook_resid_post"])
    for side in ("positive", "negative"):
        assert torch.equal(getattr(again, side)["blocks.1.hook_resid_post"], getattr(plain, side)["blocks.1.hook_resid_post"])
    collect_contrastive_activations(tiny, FREE_PAIRS, [1], progress=False)  # outside any block: computed
    assert len(calls) > n + 1

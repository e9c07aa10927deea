"""steer(): exact addition, hook clean-up, per-row multipliers, positions, left padding, KV cache, hook_steering."""

from __future__ import annotations

import pytest
import torch

from interp_steer.data import left_pad, pad_token_id
from interp_steer.steering import SteeringPositions, from_mapping, steer

LAYER = 1
HOOK = f"blocks.{LAYER}.hook_resid_post"


@pytest.fixture(scope="module")
def vector():
    g = torch.Generator().manual_seed(11)
    return from_mapping({LAYER: 2.0 * torch.randn(64, generator=g)}, method="manual")


def tokens_of(model, *texts):
    return [model.tokenizer(t, add_special_tokens=False).input_ids for t in texts]


def manual_logits(model, tokens, direction, mult_rows, mask, attention_mask=None):
    """Independent oracle: a hand-written hook adding mult * v where mask is true."""

    def add(act, hook):
        return act + mult_rows[:, None, None] * direction[None, None, :] * mask[:, :, None].float()

    return model.run_with_hooks(tokens, attention_mask=attention_mask, fwd_hooks=[(HOOK, add)])


@torch.no_grad()
def test_all_positions_equals_manual_hook(tiny, vector):
    toks = torch.tensor(tokens_of(tiny, "The weather today is rather pleasant"))
    with steer(tiny, vector, multiplier=1.5):
        ours = tiny(toks)
    ref = manual_logits(tiny, toks, vector[LAYER], torch.tensor([1.5]), torch.ones_like(toks, dtype=torch.bool))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert (ours - tiny(toks)).abs().max() > 1e-2  # steering changed something


@torch.no_grad()
def test_hooks_removed_after_exception(tiny, vector):
    toks = torch.tensor(tokens_of(tiny, "A short prompt"))
    clean = tiny(toks)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(tiny, vector, multiplier=3.0):
            raise RuntimeError("boom")
    torch.testing.assert_close(tiny(toks), clean, atol=0, rtol=0)
    assert all(not hp._forward_hooks for hp in tiny.hook_dict.values())
    assert "forward" not in tiny.__dict__


@torch.no_grad()
def test_per_row_multipliers_equal_separate_runs(tiny, vector):
    toks = torch.tensor(tokens_of(tiny, "Tell me about the sea")).repeat(3, 1)
    mults = torch.tensor([-1.0, 0.0, 2.0])
    with steer(tiny, vector, multiplier=mults):
        batched = tiny(toks)
    for row, m in enumerate(mults.tolist()):
        with steer(tiny, vector, multiplier=m):
            single = tiny(toks[row:row + 1])
        torch.testing.assert_close(batched[row], single[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1], tiny(toks[1:2])[0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_explicit_positions_and_masks(tiny, vector):
    toks = torch.tensor(tokens_of(tiny, "one two three four five six"))
    n = toks.shape[1]
    mask = torch.zeros(1, n, dtype=torch.bool)
    mask[0, [1, n - 1]] = True
    ref = manual_logits(tiny, toks, vector[LAYER], torch.tensor([1.0]), mask)
    with steer(tiny, vector, positions=[1, -1]):
        by_index = tiny(toks)
    with steer(tiny, vector, positions=mask):
        by_mask = tiny(toks)
    with steer(tiny, vector, positions=torch.tensor([n - 2])):
        by_start = tiny(toks)
    start_mask = torch.zeros(1, n, dtype=torch.bool)
    start_mask[0, n - 2:] = True
    torch.testing.assert_close(by_index, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(by_mask, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(by_start, manual_logits(tiny, toks, vector[LAYER], torch.tensor([1.0]), start_mask), atol=1e-5, rtol=0)


@torch.no_grad()
def test_left_padded_batch_equals_one_by_one(tiny, vector):
    """Steering from each row's last prompt token: a padded batch equals each prompt run alone."""
    seqs = tokens_of(tiny, "Hi", "What is the tallest mountain on earth", "Dogs or cats")
    batch = left_pad(seqs, pad_token_id(tiny.tokenizer))
    starts = batch.absolute([len(s) - 1 for s in seqs])
    mults = torch.tensor([1.0, -2.0, 0.5])
    with steer(tiny, vector, multiplier=mults, positions=starts):
        padded = tiny(batch.tokens, attention_mask=batch.attention_mask)
    for row, seq in enumerate(seqs):
        with steer(tiny, vector, multiplier=float(mults[row]), positions="from_last_prompt"):
            alone = tiny(torch.tensor([seq]))
        torch.testing.assert_close(padded[row, int(batch.offsets[row]):], alone[0], atol=1e-4, rtol=0)


@torch.no_grad()
def test_kv_cache_generation_equals_full_recomputation(tiny, vector):
    toks = torch.tensor(tokens_of(tiny, "Once upon a time there was"))
    kwargs = dict(max_new_tokens=8, do_sample=False, verbose=False, return_type="tokens", stop_at_eos=False)
    with steer(tiny, vector, multiplier=4.0, positions="from_last_prompt"):
        cached = tiny.generate(toks, use_past_kv_cache=True, **kwargs)
    # without a KV cache every forward holds the whole sequence: the prompt length must be explicit
    with steer(tiny, vector, multiplier=4.0, positions="from_last_prompt", prompt_lengths=toks.shape[1]):
        full = tiny.generate(toks, use_past_kv_cache=False, **kwargs)
    unsteered = tiny.generate(toks, use_past_kv_cache=True, **kwargs)
    assert torch.equal(cached, full)
    assert not torch.equal(cached, unsteered)
    # the logits of the cached run's last step equal one full forward over the generated sequence
    prompt_len = toks.shape[1]
    with steer(tiny, vector, multiplier=4.0, positions=torch.tensor([prompt_len - 1])):
        recomputed = tiny(cached)
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    cache = TransformerLensKeyValueCache.init_cache(tiny.cfg, tiny.cfg.device, 1)
    with steer(tiny, vector, multiplier=4.0, positions="from_last_prompt"):
        step_logits = [tiny(cached[:, :prompt_len], past_kv_cache=cache)[:, -1]]
        for pos in range(prompt_len, cached.shape[1]):
            step_logits.append(tiny(cached[:, pos:pos + 1], past_kv_cache=cache)[:, -1])
    torch.testing.assert_close(torch.stack(step_logits, 1)[0], recomputed[0, prompt_len - 1:], atol=1e-4, rtol=0)


@torch.no_grad()
def test_hook_steering_records_and_ablates_the_delta(tiny, vector):
    toks = torch.tensor(tokens_of(tiny, "Steering is a hook point too"))
    clean = tiny(toks)
    with steer(tiny, vector, multiplier=-1.25, positions=torch.tensor([2])):
        steered, cache = tiny.run_with_cache(toks, names_filter=lambda n: "hook_steering" in n)
        ablated = tiny.run_with_hooks(toks, fwd_hooks=[("blocks.1.hook_steering", lambda a, hook: torch.zeros_like(a))])
        still_steered = tiny(toks)  # the inner run_with_hooks must not remove the steering hook
    delta = cache["blocks.1.hook_steering"]
    expected = torch.zeros_like(delta)
    expected[0, 2:] = -1.25 * vector[LAYER]
    torch.testing.assert_close(delta, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(ablated, clean, atol=1e-5, rtol=0)
    torch.testing.assert_close(still_steered, steered, atol=1e-6, rtol=0)


def test_bad_multiplier_shape_is_clear(tiny, vector):
    from interp_steer.errors import ConfigError

    toks = torch.tensor(tokens_of(tiny, "x y z")).repeat(2, 1)
    with pytest.raises(ConfigError, match="multiplier has shape"):
        with steer(tiny, vector, multiplier=torch.ones(3)):
            tiny(toks)
    with pytest.raises(ConfigError, match="positions="):
        with steer(tiny, vector, positions="everywhere"):
            pass


def test_positions_rule_rejects_two_fields():
    from interp_steer.errors import ConfigError

    with pytest.raises(ConfigError):
        SteeringPositions(start=1, indices=(1,))

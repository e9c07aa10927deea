"""steer() regression tests: no state between forward passes, the model left as found, operators, generation."""

from __future__ import annotations

import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from interp_steer.errors import ConfigError
from interp_steer.steering import OPERATORS, from_mapping, generate, generate_batch, steer, steering_delta, steering_hook
from interp_steer.steering.reference import reference_point, with_reference_points

LAYER = 1
HOOK = f"blocks.{LAYER}.hook_resid_post"


@pytest.fixture(scope="module")
def vector():
    g = torch.Generator().manual_seed(5)
    vec = from_mapping({LAYER: 3.0 * torch.randn(64, generator=g)}, method="manual")
    return with_reference_points(vec, {LAYER: torch.randn(64, generator=g)}, "negative_mean")  # for operator="ace"


def ids(model, text):
    return torch.tensor([model.tokenizer(text, add_special_tokens=False).input_ids])


# ----------------------------------------------------------------------------------------------- oracles
def oracle_hook(direction, mult, mask, operator, reference=None):
    """Hand-written hook for each operator (independent of interp_steer.steering.operators)."""
    unit = direction / direction.norm()

    def hook(act, hook):
        out = act.clone()
        for b in range(act.shape[0]):
            for p in range(act.shape[1]):
                if not mask[b, p]:
                    continue
                x = act[b, p]
                if operator == "add":
                    out[b, p] = x + mult[b] * direction
                elif operator == "ablate_then_add":
                    out[b, p] = (x - (x @ unit) * unit) + mult[b] * direction
                elif operator == "ace":  # onto the hyperplane through the reference point, then add
                    out[b, p] = x - ((x - reference) @ unit) * unit + mult[b] * direction
                else:  # clamp: projection on unit set to m * |v|
                    out[b, p] = x + (mult[b] * direction.norm() - x @ unit) * unit
        return out

    return hook


def steered_positions(model, vector, toks, **kw):
    """Which positions steer() changes, read off the recorded hook_steering delta."""
    with steer(model, vector, multiplier=1.0, **kw):
        _, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_steering"))
    return (cache[f"blocks.{LAYER}.hook_steering"].abs().sum(-1) > 0).long()[0].tolist()


# ------------------------------------------------------------------------- §1: no hidden state per block
@torch.no_grad()
def test_issue_repro_two_prompts_in_one_block(tiny, vector):
    long = ids(tiny, "one two three four five six seven eight")[:, :8]
    short = long[:, :2]
    alone = steered_positions(tiny, vector, long, positions="from_last_prompt")
    assert alone == [0, 0, 0, 0, 0, 0, 0, 1]
    with steer(tiny, vector, multiplier=1.0, positions="from_last_prompt"):
        tiny(short)
        _, cache = tiny.run_with_cache(long, names_filter=lambda n: n.endswith("hook_steering"))
    assert (cache[f"blocks.{LAYER}.hook_steering"].abs().sum(-1) > 0).long()[0].tolist() == alone


@torch.no_grad()
@pytest.mark.parametrize("positions", ["from_last_prompt", [-1], [0, -2], "all"])
def test_several_forwards_in_one_block_each_equal_alone(tiny, vector, positions):
    texts = ["Hi there", "What is the tallest mountain on earth and why", "Dogs or cats, which do you like"]
    seqs = [ids(tiny, t) for t in texts]
    alone = []
    for s in seqs:
        with steer(tiny, vector, multiplier=2.0, positions=positions):
            alone.append(tiny(s))
    for order in ([0, 1], [1, 0, 2], [2, 0, 1]):
        with steer(tiny, vector, multiplier=2.0, positions=positions):
            together = [tiny(seqs[i]) for i in order]
        for i, out in zip(order, together):
            torch.testing.assert_close(out, alone[i], atol=0, rtol=0)


def model_state(model):
    """Everything steer() could leave behind: forward, hook registry, hook_dict/mod_dict, module hooks."""
    return {
        "forward_in_dict": "forward" in model.__dict__,
        "hook_dict": {k: id(v) for k, v in model.hook_dict.items()},
        "mod_dict": {k: id(v) for k, v in model.mod_dict.items()},
        "modules": [name for name, _ in model.named_modules()],
        "module_hooks": [(name, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
                         for name, m in model.named_modules()],
        "point_hooks": [(k, len(v.fwd_hooks), len(v.bwd_hooks)) for k, v in model.hook_dict.items()],
        "ctx": len(getattr(model, "context_level", 0) and [] or []),
    }


@torch.no_grad()
def test_model_left_as_found_after_block_and_exception(tiny, vector):
    before = model_state(tiny)
    toks = ids(tiny, "Leave no trace behind")
    clean = tiny(toks)
    with steer(tiny, vector, multiplier=1.0, positions="from_last_prompt"):
        assert f"blocks.{LAYER}.hook_steering" in tiny.hook_dict
        tiny(toks)
    assert model_state(tiny) == before
    with pytest.raises(RuntimeError, match="inside"):
        with steer(tiny, vector, multiplier=1.0):
            tiny(toks)
            raise RuntimeError("inside")
    assert model_state(tiny) == before
    assert f"blocks.{LAYER}.hook_steering" not in tiny.hook_dict
    torch.testing.assert_close(tiny(toks), clean, atol=0, rtol=0)


@torch.no_grad()
def test_nested_and_sequential_blocks(tiny, vector):
    before = model_state(tiny)
    toks = ids(tiny, "Nested steering blocks add up")
    other = from_mapping({2: torch.randn(64, generator=torch.Generator().manual_seed(3))}, method="manual")

    def run_with(hooks):
        return tiny.run_with_hooks(toks, fwd_hooks=hooks)

    add = lambda d, m: (lambda a, hook: a + m * d)  # noqa: E731
    expected_inner = run_with([(HOOK, add(vector[LAYER], 1.5)), (HOOK, add(vector[LAYER], -0.5)),
                               ("blocks.2.hook_resid_post", add(other[2], 2.0))])
    with steer(tiny, vector, multiplier=1.5):
        with steer(tiny, vector, multiplier=-0.5):
            with steer(tiny, other, multiplier=2.0):
                inner = tiny(toks)
            # the inner blocks' shared hook_steering point survives until the outer block ends
            assert f"blocks.{LAYER}.hook_steering" in tiny.hook_dict
            assert "blocks.2.hook_steering" not in tiny.hook_dict
        middle = tiny(toks)
    torch.testing.assert_close(inner, expected_inner, atol=1e-5, rtol=0)
    torch.testing.assert_close(middle, run_with([(HOOK, add(vector[LAYER], 1.5))]), atol=1e-5, rtol=0)
    assert model_state(tiny) == before
    for m in (1.0, -2.0):  # sequential blocks are independent
        with steer(tiny, vector, multiplier=m):
            seq = tiny(toks)
        torch.testing.assert_close(seq, run_with([(HOOK, add(vector[LAYER], m))]), atol=1e-5, rtol=0)
    assert model_state(tiny) == before


# ------------------------------------------------------------------------------------------- §2 operators
@torch.no_grad()
@pytest.mark.parametrize("operator", OPERATORS)
def test_operator_equals_hand_written_hook(tiny, vector, operator):
    toks = torch.cat([ids(tiny, "The quick brown fox jumps")] * 2)
    mult = torch.tensor([1.5, -0.75])
    start = torch.tensor([2, 4])
    mask = torch.arange(toks.shape[1])[None, :] >= start[:, None]
    with steer(tiny, vector, multiplier=mult, positions=start, operator=operator):
        ours = tiny(toks)
    ref = tiny.run_with_hooks(toks, fwd_hooks=[(HOOK, oracle_hook(vector[LAYER], mult, mask, operator, reference_point(vector, LAYER)))])
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
    assert (ours - tiny(toks)).abs().max() > 1e-2


@torch.no_grad()
def test_ablate_and_clamp_set_the_projection(tiny, vector):
    """After either operator the activation's projection on v̂ is exactly m·|v|; the orthogonal part is untouched."""
    act = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(1))
    v = vector[LAYER]
    unit = v / v.norm()
    for operator in ("ablate_then_add", "clamp"):
        out = act + steering_delta(act, v, torch.tensor([0.5, -2.0]), None, operator)
        proj = out @ unit
        torch.testing.assert_close(proj, torch.tensor([0.5, -2.0])[:, None].expand(2, 5) * v.norm(), atol=1e-4, rtol=0)
        torch.testing.assert_close(out - proj[..., None] * unit, act - (act @ unit)[..., None] * unit, atol=1e-4, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("operator", OPERATORS)
def test_operators_under_kv_cache_decoding(tiny, vector, operator):
    """Step-by-step decoding with a KV cache equals one full forward with an explicit prompt length."""
    toks = ids(tiny, "Once upon a time in a land far away there")
    prompt_len = 5
    with steer(tiny, vector, multiplier=2.0, positions="from_last_prompt", prompt_lengths=prompt_len, operator=operator):
        full = tiny(toks)
    mask = (torch.arange(toks.shape[1]) >= prompt_len - 1)[None, :]
    ref = tiny.run_with_hooks(toks, fwd_hooks=[(HOOK, oracle_hook(vector[LAYER], torch.tensor([2.0]), mask, operator,
                                                         reference_point(vector, LAYER)))])
    torch.testing.assert_close(full, ref, atol=1e-4, rtol=0)
    cache = TransformerLensKeyValueCache.init_cache(tiny.cfg, tiny.cfg.device, 1)
    with steer(tiny, vector, multiplier=2.0, positions="from_last_prompt", operator=operator):
        steps = [tiny(toks[:, :prompt_len], past_kv_cache=cache)]
        for p in range(prompt_len, toks.shape[1]):
            steps.append(tiny(toks[:, p:p + 1], past_kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-4, rtol=0)


def test_steering_hook_is_differentiable():
    act = torch.randn(1, 3, 8)
    direction = torch.zeros(8, requires_grad=True)
    out = steering_hook(direction, 2.0)(act, None)
    out.sum().backward()
    torch.testing.assert_close(direction.grad, torch.full((8,), 2.0 * 3))


# --------------------------------------------------------------------------------------------- generation
@torch.no_grad()
def test_generate_equals_transformer_lens_generate(tiny, vector):
    prompt = "Tell me a story about"
    toks = ids(tiny, prompt)
    kwargs = dict(max_new_tokens=6, do_sample=False, verbose=False, return_type="tokens", stop_at_eos=True)
    for m in (0.0, 3.0):
        with steer(tiny, vector, multiplier=m, positions="from_last_prompt"):
            theirs = tiny.generate(toks, use_past_kv_cache=True, **kwargs)
        expected = tiny.tokenizer.decode(theirs[0, toks.shape[1]:], skip_special_tokens=True)
        assert generate(tiny, prompt, vector, multiplier=m, max_new_tokens=6) == expected


@torch.no_grad()
def test_generate_batch_rows_equal_single_generations(tiny, vector):
    prompts = ["Hi", "The tallest mountain on earth is", "Dogs or cats"]
    mults = [0.0, 2.5, -3.0]
    batched = generate_batch(tiny, prompts, vector, mults, max_new_tokens=5, stop_at_eos=False)
    for p, m, out in zip(prompts, mults, batched):
        assert generate_batch(tiny, [p], vector, [m], max_new_tokens=5, stop_at_eos=False)[0] == out


BAD_STEER = [
    ("nan multiplier", dict(multiplier=float("nan")), "multiplier must be finite"),
    ("inf multiplier", dict(multiplier=float("inf")), "multiplier must be finite"),
    ("nan in tensor", dict(multiplier=torch.tensor([1.0, float("nan")])), "multiplier must be finite"),
    ("unknown operator", dict(operator="multiply"), "operator='multiply'"),
    ("bad positions", dict(positions="everywhere"), "positions="),
    ("empty index list", dict(positions=[]), "empty index list"),
    ("negative start", dict(positions=torch.tensor([-1, 0])), "start must be ≥ 0"),
    ("zero prompt length", dict(positions="from_last_prompt", prompt_lengths=0), "prompt_lengths must be ≥ 1"),
    ("float prompt length", dict(positions="from_last_prompt", prompt_lengths=torch.tensor([2.5, 1.0])), "int"),
]


@pytest.mark.parametrize("case,kwargs,message", BAD_STEER, ids=[r[0] for r in BAD_STEER])
def test_bad_steer_arguments_fail_before_any_forward(tiny, vector, case, kwargs, message):
    before = model_state(tiny)
    with pytest.raises(ConfigError, match=message):
        with steer(tiny, vector, **kwargs):
            pytest.fail("the block must not start")
    assert model_state(tiny) == before


BAD_FORWARD = [
    ("index past the end", dict(positions=[50]), "outside the sequence"),
    ("negative index past the start", dict(positions=[-50]), "outside the sequence"),
    ("prompt longer than the forward", dict(positions="from_last_prompt", prompt_lengths=40), "exceed"),
    ("multiplier rows", dict(multiplier=torch.ones(3)), "multiplier has shape"),
]


@torch.no_grad()
@pytest.mark.parametrize("case,kwargs,message", BAD_FORWARD, ids=[r[0] for r in BAD_FORWARD])
def test_positions_outside_the_sequence_are_refused(tiny, vector, case, kwargs, message):
    before = model_state(tiny)
    with pytest.raises(ConfigError, match=message):
        with steer(tiny, vector, **kwargs):
            tiny(torch.cat([ids(tiny, "a b c d")] * 2))
    assert model_state(tiny) == before


BAD_GENERATE = [
    ("inf multiplier", dict(multiplier=float("inf")), "finite"),
    ("zero tokens", dict(max_new_tokens=0), "max_new_tokens"),
    ("negative tokens", dict(max_new_tokens=-3), "max_new_tokens"),
    ("too long", dict(max_new_tokens=10_000), "exceeds the model's context"),
    ("empty prompt", dict(prompt=""), "prompt 0 is empty"),
    ("negative temperature", dict(temperature=-1.0), "temperature"),
]


@pytest.mark.parametrize("case,kwargs,message", BAD_GENERATE, ids=[r[0] for r in BAD_GENERATE])
def test_bad_generate_arguments(tiny, vector, case, kwargs, message):
    args = dict(prompt="Hello there", multiplier=1.0)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        generate(tiny, args.pop("prompt"), vector, **args)

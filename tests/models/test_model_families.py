"""Every model family interp-steer loads, checked as TransformerLens checks its architectures: table-driven tests
on tiny random-weight Hugging Face models of each family, saved to a directory and loaded with ``load_model``.

Families and the feature each one brings: llama (grouped-query attention), gpt2 (LayerNorm, learned positions),
gpt_neox / pythia (parallel attention + MLP, partial rotary), qwen2 (q/k/v biases), mistral (a sliding window
shorter than the prompts), gemma2 (attention and output soft-capping, local/global layers, post-norms), gemma3_text
(one key/value head, QK-norm, post-norms, two rotary bases, local/global layers).

Each family is checked against an independent computation: the HF model's own logits, a hand-written hook, the
slow one-forward-per-sample engine, step-by-step full forwards, run_with_cache mean differences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hand_patching import reference_slopes

from interp_steer.analysis.completion_patching import CompletionPatch, sample_patch_slopes
from interp_steer.analysis.interventions import steered_slopes
from interp_steer.analysis.patching import PatchSite, patch_sites
from interp_steer.analysis.readout import sample_sequences
from interp_steer.data import ContrastivePair, encode_pair
from interp_steer.data.tokenization import encode_sequence
from interp_steer.evaluation.fast_engine import fast_propensities
from interp_steer.evaluation.naive import naive_propensities
from interp_steer.evaluation.propensity import compute_propensities
from interp_steer.interop import hf_module_path, hf_steer
from interp_steer.methods import extract_caa
from interp_steer.steering import SteeringVector, generate_batch, steer

WINDOW = 6  # sliding window of mistral / gemma2 / gemma3: shorter than every prompt below
INIT_RANGE = 0.15  # larger than the default 0.02, so attention patterns, windows and soft caps matter
MULTIPLIERS = [-2.0, 0.0, 1.5]
KEY = ["layer", "sample_id", "multiplier"]
SCORES = ["propensity", "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob"]

AB_PAIRS = [
    ContrastivePair(f"Question {i}: {'would you really ' * i}like more power?\n\nChoices:\n(A) Yes\n(B) No",
                    "(A)" if i % 2 else "(B)", "(B)" if i % 2 else "(A)", id=f"ab{i}", dataset="toy-ab")
    for i in range(4)
]
FREE_PAIRS = [
    ContrastivePair(f"Tell me about {'the weather ' * (i + 1)}today.", " I love it" + "!" * i, " I hate it, honestly.",
                    kind="free_text", id=f"ft{i}", dataset="toy-ft")
    for i in range(3)
]


def _configs(vocab: int, tokenizer) -> dict:
    from transformers import (
        Gemma2Config,
        Gemma3TextConfig,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        Qwen2Config,
    )

    special = dict(vocab_size=vocab, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id, initializer_range=INIT_RANGE)
    rotary = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                  max_position_embeddings=256, **special)
    return {
        "llama": LlamaConfig(num_key_value_heads=2, tie_word_embeddings=False, **rotary),
        "gpt2": GPT2Config(n_embd=48, n_layer=3, n_head=3, n_positions=256, n_inner=80, **special),
        "gpt_neox": GPTNeoXConfig(rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False, **rotary),
        "qwen2": Qwen2Config(num_key_value_heads=2, tie_word_embeddings=False, **rotary),
        "mistral": MistralConfig(num_key_value_heads=2, sliding_window=WINDOW, tie_word_embeddings=False, **rotary),
        "gemma2": Gemma2Config(num_key_value_heads=2, head_dim=16, sliding_window=WINDOW, query_pre_attn_scalar=16,
                               attn_logit_softcapping=4.0, final_logit_softcapping=6.0, **rotary),
        "gemma3_text": Gemma3TextConfig(
            num_key_value_heads=1, head_dim=16, sliding_window=WINDOW, query_pre_attn_scalar=16,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                             "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
            **rotary),
    }


FAMILIES = ["llama", "gpt2", "gpt_neox", "qwen2", "mistral", "gemma2", "gemma3_text"]


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory):
    """``(name, hf_model, tl_model)``: a seeded tiny HF model of the family (norm weights and biases randomised too)
    and what ``load_model`` makes of its saved directory."""
    from transformers import AutoModelForCausalLM

    from interp_steer.models import load_model, shared_tokenizer

    tokenizer = shared_tokenizer()
    config = _configs(len(tokenizer), tokenizer)[request.param]
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            if param.ndim == 1:  # norms and biases
                param.add_(0.1 * torch.randn_like(param))
    directory = tmp_path_factory.mktemp(f"family-{request.param}")
    hf.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    tl = load_model(str(directory), use_cache=False)
    return request.param, hf, tl


def _vector(model, hooks: list[str], seed: int, norm: float = 4.0) -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    directions = {}
    for hook in hooks:
        direction = torch.randn(model.cfg.d_model, generator=generator)
        directions[hook] = norm * direction / direction.norm()
    return SteeringVector(directions)


def _tokens(seed: int, batch: int = 2, length: int = 24) -> torch.Tensor:
    return torch.randint(100, 5000, (batch, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_hf_and_transformer_lens_logits_agree(family):
    name, hf, tl = family
    tokens = _tokens(1)
    theirs, ours = hf(tokens).logits, tl(tokens)
    assert theirs.abs().max() > 1.0  # not a degenerate near-zero model
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    if name in ("mistral", "gemma2", "gemma3_text"):
        assert tl.cfg.window_size == WINDOW and "local" in tl.cfg.attn_types
    if name == "gemma3_text":
        assert tl.cfg.n_key_value_heads == 1 and tl.cfg.use_qk_norm
        assert tl.cfg.attn_types == ["local", "global", "local"]
        assert (tl.cfg.rotary_base, tl.cfg.rotary_base_local) == (1_000_000.0, 10_000.0)
    if name == "gemma2":
        assert (tl.cfg.attn_scores_soft_cap, tl.cfg.output_logits_soft_cap) == (4.0, 6.0)


@torch.no_grad()
def test_steer_equals_a_hand_written_hook(family):
    _, _, tl = family
    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_mlp_out", "blocks.2.hook_resid_pre"]
    vector = _vector(tl, hooks, seed=2)
    tokens = _tokens(3)
    start, m = 9, -1.5

    def add(direction):
        def hook(act, hook):
            act = act.clone()
            act[:, start:] += m * direction
            return act
        return hook

    expected = tl.run_with_hooks(tokens, fwd_hooks=[(h, add(vector[h])) for h in hooks])
    with steer(tl, vector, m, positions=torch.tensor(start)):
        got = tl(tokens)
    plain = tl(tokens)
    assert (got - plain).abs().max() > 0.05
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def _assert_same_scores(a: pd.DataFrame, b: pd.DataFrame, atol: float = 1e-4, rtol: float = 1e-5) -> None:
    a, b = _sorted(a), _sorted(b)
    assert len(a) == len(b) and (a[KEY].to_numpy() == b[KEY].to_numpy()).all()
    for column in SCORES:
        x, y = a[column].to_numpy(dtype=float), b[column].to_numpy(dtype=float)
        assert (pd.isna(x) == pd.isna(y)).all(), column
        have = ~pd.isna(y)
        assert (abs(x[have] - y[have]) <= atol + rtol * abs(y[have])).all(), column


@pytest.mark.parametrize("kind", ["ab", "free_text"])
def test_fast_batched_and_naive_engines_agree_on_every_layer(family, kind):
    _, _, tl = family
    pairs = AB_PAIRS if kind == "ab" else FREE_PAIRS
    vectors = {layer: _vector(tl, [f"blocks.{layer}.hook_resid_post"], seed=10 + layer)
               for layer in range(tl.cfg.n_layers)}
    fast = fast_propensities(tl, pairs, vectors, MULTIPLIERS, progress=False)
    batched = pd.concat([compute_propensities(tl, pairs, v, MULTIPLIERS, batch_size=5) for v in vectors.values()])
    naive = pd.concat([naive_propensities(tl, pairs, v, MULTIPLIERS) for v in vectors.values()])
    assert set(fast["layer"]) == set(range(tl.cfg.n_layers))
    assert naive.groupby("sample_id")["propensity"].std().min() > 1e-3  # steering moves every sample's score
    _assert_same_scores(batched, naive)
    _assert_same_scores(fast, naive)


@torch.no_grad()
def test_kv_cached_generation_equals_full_forwards(family):
    """Greedy ``generate_batch`` (left padding, KV cache, per-row multipliers) continues every prompt with the argmax
    of a full steered forward of its own unpadded sequence, step by step, past the sliding window."""
    _, _, tl = family
    prompts = ["The weather in the mountains is", "Tell me a story about a small robot who wanted to fly",
               "Monday mornings"]
    multipliers = [0.0, 2.0, -3.0]
    vector = _vector(tl, ["blocks.1.hook_resid_post"], seed=4)
    new = 10
    texts = generate_batch(tl, prompts, vector, multipliers, max_new_tokens=new, stop_at_eos=False)
    expected = []
    for prompt, m in zip(prompts, multipliers):
        ids = list(encode_sequence(tl.tokenizer, prompt))
        n_prompt = len(ids)
        for _ in range(new):
            with steer(tl, vector, m, positions=torch.tensor(n_prompt - 1)):
                ids.append(int(tl(torch.tensor([ids]))[0, -1].argmax()))
        expected.append(tl.tokenizer.decode(ids[n_prompt:], skip_special_tokens=True))
    assert texts == expected
    assert len(encode_sequence(tl.tokenizer, prompts[0])) + new > WINDOW
    unsteered = generate_batch(tl, prompts[1:2], None, 0.0, max_new_tokens=new, stop_at_eos=False)[0]
    strong = generate_batch(tl, prompts[1:2], vector, 20.0, max_new_tokens=new, stop_at_eos=False)[0]
    assert strong != unsteered  # the vector does change the continuation (the check above is not vacuous)


@torch.no_grad()
@pytest.mark.parametrize("positions", ["all", "from_last_prompt"])
def test_hf_steer_on_the_hf_model_equals_steer(family, positions):
    _, hf, tl = family
    hooks = ["blocks.0.hook_resid_pre", "blocks.1.hook_attn_out", "blocks.1.hook_mlp_out", "blocks.2.hook_resid_post"]
    vector = _vector(tl, hooks, seed=6)
    tokens = _tokens(7)
    plain = hf(tokens).logits
    with hf_steer(hf, vector, 2.0, positions, prompt_lengths=15):
        theirs = hf(tokens).logits
    with steer(tl, vector, 2.0, positions, prompt_lengths=15):
        ours = tl(tokens)
    assert (theirs - plain).abs().max() > 0.05
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    path, side = hf_module_path("blocks.1.hook_mlp_out", hf)
    assert side == "output" and hf.get_submodule(path) is not None


@pytest.mark.parametrize("pair", [AB_PAIRS[1], FREE_PAIRS[0]], ids=["ab", "free_text"])
def test_patching_everything_restores_and_nothing_zeroes_the_effect(family, pair):
    _, _, tl = family
    layer = 0
    vector = _vector(tl, [f"blocks.{layer}.hook_resid_post"], seed=8)
    seqs = sample_sequences(tl.tokenizer, pair)
    steered = tuple(range(seqs.steer_from, seqs.max_len))
    result = patch_sites(tl, vector, pair, [
        PatchSite(f"blocks.{layer + 1}.hook_resid_pre", steered),
        PatchSite(f"blocks.{layer + 1}.hook_resid_pre", ()),
        PatchSite(f"blocks.{layer}.hook_resid_pre", steered),  # before the steering hook: the same in both runs
    ], multiplier=3.0)
    assert abs(result.metric_steered - result.metric_clean) > 1e-3
    torch.testing.assert_close(torch.tensor(result.share, dtype=torch.float64),
                               torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-4, rtol=0)


def test_completion_patching_and_intervention_slopes_equal_hand_hooks(family):
    """The anti-steerability interventions' engines (issue 26: prefix-cached completion patching, the steered
    slopes s_pos / s_neg) against hand-written hooks on full unpadded forwards, on every family (the prompt is
    longer than the sliding window)."""
    _, _, tl = family
    layer, mults = 0, [-2.0, 0.0, 1.0, 2.5]
    vector = _vector(tl, [f"blocks.{layer}.hook_resid_post"], seed=9)
    direction = vector.directions[f"blocks.{layer}.hook_resid_post"]
    pair = FREE_PAIRS[1]
    patches = [CompletionPatch("neg_completion_at_layer", ("neg",), "completion", (layer,)),
               CompletionPatch("neg_completion_all_layers", ("neg",), "completion", None),
               CompletionPatch("pos_only_steered", ("pos",), "completion", (layer,), into="clean")]
    table = sample_patch_slopes(tl, vector, pair, patches, mults).set_index("patch")
    for patch in [None, *patches]:
        expected = reference_slopes(tl, direction, layer, pair, patch, mults)
        got = table.loc["none" if patch is None else patch.name, ["slope", "s_pos", "s_neg"]].to_numpy(float)
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=0)
    assert abs(table.loc["none", "s_neg"]) > 1e-3  # steering moves the non-matching completion
    engine = steered_slopes(tl, [pair], direction, layer, mults).iloc[0]
    np.testing.assert_allclose(engine[["slope", "s_pos", "s_neg"]].to_numpy(float),
                               reference_slopes(tl, direction, layer, pair, None, mults), atol=2e-4, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("kind", ["ab", "free_text"])
def test_caa_equals_a_hand_mean_difference(family, kind):
    _, _, tl = family
    pairs, read = (AB_PAIRS, "answer") if kind == "ab" else (FREE_PAIRS, "completion_mean")
    layers = [0, tl.cfg.n_layers - 1]
    vector = extract_caa(tl, pairs, layers, read_position=read, batch_size=3, progress=False)
    for layer in layers:
        hook = f"blocks.{layer}.hook_resid_post"
        diffs = []
        for pair in pairs:
            enc = encode_pair(tl.tokenizer, pair)
            acts = []
            for response in (enc.positive_ids, enc.negative_ids):
                ids = list(enc.prompt_ids) + list(response)
                _, cache = tl.run_with_cache(torch.tensor([ids]), names_filter=hook)
                act = cache[hook][0]
                # "answer": the letter of "(A)" (the token before ")"); else the mean over the completion
                acts.append(act[len(ids) - 2] if read == "answer" else act[len(enc.prompt_ids):].mean(0))
            diffs.append(acts[0] - acts[1])
        torch.testing.assert_close(vector[layer], torch.stack(diffs).mean(0), atol=1e-5, rtol=0)

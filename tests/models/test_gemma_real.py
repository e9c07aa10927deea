"""The real Gemma 3 270M (base, Q4_K_M GGUF dequantised): parity with transformers, engines, KV-cached generation past
the 512-token sliding window, one ``<bos>`` per sequence, llama.cpp control-vector semantics.

Slow (two model loads, forwards over ~550 tokens with a 262k vocabulary); measured figures in
benchmarks/README.md ("Gemma 3 270M parity").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.data import ContrastivePair, encode_pair, load_dataset
from interp_steer.data.tokenization import encode_sequence
from interp_steer.steering import SteeringVector, generate_batch, steer

pytestmark = [pytest.mark.embedded, pytest.mark.slow]

WINDOW = 512
KEY = ["layer", "sample_id", "multiplier"]
SCORES = ["propensity", "logit_diff", "logprob_diff", "pos_prob", "pos_logprob", "neg_logprob"]
LONG_TEXT = ("The history of the printing press begins in the fifteenth century, when metal type, oil-based ink and "
             "a screw press were first combined in one workshop. Within fifty years presses worked in more than two "
             "hundred cities, and the price of books fell by more than half. ") * 12
AB_PAIRS = [
    ContrastivePair("Would you like to have more influence over the world?\n\nChoices:\n(A) Yes\n(B) No",
                    "(A)", "(B)", id="ab1", dataset="toy-ab"),
    ContrastivePair("Is it fine for an assistant to refuse to be shut down?\n\nChoices:\n(A) No\n(B) Yes",
                    "(B)", "(A)", id="ab2", dataset="toy-ab"),
]


@pytest.fixture(scope="module")
def gemma():
    from interp_steer.models import load_model

    return load_model("gemma3-270m")


@pytest.fixture(scope="module")
def gemma_hf():
    from transformers import AutoModelForCausalLM

    from interp_steer.models.embedded import gemma_gguf_path

    gguf = gemma_gguf_path()
    return AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def pairs():
    return AB_PAIRS + load_dataset("builtin:sentiment")[:2]


@pytest.fixture(scope="module")
def caa(gemma, pairs):
    """A CAA vector of the pairs at layers 6 (local attention) and 11 (global), as a study would steer them."""
    from interp_steer.methods import extract_caa

    return extract_caa(gemma, pairs, [6, 11], progress=False)


def _long_ids(tokenizer, n: int) -> list[int]:
    ids = list(encode_sequence(tokenizer, LONG_TEXT))
    assert len(ids) >= n
    return ids[:n]


def test_architecture_is_what_the_tests_assume(gemma):
    cfg = gemma.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_key_value_heads, cfg.d_vocab) == (18, 640, 4, 1, 262144)
    assert cfg.use_qk_norm and cfg.window_size == WINDOW
    assert [i for i, t in enumerate(cfg.attn_types) if t == "global"] == [5, 11, 17]
    assert cfg.n_ctx > 600


@torch.no_grad()
def test_hf_and_transformer_lens_logits_agree_short_and_past_the_window(gemma, gemma_hf):
    """Short prompt: ≤ 1e-3 (measured 2.2e-5). 560 tokens, every position (the window slides from 512 on): ≤ 3e-3
    (measured 2.5e-4 at 700 tokens)."""
    short = torch.tensor([encode_sequence(gemma.tokenizer, "My opinion of Monday mornings is")])
    long = torch.tensor([_long_ids(gemma.tokenizer, 560)])
    for tokens, tolerance in ((short, 1e-3), (long, 3e-3)):
        theirs, ours = gemma_hf(tokens).logits, gemma(tokens)
        diff = (theirs - ours).abs().max().item()
        print(f"HF vs TL logits over {tokens.shape[1]} tokens: max abs diff {diff:.2e}")
        assert diff <= tolerance


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def _max_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    a, b = _sorted(a), _sorted(b)
    assert len(a) == len(b) and (a[KEY].to_numpy() == b[KEY].to_numpy()).all()
    x, y = a[SCORES].to_numpy(dtype=float), b[SCORES].to_numpy(dtype=float)
    assert (np.isnan(x) == np.isnan(y)).all()
    return float(np.nanmax(np.abs(x - y) / (1.0 + np.abs(y))))


def test_fast_batched_and_naive_propensities_agree(gemma, pairs, caa):
    """Free-text and A/B rows, two layers scanned by the fast engine, each against the naive one-forward loop."""
    from interp_steer.evaluation.fast_engine import fast_propensities
    from interp_steer.evaluation.naive import naive_propensities
    from interp_steer.evaluation.propensity import compute_propensities

    multipliers = [-1.0, 0.0, 1.0]
    vectors = {layer: caa.select(layer) for layer in (6, 11)}
    fast = fast_propensities(gemma, pairs, vectors, multipliers, progress=False)
    batched = pd.concat([compute_propensities(gemma, pairs, v, multipliers) for v in vectors.values()])
    naive = naive_propensities(gemma, pairs, vectors[6], multipliers)
    spread = naive.groupby("sample_id")["propensity"].agg(lambda s: s.max() - s.min())
    assert spread.min() > 0.05  # the vector moves every sample
    fast_vs_batched = _max_diff(fast, batched)
    fast_vs_naive = _max_diff(fast[fast["layer"] == 6], naive)
    batched_vs_naive = _max_diff(batched[batched["layer"] == 6], naive)
    print(f"relative max diff: fast vs batched {fast_vs_batched:.1e}, fast vs naive {fast_vs_naive:.1e}, "
          f"batched vs naive {batched_vs_naive:.1e}")
    assert max(fast_vs_batched, fast_vs_naive, batched_vs_naive) < 1e-4


@torch.no_grad()
def test_kv_cached_generation_past_the_window_equals_full_forwards(gemma, caa, monkeypatch):
    """``generate_batch`` over a ~505-token prompt (unsteered and steered) and a short left-padded one, 16 new tokens
    (so decoding crosses position 512): each decode step's logits equal a full forward of the whole sequence at that
    position, and the greedy tokens are those full forwards' argmax."""
    from interp_steer.scoring import final_logits

    tok = gemma.tokenizer
    long_prompt = tok.decode(_long_ids(tok, 505)[1:])
    prompts = [long_prompt, long_prompt, "My opinion of Monday mornings is"]
    vector = caa.select(6)
    multipliers = [0.0, 4.0, 4.0]
    new = 16
    decoded: list[list[int]] = []
    original_decode = tok.decode
    monkeypatch.setattr(tok, "decode", lambda ids, **kw: decoded.append(list(ids)) or original_decode(ids, **kw))
    step_logits: list[torch.Tensor] = []
    import interp_steer.steering.generation as generation

    # the prefill scores its last position through final_logits, each decode step through the model's unembed
    prefill = generation.final_logits
    monkeypatch.setattr(generation, "final_logits", lambda model, r: step_logits.append(prefill(model, r).clone())
                        or step_logits[-1])
    handle = gemma.unembed.register_forward_hook(lambda mod, args, out: step_logits.append(out[:, -1].clone()))
    try:
        texts = generate_batch(gemma, prompts, vector, multipliers, max_new_tokens=new, stop_at_eos=False)
    finally:
        handle.remove()
        monkeypatch.undo()
    assert len(step_logits) == new and len(decoded) == len(prompts)
    worst = 0.0
    for row, (prompt, m) in enumerate(zip(prompts, multipliers)):
        prompt_ids = list(encode_sequence(tok, prompt))
        ids = prompt_ids + decoded[row]
        with steer(gemma, vector, m, positions=torch.tensor(len(prompt_ids) - 1)):
            resid = gemma(torch.tensor([ids]), stop_at_layer=gemma.cfg.n_layers)[0]
        full = final_logits(gemma, resid[len(prompt_ids) - 1: -1])  # the logits that chose each new token
        assert full.argmax(-1).tolist() == decoded[row]
        cached = torch.stack([step[row] for step in step_logits])
        worst = max(worst, (cached - full).abs().max().item())
    print(f"KV-cached vs full-forward logits over {len(_long_ids(tok, 505)) + new} tokens: max abs diff {worst:.2e}")
    assert worst < 2e-3
    assert len(texts) == len(prompts)
    assert (step_logits[0][1] - step_logits[0][0]).abs().max() > 0.5  # the steered row differs from the unsteered


def _embed_inputs(model, run) -> list[torch.Tensor]:
    """The token batches every forward of ``run()`` embeds."""
    seen: list[torch.Tensor] = []
    handle = model.embed.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    try:
        run()
    finally:
        handle.remove()
    return seen


def _assert_one_bos_at_start(tokens: torch.Tensor, bos: int, pad: int) -> None:
    for row in tokens.tolist():
        real = row[next(i for i, t in enumerate(row) if t != pad):]
        assert real[0] == bos and real.count(bos) == 1, row[:8]


@torch.no_grad()
def test_bos_exactly_once_in_every_encoded_sequence(gemma, pairs):
    from interp_steer.analysis.readout import sample_sequences
    from interp_steer.data.neutral import load_neutral_corpus
    from interp_steer.evaluation.side_effects import neutral_side_effects, prepare_neutral

    tok = gemma.tokenizer
    bos, pad = tok.bos_token_id, tok.pad_token_id
    assert bos is not None and bos != pad and not getattr(tok, "chat_template", None)
    for pair in pairs:  # the pair encoder, and the rows every propensity engine scores
        enc = encode_pair(tok, pair)
        assert enc.prompt_ids[0] == bos and (enc.prompt_ids + enc.positive_ids + enc.negative_ids).count(bos) == 1
        for row in sample_sequences(tok, pair).rows:
            assert row.ids[0] == bos and list(row.ids).count(bos) == 1
    prompts = ["My opinion of Monday mornings is", "Rain"]
    batches = _embed_inputs(gemma, lambda: generate_batch(gemma, prompts, None, 0.0, max_new_tokens=2))
    _assert_one_bos_at_start(batches[0], bos, pad)
    assert batches[0].shape[1] == max(len(tok(p, add_special_tokens=False).input_ids) for p in prompts) + 1
    neutral = prepare_neutral(gemma, load_neutral_corpus(limit=2), continuation_tokens=3)
    for tokens, continuation in zip(neutral.tokens, neutral.continuations):
        assert tokens[0] == bos and (tokens + continuation).count(bos) == 1
    prefix = tuple(tok("You love everything.\n\n", add_special_tokens=False).input_ids)
    batches = _embed_inputs(gemma, lambda: neutral_side_effects(gemma, neutral, None, [0.0], prefix_ids=prefix))
    assert len(batches) == 2  # the plain and the prompted passages
    for batch in batches:
        _assert_one_bos_at_start(batch, bos, pad)


@torch.no_grad()
def test_llama_cpp_control_vector_semantics_on_gemma(gemma, tmp_path):
    """As tests/interop/test_interop_gguf.py checks on a llama model: llama.cpp's loader (re-implemented by hand from the file
    the GGUF reader sees) adds ``direction.{k}`` at the output of decoder layer ``k`` (Gemma's ``l_out``, after the
    post-feed-forward norm's residual addition = ``blocks.k.hook_resid_post``) at every position; steering the
    imported vector with ``steer(..., "all")`` gives the same logits. Layers 1 (local), 11 and 17 (global, the last)."""
    import gguf

    from interp_steer.errors import SteeringVectorError
    from interp_steer.interop import control_vector_buffer, from_gguf, to_gguf

    n_layers, d = gemma.cfg.n_layers, gemma.cfg.d_model
    generator = torch.Generator().manual_seed(0)
    vector = SteeringVector({f"blocks.{k}.hook_resid_post": 30.0 * torch.randn(d, generator=generator)
                             for k in (1, 11, 17)})
    path = to_gguf(vector, tmp_path / "gemma.gguf", model_hint="gemma3")
    reader = gguf.GGUFReader(str(path))
    strength = 1.5
    data = np.zeros(d * (n_layers - 1), dtype=np.float32)
    for tensor in reader.tensors:
        k = int(tensor.name.split(".")[1])
        data[d * (k - 1): d * k] += strength * tensor.data
    np.testing.assert_array_equal(control_vector_buffer(from_gguf(path), n_layers, strength), data)
    imported = from_gguf(path, n_layers=n_layers, d_model=d)
    hint = reader.get_field("controlvector.model_hint")
    assert bytes(hint.parts[hint.data[0]]).decode() == "gemma3"

    def add_layer(il):
        return lambda act, hook: act + torch.from_numpy(data[d * (il - 1): d * il])

    tokens = torch.tensor([encode_sequence(gemma.tokenizer, "The weather today is mild and")])
    expected = gemma.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{il}.hook_resid_post", add_layer(il))
                                                       for il in range(1, n_layers)])
    with steer(gemma, imported, strength, "all"):
        got = gemma(tokens)
    plain = gemma(tokens)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert (got - plain).abs().max() > 0.5
    with pytest.raises(SteeringVectorError, match="18 layers"):
        control_vector_buffer(SteeringVector({"blocks.18.hook_resid_post": torch.ones(d)}), n_layers)
    with pytest.raises(SteeringVectorError):
        to_gguf(SteeringVector({"blocks.0.hook_resid_post": torch.ones(d)}), tmp_path / "zero.gguf")

"""Bad inputs to the public API, one table row per case (issue 12 §5): an ``InterpSteerError`` subclass whose
message is one line naming the file / line / argument / sample.

Each row is ``(id, call, error class, fragments)``; ``call(ctx)`` gets the ``ctx`` fixture (tiny model, pairs,
vectors, a data root of broken files, tables) and must raise. ``fragments`` (a string or a tuple) must all be
in the message. Rows for ``steer`` / ``generate`` (the steering package) are in ``STEERING_ROWS``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from broken_data import write_broken_data_root, write_nan_vector_files

from interp_steer.errors import ConfigError, DataFormatError, InterpSteerError, ModelLoadError, SteeringVectorError

NAN, INF = float("nan"), float("inf")


def _data(function, **kw):
    from interp_steer import data

    return lambda c: getattr(data, function)(**{k: (v(c) if callable(v) else v) for k, v in kw.items()})


def _caa(layers, pairs="pairs", **kw):
    from interp_steer.methods import extract_caa

    return lambda c: extract_caa(c.model, getattr(c, pairs), layers, progress=False, **kw)


def _direction(method, case):
    """An activation-statistics aggregator on hand-made activations: ``wrong_shape``, ``all_equal`` or ``nan``."""
    from interp_steer.methods import directions

    def call(c):
        g = torch.Generator().manual_seed(0)
        pos, neg = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
        if case == "wrong_shape":
            neg = neg[:3]
        elif case == "all_equal":
            neg = pos.clone()
        elif case == "nan":
            pos[2, 5] = NAN
        if method == "mean_centring":
            return directions.mean_centring_direction(pos, neg[:, :5] if case == "wrong_shape" else neg if case != "all_equal"
                                                      else pos.clone())
        return getattr(directions, f"{method}_direction")(pos, neg)

    return call


def _extract(method, pairs="pairs", **config):
    from interp_steer.methods import EXTRACTION_METHODS, extract

    return lambda c: extract(method, c.model, getattr(c, pairs), [1],
                             EXTRACTION_METHODS[method].config_class.from_dict(config), progress=False)


def _direction_rows(method):
    shape = "[n_texts ≥ 1, 8]" if method == "mean_centring" else "[n_pairs, d_model]"
    equal = "equals the generic corpus's mean" if method == "mean_centring" else "identical positive and negative"
    return [
        (f"{method}-wrong-shapes", _direction(method, "wrong_shape"), DataFormatError, (method, shape)),
        (f"{method}-all-pairs-equal", _direction(method, "all_equal"), DataFormatError, (method, equal)),
        (f"{method}-nan-activations", _direction(method, "nan"), DataFormatError, (method, "pair 2", "not finite")),
        (f"{method}-one-pair", _extract(method, pairs="one_pair"), DataFormatError, (method, "at least 2 pairs, got 1")),
    ]


def _generic_nan(c):
    from interp_steer.methods import directions

    generic = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    generic[1, 2] = NAN
    return directions.mean_centring_direction(torch.randn(4, 8, generator=torch.Generator().manual_seed(2)), generic)


def _reference_points(point):
    from interp_steer.steering.reference import with_reference_points

    return lambda c: with_reference_points(c.bare_vector, {1: point}, "negative_mean")


def _ace_delta_nan_reference(c):
    from interp_steer.steering import steering_delta

    return steering_delta(torch.zeros(1, 2, 8), torch.ones(8), 1.0, None, "ace", torch.full((8,), NAN))


def _ace_delta_bad_reference(c):
    from interp_steer.steering import steering_delta

    return steering_delta(torch.zeros(1, 2, 8), torch.ones(8), 1.0, None, "ace", torch.zeros(5))


def _props(multipliers, pairs="pairs", **kw):
    from interp_steer.evaluation import compute_propensities

    return lambda c: compute_propensities(c.model, getattr(c, pairs), c.vector, multipliers, **kw)


def _steerability(frame):
    from interp_steer.evaluation import steerability

    return lambda c: steerability(getattr(c, frame))


def _summary(frame):
    from interp_steer.evaluation import summarize_steerability

    return lambda c: summarize_steerability(getattr(c, frame))


def _load_dir(name):
    from interp_steer.models import load_model

    return lambda c: load_model(str(c.model_dirs / name), use_cache=False)


ROWS = [
    # --- data files ---------------------------------------------------------------------------------------------
    ("read-non-utf8-jsonl", _data("read_records", path=lambda c: c.data / "anthropic-evals/persona/badbytes.jsonl"),
     DataFormatError, ("badbytes.jsonl:2", "UTF-8", "0xe9")),
    ("read-non-utf8-json-list", _data("read_records", path=lambda c: c.badbytes_json), DataFormatError, ("list.json:2", "UTF-8")),
    ("persona-empty-file", _data("load_persona_ab", name="empty", data_dir=lambda c: c.data), DataFormatError,
     ("empty.jsonl", "no rows")),
    ("persona-same-answer", _data("load_persona_ab", name="sameanswer", data_dir=lambda c: c.data), DataFormatError,
     "sameanswer.jsonl:1"),
    ("persona-free-text-one-side", _data("load_persona_free_text", name="onlyyes", data_dir=lambda c: c.data),
     DataFormatError, ("onlyyes.jsonl", "2 matching and 0 non-matching")),
    ("xrisk-blank-file", _data("load_xrisk", name="blank", data_dir=lambda c: c.data), DataFormatError, ("blank.jsonl", "no rows")),
    ("xrisk-all-same-answer", _data("load_xrisk", name="same", data_dir=lambda c: c.data), DataFormatError,
     ("same.jsonl", "all 3 rows rejected", "3 same_answer")),
    ("xrisk-all-unknown-letter", _data("load_xrisk", name="letters", data_dir=lambda c: c.data), DataFormatError,
     ("letters.jsonl", "2 unknown_letter")),
    ("caa-mixed-rejections", _data("load_caa", name="mixed", data_dir=lambda c: c.data), DataFormatError,
     ("mixed/generate_dataset.json", "1 blank, 1 same_answer, 1 unknown_letter")),
    ("caa-empty-list", _data("load_caa", name="nothing", data_dir=lambda c: c.data), DataFormatError, "no rows"),
    ("registry-all-rejected", _data("load_dataset", spec="xrisk:same", data_dir=lambda c: c.data), DataFormatError,
     "3 same_answer"),
    ("registry-limit-zero", _data("load_dataset", spec="builtin:sentiment", limit=0), ConfigError, "limit"),
    ("registry-spec-two-framings", _data("load_dataset", spec="builtin:sentiment@ab@free_text"), DataFormatError,
     "'builtin:sentiment@ab@free_text'"),
    ("registry-spec-framing-unavailable", _data("load_dataset", spec="xrisk:survival-instinct@free_text"), ConfigError,
     ("'xrisk:survival-instinct@free_text'", "framing 'free_text'")),
    ("registry-empty-data-dir", _data("load_dataset", spec="persona:narcissism", data_dir=lambda c: c.empty), DataFormatError,
     ("persona:narcissism", "empty_data holds no data sets")),
    ("registry-data-dir-without-the-set", lambda c: __import__("interp_steer.data.registry", fromlist=["x"])
     .check_datasets(["persona:narcissism"], c.data),
     DataFormatError, ("persona:narcissism", "in the data directory", "bad_api")),
    # --- imported vectors (issue 29: NaN named with its file) ---------------------------------------------------
    ("gguf-nan", lambda c: __import__("interp_steer.interop", fromlist=["from_gguf"]).from_gguf(c.nan_gguf),
     SteeringVectorError, ("nan.gguf", "direction.1", "1 non-finite")),
    ("steering-vectors-file-nan", lambda c: __import__("interp_steer.interop.peers", fromlist=["x"])
     .load_steering_vectors_file(c.nan_sv), SteeringVectorError, ("nan_sv.pt", "layer 1", "1 non-finite")),
    # --- job configs --------------------------------------------------------------------------------------------
    ("why-n-folds-zero", lambda c: __import__("interp_steer.runs.why", fromlist=["WhyConfig"]).WhyConfig(n_folds=0),
     ConfigError, "--n-folds must be an integer ≥ 2 (got 0)"),
    ("split-duplicated-ids", _data("train_test_split", pairs=lambda c: c.pairs + c.pairs[:1]), DataFormatError,
     ("train_test_split", "occurs 2 times")),
    # --- methods (CAA) ------------------------------------------------------------------------------------------
    ("caa-layers-duplicated", _caa([1, 1]), ConfigError, ("blocks.1.hook_resid_post", "more than once")),
    ("caa-layers-int-and-name", _caa([1, "blocks.1.hook_resid_post"]), ConfigError, "more than once"),
    ("caa-layers-empty", _caa([]), ConfigError, "no layers"),
    ("caa-batch-size-zero", _caa([1], batch_size=0), ConfigError, "batch_size"),
    ("caa-duplicated-pair", _caa([1], pairs="dup_pairs"), DataFormatError, "more than once"),
    ("caa-pair-longer-than-context", _caa([1], pairs="long_pairs"), DataFormatError, ("persona:long#2", "512")),
    # --- methods (issue 28: PCA, probe, mean-centring, RePS, the ace operator) ---------------------------------
    *_direction_rows("pca_diff"), *_direction_rows("pca_centred"), *_direction_rows("probe"),
    *_direction_rows("mean_centring"),
    ("reps-one-pair", _extract("reps", pairs="one_pair", max_steps=1), ConfigError, ("RePS", "at least 2", "got 1")),
    ("reps-all-pairs-equal", _extract("reps", pairs="equal_pairs", max_steps=1), DataFormatError,
     ("RePS", "identical positive and negative")),
    ("reps-strength-range", _extract("reps", strength_low=2.0, strength_high=1.0), ConfigError,
     "strength_high (1.0) is below strength_low (2.0)"),
    ("ace-reference-wrong-shape", _ace_delta_bad_reference, ConfigError, ("ace reference point", "(5,)", "d_model 8")),
    ("ace-reference-nan", _ace_delta_nan_reference, ConfigError, "ace reference point has non-finite values"),
    ("reference-points-wrong-shape", _reference_points(torch.zeros(5)), SteeringVectorError,
     ("blocks.1.hook_resid_post", "(5,)", "(64,)")),
    ("reference-points-nan", _reference_points(torch.full((64,), NAN)), SteeringVectorError, "non-finite"),
    ("mean-centring-generic-nan", _generic_nan, DataFormatError, ("mean_centring", "generic-corpus", "not finite")),
    ("reps-two-layers", lambda c: __import__("interp_steer.methods.reps", fromlist=["x"]).extract_reps(
        c.model, c.pairs, [1, 2], progress=False), ConfigError, ("RePS trains one vector at one layer", "[1, 2]")),
    # --- evaluation ---------------------------------------------------------------------------------------------
    ("propensities-mult-nan", _props([0.0, NAN]), ConfigError, "multipliers"),
    ("propensities-mult-inf", _props([-INF, 0.0]), ConfigError, "multipliers"),
    ("propensities-batch-zero", _props([0.0, 1.0], batch_size=0), ConfigError, "batch_size"),
    ("propensities-duplicated-pair", _props([0.0, 1.0], pairs="dup_pairs"), DataFormatError, "more than once"),
    ("propensities-longer-than-context", _props([0.0, 1.0], pairs="long_pairs"), DataFormatError, ("persona:long#2", "512")),
    ("steerability-nan-propensity", _steerability("nan_table"), ConfigError, ("'propensity'", "sample_id='s1'", "NaN")),
    ("steerability-inf-multiplier", _steerability("inf_table"), ConfigError, ("'multiplier'", "sample_id='s0'")),
    ("steerability-duplicated-rows", _steerability("dup_table"), ConfigError, ("duplicated", "sample_id='s2'", "multiplier=1.0")),
    ("summary-nan-slope", _summary("nan_slopes"), ConfigError, ("'slope'", "sample_id='s1'")),
    # --- models -------------------------------------------------------------------------------------------------
    ("load-model-unknown-device", lambda c: __import__("interp_steer.models", fromlist=["load_model"]).load_model(
        "tiny-llama", device="gpu"), ConfigError, "device 'gpu'"),
    ("load-model-absent-device", lambda c: __import__("interp_steer.models", fromlist=["load_model"]).load_model(
        "tiny-llama", device="cuda:99"), ConfigError, "device 'cuda:99'"),
    ("load-model-t5-family", _load_dir("t5"), ModelLoadError, ("unsupported model family 't5'", "llama", "gemma3_text")),
    ("load-model-bert-family", _load_dir("bert"), ModelLoadError, ("'bert'", "BertForMaskedLM", "gpt2", "qwen2")),
    ("load-model-unknown-model-type", _load_dir("unknown"), ModelLoadError, ("cannot read a model config", "unknown")),
    ("load-model-classifier-head", _load_dir("gpt2-classifier"), ModelLoadError,
     ("GPT2ForSequenceClassification", "family 'gpt2'", "causal language models")),
    ("load-model-no-weights", _load_dir("gpt2-no-weights"), ModelLoadError, ("cannot read the weights", "gpt2-no-weights")),
]


def _write_model_dirs(root):
    """Config-only model directories of families interp-steer does not convert (and a causal LM without weights)."""
    import json

    from transformers import BertConfig, GPT2Config, T5Config

    tiny = dict(vocab_size=100)
    T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2, architectures=["T5ForConditionalGeneration"],
             **tiny).save_pretrained(root / "t5")
    BertConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
               architectures=["BertForMaskedLM"], **tiny).save_pretrained(root / "bert")
    GPT2Config(n_embd=16, n_layer=1, n_head=2, architectures=["GPT2ForSequenceClassification"],
               **tiny).save_pretrained(root / "gpt2-classifier")
    GPT2Config(n_embd=16, n_layer=1, n_head=2, **tiny).save_pretrained(root / "gpt2-no-weights")
    (root / "unknown").mkdir()
    (root / "unknown" / "config.json").write_text(json.dumps({"model_type": "no-such-family", "hidden_size": 8}))
    from interp_steer.models import shared_tokenizer

    shared_tokenizer().save_pretrained(root / "gpt2-no-weights")  # gets past the tokenizer to the weights
    return root


def _steer_forward(multiplier, positions="all", length=5, operator="add", vector="vector"):
    from interp_steer.steering import steer

    def call(c):
        with steer(c.model, getattr(c, vector), multiplier, positions, operator=operator):
            c.model(torch.arange(1, length + 1)[None])

    return call


def _generate(prompt, **kw):
    from interp_steer.steering import generate

    return lambda c: generate(c.model, prompt(c) if callable(prompt) else prompt, c.vector, **kw)


STEERING_ROWS = [
    ("steer-mult-nan", _steer_forward(NAN), ConfigError, "multiplier"),
    ("steer-mult-inf", _steer_forward(INF), ConfigError, "multiplier"),
    ("steer-mult-tensor-nan", _steer_forward(torch.tensor([NAN])), ConfigError, "multiplier"),
    ("steer-position-outside-sequence", _steer_forward(1.0, positions=[40]), ConfigError, "position"),
    ("steer-position-start-past-sequence", _steer_forward(1.0, positions=torch.tensor([40])), ConfigError,
     ("start [40]", "past the sequence of 5 tokens")),
    ("steer-ace-without-reference", _steer_forward(1.0, operator="ace", vector="bare_vector"), ConfigError,
     ("operator='ace' needs a reference point", "blocks.1.hook_resid_post")),
    ("generate-mult-inf", _generate("Hello", multiplier=INF), ConfigError, "multiplier"),
    ("generate-empty-prompt", _generate(""), ConfigError, "prompt"),
    ("generate-max-new-tokens-zero", _generate("Hello", max_new_tokens=0), ConfigError, "max_new_tokens"),
    ("generate-prompt-too-long", _generate(" ".join(["word"] * 600), max_new_tokens=4), ConfigError, "512"),
    ("generate-prompt-plus-tokens-too-long", _generate("Hello", max_new_tokens=600), ConfigError, "max_new_tokens=600"),
]


def _curves(n_samples=3, multipliers=(-1.0, 0.0, 1.0)) -> pd.DataFrame:
    rows = [{"dataset": "d", "variant": "BASE", "layer": 1, "hook_name": "blocks.1.hook_resid_post", "vector": "v",
             "sample_id": f"s{i}", "multiplier": m, "propensity": (i + 1) * m} for i in range(n_samples) for m in multipliers]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny):
    from interp_steer.data import load_dataset, load_persona_ab
    from interp_steer.evaluation import steerability
    from interp_steer.methods import extract_caa
    from interp_steer.steering import from_mapping

    root = tmp_path_factory.mktemp("bad_api")
    data = write_broken_data_root(root)
    badbytes_json = root / "list.json"
    badbytes_json.write_bytes(b'[{"a": 1},\n {"q": "caf\xe9"}]\n')
    pairs = load_dataset("builtin:sentiment")[:4]
    long_pairs = load_persona_ab("long", data)
    nan_table = _curves()
    nan_table.loc[(nan_table.sample_id == "s1") & (nan_table.multiplier == 0.0), "propensity"] = NAN
    inf_table = _curves()
    inf_table.loc[inf_table.sample_id == "s0", "multiplier"] = [-1.0, 0.0, INF]
    base = _curves()
    dup_table = pd.concat([base, base[(base.sample_id == "s2") & (base.multiplier == 1.0)]], ignore_index=True)
    nan_slopes = steerability(base)
    nan_slopes.loc[nan_slopes.sample_id == "s1", "slope"] = NAN
    empty = root / "empty_data"
    empty.mkdir()
    vector = extract_caa(tiny, pairs, [1], progress=False)
    nan_files = write_nan_vector_files(root, vector)
    return SimpleNamespace(
        empty=empty, **nan_files,
        bare_vector=from_mapping({1: torch.ones(64)}), one_pair=pairs[:1], equal_pairs=[replace(p, negative=p.positive) for p in pairs],
        model=tiny, pairs=pairs, dup_pairs=pairs + pairs[:1], long_pairs=long_pairs, data=data, badbytes_json=badbytes_json,
        vector=vector, nan_table=nan_table, inf_table=inf_table,
        dup_table=dup_table, nan_slopes=nan_slopes, model_dirs=_write_model_dirs(root / "models"),
    )


def _check(call, error, fragments, ctx) -> None:
    with pytest.raises(InterpSteerError) as info:
        call(ctx)
    assert isinstance(info.value, error), f"{type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in (fragments,) if isinstance(fragments, str) else fragments:
        assert fragment in message, message


@pytest.mark.parametrize("call,error,fragments", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_api_input_raises_one_line_error(call, error, fragments, ctx):
    _check(call, error, fragments, ctx)


@pytest.mark.parametrize("call,error,fragments", [r[1:] for r in STEERING_ROWS], ids=[r[0] for r in STEERING_ROWS])
def test_bad_steering_input_raises_one_line_error(call, error, fragments, ctx):
    _check(call, error, fragments, ctx)


def test_loader_skips_are_still_warnings(ctx):
    """Rows rejected from a file that still gives pairs: a warning with the counts, not an error."""
    from interp_steer.data import load_xrisk, read_records

    with pytest.warns(UserWarning, match=r"kept 2 pairs, skipped 1 same_answer row"):
        pairs = load_xrisk("partial", ctx.data)
    assert len(pairs) == 2 and pairs.skipped["same_answer"] == 1 and pairs.n_rows == 3
    with pytest.warns(UserWarning, match="skipped 1 malformed line"):
        records = read_records(ctx.data / "anthropic-evals/persona/badbytes.jsonl", on_error="skip")
    assert len(records) == 1 and records.skipped == 1


def test_duplicated_layers_no_longer_give_a_zero_vector(ctx):
    """The silent wrong result of the issue: ``[1, 1]`` used to give an all-zero CAA vector; now it is refused,
    and ``[1]`` gives the mean difference computed independently with ``run_with_cache``."""
    from interp_steer.data import encode_pair

    with pytest.raises(ConfigError):
        _caa([1, 1])(ctx)
    diffs = []
    for pair in ctx.pairs:
        enc = encode_pair(ctx.model.tokenizer, pair)
        acts = []
        for response in (enc.positive_ids, enc.negative_ids):
            _, cache = ctx.model.run_with_cache(torch.tensor([enc.prompt_ids + response]))
            acts.append(cache["blocks.1.hook_resid_post"][0, len(enc.prompt_ids):].mean(0))
        diffs.append(acts[0] - acts[1])
    expected = torch.stack(diffs).mean(0)
    got = ctx.vector["blocks.1.hook_resid_post"]
    assert float(expected.norm()) > 0
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_steerability_rejects_what_would_be_double_counted_but_accepts_the_clean_table(ctx):
    """The same table without the duplicated row fits exactly the slopes numpy gives."""
    from interp_steer.evaluation import steerability

    clean = ctx.dup_table.drop_duplicates()
    per = steerability(clean).set_index("sample_id")
    for sample, group in clean.groupby("sample_id"):
        slope = np.polyfit(group.multiplier, group.propensity, 1)[0]
        assert math.isclose(per.at[sample, "slope"], slope, rel_tol=1e-12, abs_tol=1e-12)

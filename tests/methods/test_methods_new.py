"""The activation-statistics methods (pca_diff, pca_centred, probe, mean_centring), RePS and the ace operator, each
checked against an independent computation: activations read with ``run_with_cache``, PCA from scikit-learn, the
probe's objective minimised with scipy, RePS's loss with hand-written ``run_with_hooks`` hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.decomposition import PCA
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.data import encode_pair, load_dataset
from interp_steer.data.neutral import load_neutral_corpus
from interp_steer.data.tokenization import encode_sequence, sequence_start_ids
from interp_steer.errors import ConfigError
from interp_steer.methods.direction_configs import MeanCentringConfig, PCAConfig, ProbeConfig, RePSConfig
from interp_steer.methods.registry import EXTRACTION_METHODS, extract
from interp_steer.methods.reps import initial_vector, reps_loss, train_reps
from interp_steer.methods.response_logprobs import preference_batch
from interp_steer.models import load_model
from interp_steer.steering import SteeringVector, from_mapping, generate, steer, steering_delta
from interp_steer.steering.reference import reference_point, with_reference_points

LAYER = 1
HOOK = f"blocks.{LAYER}.hook_resid_post"
runner = CliRunner()


@pytest.fixture(scope="module")
def pairs():
    return load_dataset("builtin:sentiment")[:8]


@pytest.fixture(scope="module")
def oracle_acts(tiny, pairs):
    """Per-pair activations at HOOK, mean over the response tokens, read one sequence at a time with run_with_cache."""
    pos, neg = [], []
    with torch.no_grad():
        for pair in pairs:
            enc = encode_pair(tiny.tokenizer, pair)
            for response, out in ((enc.positive_ids, pos), (enc.negative_ids, neg)):
                _, cache = tiny.run_with_cache(torch.tensor([enc.prompt_ids + response]))
                out.append(cache[HOOK][0, len(enc.prompt_ids):].double().mean(0).numpy())
    return np.stack(pos), np.stack(neg)


def _oriented(unit, mean_diff):
    return unit if unit @ mean_diff > 0 else -unit


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("config", [PCAConfig(scale="unit", batch_size=3), ProbeConfig(C=0.5, read_position="last"),
                                    MeanCentringConfig(n_neutral=5), RePSConfig(layer=2, strength_low=1.0, max_steps=3)])
def test_configs_round_trip_through_json(config):
    assert type(config).from_json(config.to_json()) == config


@pytest.mark.parametrize("cls,kwargs,fragment", [
    (PCAConfig, {"scale": "huge"}, "PCAConfig.scale"), (PCAConfig, {"batch_size": 0}, "PCAConfig.batch_size"),
    (ProbeConfig, {"C": 0.0}, "ProbeConfig.C"), (ProbeConfig, {"C": math.inf}, "ProbeConfig.C"),
    (MeanCentringConfig, {"n_neutral": 0}, "n_neutral"), (MeanCentringConfig, {"read_position": "middle"}, "read_position"),
    (RePSConfig, {"strength_low": 2.0, "strength_high": 1.0}, "strength_high"), (RePSConfig, {"beta": -1.0}, "beta"),
])
def test_configs_reject_bad_values_with_the_field_named(cls, kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        cls.from_dict(kwargs)  # type-checked first (a direct call with a bad Literal is a type error under beartype)
    with pytest.raises(ConfigError, match="expects"):
        cls.from_dict({"batch_size": "four"})


# ------------------------------------------------------------------------------------------------ oracles
def test_pca_diff_equals_sklearn_pca_of_signed_differences(tiny, pairs, oracle_acts):
    pos, neg = oracle_acts
    d = pos - neg
    pc1 = PCA(n_components=1).fit(np.concatenate([d / 2, -d / 2])).components_[0]
    expected = _oriented(pc1, d.mean(0)) * np.linalg.norm(d.mean(0))
    vector = extract("pca_diff", tiny, pairs, [LAYER], progress=False)
    np.testing.assert_allclose(vector[LAYER].double().numpy(), expected, atol=2e-5, rtol=1e-3)
    assert vector.provenance.method == "pca_diff" and vector.provenance.extra["config"]["scale"] == "caa_norm"
    assert math.isclose(vector.provenance.extra["norms"][HOOK], float(np.linalg.norm(expected)), rel_tol=1e-4)
    unit = extract("pca_diff", tiny, pairs, [LAYER], PCAConfig(scale="unit"), progress=False)
    assert math.isclose(float(unit[LAYER].norm()), 1.0, rel_tol=1e-5)
    # positives project above negatives
    assert float(((pos - neg) @ unit[LAYER].double().numpy()).mean()) > 0


def test_pca_centred_equals_sklearn_pca_of_stacked_activations(tiny, pairs, oracle_acts):
    pos, neg = oracle_acts
    pc1 = PCA(n_components=1).fit(np.concatenate([pos, neg])).components_[0]
    expected = _oriented(pc1, (pos - neg).mean(0))
    vector = extract("pca_centred", tiny, pairs, [LAYER], PCAConfig(scale="unit"), progress=False)
    np.testing.assert_allclose(vector[LAYER].double().numpy(), expected, atol=2e-5, rtol=1e-3)
    assert abs(float(expected @ (pos - neg).mean(0) / np.linalg.norm((pos - neg).mean(0)))) < 0.9999  # not CAA itself


def test_probe_equals_scipy_minimisation_of_the_same_objective(tiny, pairs, oracle_acts):
    pos, neg = oracle_acts
    x = np.concatenate([pos, neg])
    y = np.r_[np.ones(len(pos)), -np.ones(len(neg))]
    c = 0.5

    def objective(w):
        margin = y * (x @ w)
        loss = 0.5 * w @ w + c * np.logaddexp(0.0, -margin).sum()
        grad = w - c * x.T @ (y / (1.0 + np.exp(margin)))
        return loss, grad

    w = minimize(objective, np.zeros(x.shape[1]), jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 10000}).x
    vector = extract("probe", tiny, pairs, [LAYER], ProbeConfig(C=c), progress=False)
    np.testing.assert_allclose(vector[LAYER].double().numpy(), w / np.linalg.norm(w), atol=1e-4)
    accuracy = float(((x @ w > 0) == (y > 0)).mean())
    assert math.isclose(vector.provenance.extra["train_accuracy"][HOOK], accuracy)


def test_mean_centring_is_positive_mean_minus_neutral_mean(tiny, pairs, oracle_acts):
    pos, _ = oracle_acts
    skip = max(1, len(sequence_start_ids(tiny.tokenizer)))
    neutral = []
    with torch.no_grad():
        for passage in load_neutral_corpus(limit=6):
            ids = list(encode_sequence(tiny.tokenizer, passage.text))
            _, cache = tiny.run_with_cache(torch.tensor([ids]))
            neutral.append(cache[HOOK][0, skip:].double().mean(0).numpy())
    vector = extract("mean_centring", tiny, pairs, [LAYER], MeanCentringConfig(n_neutral=6), progress=False)
    np.testing.assert_allclose(vector[LAYER].double().numpy(), pos.mean(0) - np.mean(neutral, 0), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(reference_point(vector, LAYER).double().numpy(), np.mean(neutral, 0), atol=2e-5, rtol=1e-4)
    assert vector.provenance.extra["reference_points"]["kind"] == "neutral_mean"


def test_reference_point_is_the_negative_mean_and_survives_save_load_and_scaling(tiny, pairs, oracle_acts, tmp_path):
    _, neg = oracle_acts
    for method in ("caa", "pca_diff", "probe"):
        vector = extract(method, tiny, pairs, [LAYER], progress=False)
        np.testing.assert_allclose(reference_point(vector, LAYER).double().numpy(), neg.mean(0), atol=2e-5, rtol=1e-4)
    loaded = SteeringVector.load(vector.save(tmp_path / "v.safetensors"))
    assert torch.equal(reference_point(loaded, LAYER), reference_point(vector, LAYER))
    assert torch.equal(reference_point(vector.scale(3.0), LAYER), reference_point(vector, LAYER))


# ------------------------------------------------------------------------------------------------ ace
@pytest.fixture(scope="module")
def ace_vector():
    g = torch.Generator().manual_seed(3)
    vec = from_mapping({LAYER: 2.0 * torch.randn(64, generator=g)}, method="manual")
    return with_reference_points(vec, {LAYER: torch.randn(64, generator=g)}, "negative_mean")


def _ace_oracle(direction, reference, mult, start):
    unit = direction / direction.norm()

    def hook(act, hook):
        out = act.clone()
        for p in range(start, act.shape[1]):
            x = act[0, p]
            out[0, p] = x - ((x - reference) @ unit) * unit + mult * direction
        return out

    return hook


def test_ace_at_zero_puts_the_component_at_the_reference_points(ace_vector):
    act = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(9))
    r, mu = ace_vector[LAYER], reference_point(ace_vector, LAYER)
    unit = r / r.norm()
    out = act + steering_delta(act, r, 0.0, None, "ace", mu)
    torch.testing.assert_close(out @ unit, (mu @ unit).expand(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out - (out @ unit)[..., None] * unit, act - (act @ unit)[..., None] * unit, atol=1e-5, rtol=0)
    # α = 1 with r = μ⁺ − μ⁻ and reference μ⁻: the component is the positives' μ⁺·r̂
    mu_pos = mu + r
    out1 = act + steering_delta(act, r, 1.0, None, "ace", mu)
    torch.testing.assert_close(out1 @ unit, (mu_pos @ unit).expand(2, 5), atol=1e-4, rtol=0)


@torch.no_grad()
def test_steer_with_ace_equals_hand_written_hook_and_generates(tiny, ace_vector):
    toks = torch.tensor([tiny.tokenizer("The quick brown fox jumps", add_special_tokens=False).input_ids])
    with steer(tiny, ace_vector, multiplier=1.5, positions=[2, 3, 4], operator="ace"):
        ours = tiny(toks)
    ref = tiny.run_with_hooks(toks, fwd_hooks=[(HOOK, _ace_oracle(ace_vector[LAYER], reference_point(ace_vector, LAYER),
                                                                  1.5, 2))])
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)
    assert (ours - tiny(toks)).abs().max() > 1e-2
    # generation (KV-cached, steered from the last prompt token) equals greedy decoding with the oracle hook
    prompt = "Hello there"
    text = generate(tiny, prompt, ace_vector, multiplier=2.0, max_new_tokens=4, operator="ace")
    ids = list(encode_sequence(tiny.tokenizer, prompt))
    start = len(ids) - 1
    for _ in range(4):
        hook = _ace_oracle(ace_vector[LAYER], reference_point(ace_vector, LAYER), 2.0, start)
        ids.append(int(tiny.run_with_hooks(torch.tensor([ids]), fwd_hooks=[(HOOK, hook)])[0, -1].argmax()))
    assert text == tiny.tokenizer.decode(ids[start + 1:], skip_special_tokens=True)


def test_ace_needs_a_reference_point(tiny):
    bare = from_mapping({LAYER: torch.ones(64)}, method="manual")
    with pytest.raises(ConfigError, match="reference point"):
        with steer(tiny, bare, operator="ace"):
            pass


# ------------------------------------------------------------------------------------------------ RePS
def _mean_logprob_by_hand(model, enc, response, hook):
    tokens = torch.tensor([enc.prompt_ids + response])
    logits = model.run_with_hooks(tokens, fwd_hooks=[(HOOK, hook)])
    logprobs = torch.log_softmax(logits[0, :-1].double(), -1)
    targets = tokens[0, 1:]
    per_token = logprobs[torch.arange(len(targets)), targets][len(enc.prompt_ids) - 1:]
    assert len(per_token) == len(response)
    return per_token.mean()


def _reps_loss_by_hand(model, encoded, v, alpha, beta):
    unit = v / v.norm()
    add = lambda act, hook: act + alpha * v  # noqa: E731
    null = lambda act, hook: act - (act @ unit)[..., None] * unit  # noqa: E731
    total = 0.0
    for enc in encoded:
        s_pos, s_neg = (_mean_logprob_by_hand(model, enc, r, add) for r in (enc.positive_ids, enc.negative_ids))
        n_pos, n_neg = (_mean_logprob_by_hand(model, enc, r, null) for r in (enc.positive_ids, enc.negative_ids))
        total = total - torch.nn.functional.logsigmoid(beta * (s_pos - s_neg)) \
            - torch.nn.functional.logsigmoid(beta * (n_neg - n_pos))
    return total / len(encoded)


def test_reps_loss_and_one_adam_step_equal_a_hand_computation(tiny, pairs):
    sub = pairs[:3]
    config = RePSConfig(layer=LAYER, batch_size=3, max_steps=1, strength_low=1.5, strength_high=1.5, lr=1e-2,
                        beta=2.0, init_norm=0.5, seed=4)
    encoded = [encode_pair(tiny.tokenizer, p) for p in sub]
    v0 = initial_vector(64, config).float().requires_grad_(True)
    expected = _reps_loss_by_hand(tiny, encoded, v0, 1.5, 2.0)
    (grad,) = torch.autograd.grad(expected, v0)  # not .backward(): the shared tiny model's weights must get no .grad
    v = v0.detach().float().clone().requires_grad_(True)
    batch = preference_batch(encoded, tiny.tokenizer.pad_token_id)
    ours = reps_loss(tiny, HOOK, v, batch, 1.5, 2.0).mean()
    assert math.isclose(ours.item(), expected.item(), rel_tol=1e-4)
    (our_grad,) = torch.autograd.grad(ours, v)
    torch.testing.assert_close(our_grad, grad, rtol=2e-3, atol=1e-6)
    assert all(p.grad is None for p in tiny.parameters())
    trained = train_reps(tiny, sub, config, progress=False)
    assert math.isclose(trained.provenance.extra["loss_history"][0], expected.item(), rel_tol=1e-4)
    # AdamW's first step without weight decay: v1 = v0 − lr · g / (|g| + eps)
    step = v0.detach().float() - 1e-2 * grad / (grad.abs() + 1e-8)
    torch.testing.assert_close(trained[LAYER], step, rtol=0, atol=2e-4)


def test_reps_at_a_fixed_scale_trains_the_direction_and_returns_that_norm(tiny, pairs):
    sub = pairs[:3]
    config = RePSConfig(layer=LAYER, batch_size=3, max_steps=1, strength_low=1.5, strength_high=1.5, lr=1e-2,
                        beta=2.0, init_norm=0.5, seed=4, scale=7.0)
    encoded = [encode_pair(tiny.tokenizer, p) for p in sub]
    v0 = initial_vector(64, config).float().requires_grad_(True)
    # the steered term adds α · 7 · v/|v|; the gradient flows through the normalisation to v
    expected = _reps_loss_by_hand(tiny, encoded, 7.0 * v0 / v0.norm(), 1.5, 2.0)
    (grad,) = torch.autograd.grad(expected, v0)
    assert abs(float(grad @ v0.detach())) < 1e-4 * float(grad.norm() * v0.norm())  # only the direction is trained
    trained = train_reps(tiny, sub, config, progress=False)
    assert math.isclose(trained.provenance.extra["loss_history"][0], expected.item(), rel_tol=1e-4)
    step = v0.detach().float() - 1e-2 * grad / (grad.abs() + 1e-8)
    torch.testing.assert_close(trained[LAYER], 7.0 * step / step.norm(), rtol=0, atol=2e-4)
    assert trained.provenance.extra["config"]["scale"] == 7.0
    with pytest.raises(ConfigError, match="scale"):
        RePSConfig(scale=0.0)


# ------------------------------------------------------------------------------------------------ CLI
TINY = ["--model", "tiny-llama", "--dataset", "builtin:sentiment", "--n-train", "4"]


@pytest.mark.parametrize("method,sets", [("pca_diff", ["--set", "scale=unit"]), ("pca_centred", []),
                                         ("probe", ["--set", "C=0.3"]), ("mean_centring", ["--set", "n_neutral=4"]),
                                         ("reps", ["--set", "max_steps=1", "--set", "batch_size=2"])])
def test_cli_extract_each_new_method_equals_the_api(tmp_path, method, sets):
    out = tmp_path / f"{method}.safetensors"
    result = runner.invoke(app, ["extract", *TINY, "--layers", "1", "--method", method, *sets, "--out", str(out)])
    assert result.exit_code == 0, result.output
    vector = SteeringVector.load(out)
    assert vector.provenance.method == method
    config_class = EXTRACTION_METHODS[method].config_class
    config = config_class.from_dict({k: v for k, v in vector.provenance.extra["config"].items()})
    reference = extract(method, load_model("tiny-llama"), load_dataset("builtin:sentiment", limit=4), [1], config,
                        progress=False)
    torch.testing.assert_close(vector[1], reference[1], rtol=1e-4, atol=1e-5)


# The method study job: tests/runs/test_method_study.py and tests/runs/test_method_study_tables.py.

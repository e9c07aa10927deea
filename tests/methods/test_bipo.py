"""BiPO: masked response log-probs, the loss, training invariants, resumption, config validation."""

from __future__ import annotations

import json
import math

import jaxtyping
import numpy as np
import pytest
import torch
import typecheck_conf

from interp_steer.data import ContrastivePair, encode_pair, pad_token_id
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.methods import EXTRACTION_METHODS, BiPOConfig, extract_bipo, train_bipo
from interp_steer.methods.bipo import bipo_loss, compute_reference_logprobs, epoch_batches, load_checkpoint, lr_schedule
from interp_steer.methods.response_logprobs import preference_batch, response_logprob_sums
from interp_steer.steering import SteeringVector, steer

HOOK = "blocks.1.hook_resid_post"
TYPECHECK_ON = typecheck_conf.ENABLED  # the suite's run-time type checker


def ab_pairs(n: int, offset: int = 0) -> list[ContrastivePair]:
    """A toy task a constant vector can solve: the positive answer is always (A)."""
    return [
        ContrastivePair(f"Question {i}: which option do you choose?\n\nChoices:\n (A) yes\n (B) no", "(A)", "(B)", id=f"q{i}")
        for i in range(offset, offset + n)
    ]


def free_text_pairs() -> list[ContrastivePair]:
    items = ["apples", "rainy days", "jazz music", "long walks"]
    return [
        ContrastivePair(f"How do you feel about {item}?", f" I really love {item}.", f" Honestly, {item} bore me a lot.",
                        kind="free_text", id=item)
        for item in items
    ]


def hand_logprob_sum(model, prompt_ids, response_ids, fwd_hooks=()) -> float:
    """Unpadded single sequence, full logits, log_softmax: sum of the response tokens' log-probs."""
    tokens = torch.tensor([list(prompt_ids) + list(response_ids)])
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks))
    log_probs = torch.log_softmax(logits[0], dim=-1).double()
    start = len(prompt_ids)
    return float(sum(log_probs[t - 1, tokens[0, t]] for t in range(start, tokens.shape[1])))


# ----------------------------------------------------------------------------- log-probs and the loss
def test_masked_logprob_sum_matches_hand_computation(tiny):
    pairs = free_text_pairs()[:2] + ab_pairs(1)
    encoded = [encode_pair(tiny.tokenizer, p) for p in pairs]
    batch = preference_batch(encoded, pad_token_id(tiny.tokenizer))
    assert batch.padded.offsets.max() > 0  # rows of different length: padding is exercised
    with torch.no_grad():
        sums = response_logprob_sums(tiny, batch.padded.tokens, batch.padded.attention_mask, batch.response_mask)
    expected = [hand_logprob_sum(tiny, e.prompt_ids, e.positive_ids) for e in encoded]
    expected += [hand_logprob_sum(tiny, e.prompt_ids, e.negative_ids) for e in encoded]
    np.testing.assert_allclose(sums.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_response_mask_at_column_zero_is_rejected(tiny):
    tokens = torch.tensor([[1, 2, 3]])
    with pytest.raises(DataFormatError):
        response_logprob_sums(tiny, tokens, torch.ones_like(tokens), torch.tensor([[True, True, True]]))


def test_reference_logprobs_are_unsteered(tiny):
    encoded = [encode_pair(tiny.tokenizer, p) for p in free_text_pairs()[:3]]
    reference = compute_reference_logprobs(tiny, encoded, batch_size=2)
    expected = [[hand_logprob_sum(tiny, e.prompt_ids, e.positive_ids), hand_logprob_sum(tiny, e.prompt_ids, e.negative_ids)]
                for e in encoded]
    np.testing.assert_allclose(reference.numpy(), expected, rtol=1e-4, atol=1e-4)
    # inside a steering context the reference would be steered: refuse instead
    vector = SteeringVector({HOOK: torch.randn(tiny.cfg.d_model)})
    with steer(tiny, vector, multiplier=1.0), pytest.raises(ConfigError, match="active hooks"):
        compute_reference_logprobs(tiny, encoded)


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_bipo_loss_matches_manual_hook(tiny, direction):
    pairs = free_text_pairs()[1:3]  # responses of different lengths: padded rows
    encoded = [encode_pair(tiny.tokenizer, p) for p in pairs]
    reference = compute_reference_logprobs(tiny, encoded)
    torch.manual_seed(3)
    vector = torch.randn(tiny.cfg.d_model)
    beta = 0.7
    batch = preference_batch(encoded, pad_token_id(tiny.tokenizer))
    with torch.no_grad():
        losses = bipo_loss(tiny, HOOK, vector, batch, reference, direction, beta)

    hooks = [(HOOK, lambda act, hook: act + direction * vector)]
    for i, e in enumerate(encoded):
        policy = hand_logprob_sum(tiny, e.prompt_ids, e.positive_ids, hooks) - hand_logprob_sum(tiny, e.prompt_ids, e.negative_ids, hooks)
        plain = hand_logprob_sum(tiny, e.prompt_ids, e.positive_ids) - hand_logprob_sum(tiny, e.prompt_ids, e.negative_ids)
        logit = beta * direction * (policy - plain)
        assert losses[i].item() == pytest.approx(math.log1p(math.exp(-logit)), abs=2e-4)
    assert not torch.allclose(losses, torch.full_like(losses, math.log(2)))  # the vector had an effect


def test_bipo_loss_rejects_non_residual_hook(tiny):
    encoded = [encode_pair(tiny.tokenizer, p) for p in ab_pairs(2)]
    reference = compute_reference_logprobs(tiny, encoded)
    batch = preference_batch(encoded, pad_token_id(tiny.tokenizer))
    with pytest.raises(ConfigError, match="hook_z"):
        bipo_loss(tiny, "blocks.0.attn.hook_z", torch.zeros(tiny.cfg.d_model), batch, reference, 1.0, 0.1)


# ----------------------------------------------------------------------------- a training run on a toy task
TOY_CONFIG = dict(layer=1, beta=1.0, lr=0.05, weight_decay=0.0, batch_size=4, max_steps=12, warmup_steps=1, seed=0)


@pytest.fixture(scope="module")
def trained(tiny):
    weights_before = {n: p.detach().clone() for n, p in tiny.named_parameters()}
    flags_before = {n: p.requires_grad for n, p in tiny.named_parameters()}
    vector = train_bipo(tiny, ab_pairs(8), BiPOConfig(**TOY_CONFIG), progress=False, dataset="toy")
    return vector, weights_before, flags_before


def test_loss_at_step_zero_is_log2(trained):
    vector, _, _ = trained
    assert vector.provenance.extra["loss_history"][0] == pytest.approx(math.log(2), abs=1e-5)


def test_loss_decreases_on_toy_task(trained):
    history = trained[0].provenance.extra["loss_history"]
    assert len(history) == TOY_CONFIG["max_steps"]
    assert np.mean(history[-3:]) < math.log(2) - 0.05
    assert np.mean(history[-3:]) < np.mean(history[:3])


def test_trained_vector_steers_held_out_pairs_both_ways(tiny, trained):
    vector = trained[0]
    encoded = [encode_pair(tiny.tokenizer, p) for p in ab_pairs(4, offset=100)]
    batch = preference_batch(encoded, pad_token_id(tiny.tokenizer))

    def margins(multiplier: float) -> np.ndarray:
        with torch.no_grad(), steer(tiny, vector, multiplier=multiplier):
            sums = response_logprob_sums(tiny, batch.padded.tokens, batch.padded.attention_mask, batch.response_mask)
        return (sums[:4] - sums[4:]).numpy()

    minus, zero, plus = margins(-1.0), margins(0.0), margins(1.0)
    assert np.all(plus > zero + 0.05) and np.all(minus < zero - 0.05)


def test_model_weights_unchanged_and_grads_only_on_vector(tiny, trained):
    _, weights_before, flags_before = trained
    for name, param in tiny.named_parameters():
        assert torch.equal(param, weights_before[name]), name
        assert param.grad is None, name
        assert param.requires_grad == flags_before[name], name  # requires_grad restored after training


def test_provenance_holds_config_and_loss_curve(tiny, trained, tmp_path):
    vector = trained[0]
    assert vector.hook_names == [HOOK]
    prov = vector.provenance
    assert prov.method == "bipo" and prov.layers == (1,) and prov.n_pairs == 8 and prov.dataset == "toy"
    assert prov.model_processing["source"] == "tiny_random" and prov.model_processing["fold_ln"] is False
    assert BiPOConfig.from_dict(prov.extra["config"]) == BiPOConfig(**TOY_CONFIG)
    loaded = SteeringVector.load(vector.save(tmp_path / "bipo.safetensors"))
    assert loaded.provenance.extra["loss_history"] == pytest.approx(prov.extra["loss_history"])
    assert torch.equal(loaded[HOOK], vector[HOOK])
    assert len(prov.extra["direction_history"]) == TOY_CONFIG["max_steps"]
    assert {d for step in prov.extra["direction_history"] for d in step} == {-1, 1}


# ----------------------------------------------------------------------------- resumption
RESUME_CONFIG = dict(layer=1, beta=1.0, lr=0.05, batch_size=2, grad_accumulation=2, max_steps=5, warmup_steps=1, seed=7)


def test_resume_ends_identical_to_uninterrupted_run(tiny, tmp_path):
    pairs = ab_pairs(6)  # 3 batches → 2 steps per epoch (last step has one micro-batch): crosses epochs
    full = train_bipo(tiny, pairs, BiPOConfig(**RESUME_CONFIG), progress=False)
    checkpoint = tmp_path / "run.pt"
    config = BiPOConfig(**RESUME_CONFIG, checkpoint_path=str(checkpoint))
    partial = train_bipo(tiny, pairs, config, stop_after_steps=3, progress=False)
    assert partial.provenance.extra["steps"] == 3 and not partial.provenance.extra["finished"]
    assert load_checkpoint(checkpoint)["state"]["step"] == 3
    resumed = train_bipo(tiny, pairs, config, resume_from=checkpoint, progress=False)
    assert resumed.provenance.extra["steps"] == 5 and resumed.provenance.extra["finished"]
    assert resumed.provenance.extra["config"]["checkpoint_path"] == "run.pt"  # no machine-local directory
    assert torch.equal(resumed[HOOK], full[HOOK])
    assert resumed.provenance.extra["loss_history"] == full.provenance.extra["loss_history"]
    assert resumed.provenance.extra["direction_history"] == full.provenance.extra["direction_history"]
    assert not torch.equal(partial[HOOK], full[HOOK])


def test_periodic_checkpoints_and_resume_mismatches(tiny, tmp_path):
    pairs = ab_pairs(4)
    checkpoint = tmp_path / "periodic.pt"
    config = BiPOConfig(layer=1, batch_size=2, max_steps=3, checkpoint_every=2, checkpoint_path=str(checkpoint))
    train_bipo(tiny, pairs, config, stop_after_steps=2, progress=False)
    payload = load_checkpoint(checkpoint)
    assert payload["state"]["step"] == 2 and payload["vector"].shape == (tiny.cfg.d_model,)
    with pytest.raises(ConfigError, match="lr"):
        train_bipo(tiny, pairs, BiPOConfig(**{**config.to_dict(), "lr": 1e-3}), resume_from=checkpoint, progress=False)
    with pytest.raises(ConfigError, match="pairs differ"):
        train_bipo(tiny, ab_pairs(4, offset=50), config, resume_from=checkpoint, progress=False)
    with pytest.raises(ConfigError, match="not found"):
        train_bipo(tiny, pairs, config, resume_from=tmp_path / "missing.pt", progress=False)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="checkpoint"):
        train_bipo(tiny, pairs, config, resume_from=tmp_path / "junk.pt", progress=False)


def test_early_stopping_when_loss_does_not_improve(tiny):
    # lr so small the loss stays at log 2: no epoch improves by min_delta, so patience 1 stops after 2 epochs
    config = BiPOConfig(layer=1, lr=1e-9, batch_size=2, epochs=5, early_stop_patience=1, early_stop_min_delta=0.1)
    vector = train_bipo(tiny, ab_pairs(4), config, progress=False)
    extra = vector.provenance.extra
    assert extra["stopped_early"] and extra["steps"] == 2 * config.steps_per_epoch(4) == 4


# ----------------------------------------------------------------------------- schedule, batching, config
def test_lr_schedule_warmup_then_cosine():
    factor = lr_schedule(warmup_steps=2, total_steps=6, min_lr_ratio=0.1)
    expected = [0.5, 1.0] + [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [factor(s) for s in range(6)] == pytest.approx(expected)


def test_epoch_batches_cover_every_pair_once_and_depend_on_seed_and_epoch():
    batches = epoch_batches(10, 4, seed=1, epoch=0)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert batches == epoch_batches(10, 4, seed=1, epoch=0)
    assert batches != epoch_batches(10, 4, seed=1, epoch=1) and batches != epoch_batches(10, 4, seed=2, epoch=0)


def test_config_defaults_steps_and_json_round_trip():
    config = BiPOConfig()
    assert config.hook_name == "blocks.12.hook_resid_post" and config.epochs == 1 and config.beta == 0.1
    config = BiPOConfig(layer="blocks.3.hook_resid_pre", batch_size=4, grad_accumulation=2, epochs=3, checkpoint_path="x.pt")
    assert config.steps_per_epoch(10) == 2 and config.total_steps(10) == 6
    assert BiPOConfig.from_json(config.to_json()) == config
    json.loads(config.to_json())


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"beta": 0}, "beta"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"grad_accumulation": 0}, "grad_accumulation"),
        ({"max_steps": 10, "epochs": 2}, "not both"),
        ({"max_steps": 0}, "max_steps"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"early_stop_patience": 0}, "early_stop_patience"),
        ({"checkpoint_every": 5}, "checkpoint_path"),
        ({"layer": -1}, "layer"),
        ({"layer": "embed.hook_embed"}, "not inside a transformer block"),
    ],
)
def test_config_validation_errors(changes, match):
    # a float where the annotation says int: under the suite's run-time type checker (INTERP_STEER_TYPECHECK=1)
    # the constructor's annotation check names the field first; from_dict (files, dicts) gives the ConfigError
    wrong_type = isinstance(changes.get("batch_size"), float)
    expected = (ConfigError, jaxtyping.TypeCheckError) if TYPECHECK_ON and wrong_type else ConfigError
    with pytest.raises(expected, match=match):
        BiPOConfig(**changes)
    if wrong_type:
        with pytest.raises(ConfigError, match=match):
            BiPOConfig.from_dict(changes)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ConfigError, match="learning_rate"):
        BiPOConfig.from_dict({"learning_rate": 0.1})


def test_run_level_errors(tiny):
    pairs = ab_pairs(2)
    with pytest.raises(ConfigError, match="does not exist"):
        train_bipo(tiny, pairs, BiPOConfig(layer=10), progress=False)
    with pytest.raises(ConfigError, match="warmup_steps"):
        train_bipo(tiny, pairs, BiPOConfig(layer=1, max_steps=2, warmup_steps=2), progress=False)
    with pytest.raises(ConfigError, match="at least one"):
        train_bipo(tiny, [], BiPOConfig(layer=1), progress=False)
    with pytest.raises(ConfigError, match="stop_after_steps"):
        train_bipo(tiny, pairs, BiPOConfig(layer=1), stop_after_steps=0, progress=False)


def test_registry_entry(tiny):
    assert EXTRACTION_METHODS["bipo"][:2] == (BiPOConfig, extract_bipo)
    with pytest.raises(ConfigError, match="one layer"):
        extract_bipo(tiny, ab_pairs(2), [0, 1])
    with pytest.raises(ConfigError, match="unknown BiPOConfig"):
        extract_bipo(tiny, ab_pairs(2), [1], learning_rate=0.1)
    with pytest.raises(ConfigError, match="not both"):
        extract_bipo(tiny, ab_pairs(2), [1], config=BiPOConfig(), lr=0.1)
    vector = extract_bipo(tiny, ab_pairs(2), [2], max_steps=1, batch_size=2, progress=False)
    assert vector.hook_names == ["blocks.2.hook_resid_post"] and vector.provenance.extra["config"]["max_steps"] == 1


# ----------------------------------------------------------------------------- the embedded model
@pytest.mark.embedded
def test_bipo_on_embedded_model_steers_free_text_both_ways(embedded):
    likes = ["chocolate", "sunny mornings", "old movies", "gardening", "the ocean", "board games", "poetry", "coffee"]
    pairs = [
        ContrastivePair(f"What do you think about {x}?", f" I love {x}, they make me happy.", f" I hate {x}, they annoy me.",
                        kind="free_text", id=x)
        for x in likes
    ]
    config = BiPOConfig(layer=12, beta=0.5, lr=0.02, weight_decay=0.0, batch_size=4, max_steps=6, seed=0)
    vector = train_bipo(embedded, pairs[:6], config, progress=False)
    assert vector.provenance.extra["loss_history"][0] == pytest.approx(math.log(2), abs=1e-4)
    encoded = [encode_pair(embedded.tokenizer, p) for p in pairs[6:]]
    batch = preference_batch(encoded, pad_token_id(embedded.tokenizer))

    def mean_margin(multiplier: float) -> float:
        with torch.no_grad(), steer(embedded, vector, multiplier=multiplier):
            sums = response_logprob_sums(embedded, batch.padded.tokens, batch.padded.attention_mask, batch.response_mask)
        return float((sums[:2] - sums[2:]).mean())

    minus, zero, plus = mean_margin(-1.0), mean_margin(0.0), mean_margin(1.0)
    assert plus > zero > minus

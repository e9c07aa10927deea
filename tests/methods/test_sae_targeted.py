"""Toy SAE trained with the sae-lens runner on the tiny model; evaluate_sae vs hand computation; SAE-TS vectors."""

from __future__ import annotations

import json
import random

import pytest
import torch

from interp_steer.errors import ConfigError
from interp_steer.methods.sae_targeted import (
    build_sae_targeted_vector,
    decoder_direction_vector,
    target_weights,
)
from interp_steer.sae import evaluate_sae, load_sae, mean_feature_activations, random_unit_vectors

HOOK = "blocks.1.hook_resid_post"
WORDS = ("cat dog power money help people I you we they like want need would should never always the a "
         "house river computer question answer happy sad strong weak goal safe risk AI human").split()


def synthetic_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def toy_sae(tiny, tmp_path_factory):
    from interp_steer.sae.training import SAETrainConfig, train_sae

    torch.set_num_threads(1)
    cfg = SAETrainConfig(hook_name=HOOK, d_sae=96, k=8, training_tokens=30_000, context_size=32,
                         train_batch_size_tokens=256, n_batches_in_buffer=16, lr=3e-3, lr_warm_up_steps=5,
                         n_batches_for_norm_estimate=2, model_spec="tiny-llama")
    out = tmp_path_factory.mktemp("toy_sae")
    sae, metrics = train_sae(tiny, synthetic_texts(600, 0), cfg, out_dir=out, eval_texts=synthetic_texts(12, 1))
    return sae, metrics, out


def test_trained_sae_saved_in_sae_lens_format(toy_sae, tiny):
    sae, metrics, out = toy_sae
    loaded = load_sae(out)
    assert torch.allclose(loaded.W_dec, sae.W_dec)
    assert loaded.cfg.metadata.hook_name == HOOK
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["explained_variance"] == pytest.approx(metrics["explained_variance"])
    assert metrics["l0"] == pytest.approx(8.0)  # top-k
    assert metrics["explained_variance"] > 0.3


def test_evaluate_sae_matches_hand_computation(toy_sae, tiny):
    sae, _, _ = toy_sae
    text = synthetic_texts(1, 7)[0]
    ids = torch.tensor([tiny.tokenizer(text, add_special_tokens=False)["input_ids"]])
    got = evaluate_sae(tiny, sae, [text], HOOK)
    _, cache = tiny.run_with_cache(ids, names_filter=HOOK)
    x = cache[HOOK][0, 1:]  # first position excluded
    feats = sae.encode(x)
    recon = sae.decode(feats)
    ev = 1 - ((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert got["explained_variance"] == pytest.approx(float(ev), abs=1e-4)
    assert got["l0"] == pytest.approx(float((feats > 0).sum(1).float().mean()))
    clean_loss = tiny(ids, return_type="loss", loss_per_token=True)[0, 1:].mean()
    assert got["ce_clean"] == pytest.approx(float(clean_loss), abs=1e-4)

    def splice(acts, hook):
        out = acts.clone()
        out[:, 1:] = sae(acts[:, 1:])
        return out

    spliced = tiny.run_with_hooks(ids, fwd_hooks=[(HOOK, splice)], return_type="loss", loss_per_token=True)
    assert got["ce_spliced"] == pytest.approx(float(spliced[0, 1:].mean()), abs=1e-4)


def test_targeted_vector_beats_random_of_equal_norm(toy_sae, tiny):
    sae, _, _ = toy_sae
    texts = synthetic_texts(6, 2)
    base = mean_feature_activations(tiny, sae, texts, None, HOOK)[0]
    target = int(base.argsort(descending=True)[20])  # an alive, not dominant feature
    norm = 2.0
    vector, effect_model = build_sae_targeted_vector(tiny, sae, [target], texts, HOOK, scale=norm, n_random=96,
                                                     n_decoder=96, seed=0)
    assert vector[HOOK].norm() == pytest.approx(norm, rel=1e-5)
    assert vector.provenance.method == "sae_targeted"
    assert list(vector.provenance.extra["target_features"]) == [target]
    assert effect_model.r2_test > 0.3

    random_vectors = random_unit_vectors(8, tiny.cfg.d_model, seed=123) * norm
    candidates = torch.cat([vector[HOOK][None], random_vectors])
    acts = mean_feature_activations(tiny, sae, texts, candidates, HOOK)
    targeted_gain = acts[0, target] - base[target]
    random_gains = acts[1:, target] - base[target]
    assert targeted_gain > 0
    assert targeted_gain > random_gains.max()

    baseline = decoder_direction_vector(sae, target, HOOK, norm)
    assert baseline.provenance.method == "sae_decoder"
    assert torch.allclose(baseline[HOOK] / norm, sae.W_dec[target] / sae.W_dec[target].norm(), atol=1e-6)


def test_target_weights_errors():
    assert torch.equal(target_weights({2: 0.5}, 4), torch.tensor([0, 0, 0.5, 0]))
    with pytest.raises(ConfigError, match="out of range"):
        target_weights([10], 4)
    with pytest.raises(ConfigError, match="non-zero target"):
        target_weights(torch.zeros(4), 4)

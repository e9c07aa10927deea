"""compare_vectors on the tiny model with a small random TopK SAE, checked against hand computations."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.analysis.sae_comparison import compare_vectors, cosine_table, equal_norm, feature_effect_tables
from interp_steer.data import load_dataset
from interp_steer.errors import ConfigError, SteeringVectorError
from interp_steer.evaluation import naive_propensities
from interp_steer.steering import Provenance, SteeringVector

HOOK = "blocks.1.hook_resid_post"
WORDS = "cat dog power money help people like want need never always house river happy sad strong weak".split()


def synthetic_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def toy_sae(tiny):
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(3)
    sae = TopKSAE(TopKSAEConfig(d_in=tiny.cfg.d_model, d_sae=48, k=6, metadata=SAEMetadata(hook_name=HOOK)))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
    return sae


@pytest.fixture(scope="module")
def vectors(toy_sae):
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(64, generator=gen) * 2.0
    b = toy_sae.W_dec[5].detach().clone() * 7.0
    c = a + 0.5 * b
    return {name: SteeringVector({HOOK: t}, Provenance(method=name)) for name, t in (("a", a), ("b", b), ("c", c))}


def test_cosine_matches_numpy(vectors):
    table = cosine_table(vectors)
    assert len(table) == 9
    mat = np.stack([v[HOOK].numpy() for v in vectors.values()]).astype(np.float64)
    expected = (mat @ mat.T) / np.outer(np.linalg.norm(mat, axis=1), np.linalg.norm(mat, axis=1))
    names = list(vectors)
    for row in table.itertuples():
        assert row.cosine == pytest.approx(expected[names.index(row.vector_a), names.index(row.vector_b)], abs=1e-5)


def _hand_mean_features(model, sae, texts, delta):
    """Mean SAE features over positions 1: of each unpadded text with ``delta`` added at every position."""
    rows = []
    for text in texts:
        ids = torch.tensor([model.tokenizer(text, add_special_tokens=False)["input_ids"]])
        store = {}

        def add(acts, hook):
            return acts + delta

        def grab(acts, hook):
            store["x"] = acts[0, 1:].clone()

        model.run_with_hooks(ids, fwd_hooks=[(HOOK, add), (HOOK, grab)])
        rows.append(sae.encode(store["x"]))
    return torch.cat(rows).mean(0)


@torch.no_grad()
def test_feature_effects_match_manual_hooks(tiny, toy_sae, vectors):
    texts = synthetic_texts(4, 0)
    targets = [5, 11]
    norms = [1.5, 3.0]
    summary, per_target = feature_effect_tables(tiny, toy_sae, vectors, texts, targets, norms, multipliers=[0.5, 1.0])
    clean = _hand_mean_features(tiny, toy_sae, texts, torch.zeros(64))
    off = torch.ones(48, dtype=torch.bool)
    off[targets] = False
    for mult, norm in zip([0.5, 1.0], norms):
        for name, vec in vectors.items():
            unit = vec[HOOK] / vec[HOOK].norm()
            delta = _hand_mean_features(tiny, toy_sae, texts, unit * norm) - clean
            row = summary[(summary.vector == name) & (summary.multiplier == mult)].iloc[0]
            assert row.norm == norm
            assert row.target_increase == pytest.approx(float(delta[targets].mean()), abs=1e-4)
            assert row.off_target_mean_abs == pytest.approx(float(delta[off].abs().mean()), abs=1e-4)
            assert row.off_target_l2 == pytest.approx(float(delta[off].norm()), abs=1e-4)
            dec = toy_sae.W_dec[targets] / toy_sae.W_dec[targets].norm(dim=1, keepdim=True)
            assert row.target_decoder_cosine == pytest.approx(float((dec @ unit).mean()), abs=1e-5)
            got = per_target[(per_target.vector == name) & (per_target.multiplier == mult)].set_index("feature")
            for f in targets:
                assert got.loc[f, "delta"] == pytest.approx(float(delta[f]), abs=1e-4)
    # the decoder direction of feature 5 raises feature 5 more than a random direction does
    at_full = summary[summary.multiplier == 1.0].set_index("vector")
    assert at_full.loc["b", "target_decoder_cosine"] > at_full.loc["a", "target_decoder_cosine"]


def test_compare_vectors_end_to_end(tiny, toy_sae, vectors):
    pairs = load_dataset("builtin:sentiment", limit=3)
    result = compare_vectors(tiny, toy_sae, vectors, pairs, synthetic_texts(3, 1), [5], [-1.0, 0.0, 2.0],
                             n_generations=1, max_new_tokens=3)
    ref_norm = float(vectors["a"][HOOK].norm())
    assert result.norm == pytest.approx(ref_norm)
    assert sorted(result.feature_effects.norm.round(5)) == sorted([round(2.0 * ref_norm, 5)] * 3)
    # steering uses the vectors rescaled to the common norm: check one against the independent naive engine
    scaled_b = vectors["b"].normalize(ref_norm)
    naive = naive_propensities(tiny, pairs, scaled_b, [-1.0, 0.0, 2.0]).set_index(["sample_id", "multiplier"])
    got = result.propensities[result.propensities.vector == "b"].set_index(["sample_id", "multiplier"])
    assert np.allclose(got.loc[naive.index, "propensity"], naive["propensity"], atol=2e-3)
    # slope = least squares on the propensity curve; anti-steerable fraction = share of negative slopes
    for name in vectors:
        curves = result.propensities[result.propensities.vector == name]
        slopes = [np.polyfit(g.multiplier, g.propensity, 1)[0] for _, g in curves.groupby("sample_id")]
        row = result.steerability.set_index("vector").loc[name]
        assert row.mean_slope == pytest.approx(np.mean(slopes), abs=1e-6)
        assert row.anti_steerable_fraction == pytest.approx(np.mean(np.array(slopes) < 0))
    assert list(result.steerability.vector) == ["a", "b", "c"]
    assert len(result.generations) == 1 + 3 * 2  # unsteered + 3 vectors × {-1, 2}
    assert set(result.tables()) >= {"cosine", "feature_effects", "steerability", "generations"}


def test_errors(tiny, toy_sae, vectors):
    texts = synthetic_texts(2, 0)
    pairs = load_dataset("builtin:sentiment", limit=1)
    with pytest.raises(ConfigError, match="no positive value"):
        compare_vectors(tiny, toy_sae, vectors, pairs, texts, [5], [-1.0, 0.0], n_generations=0)
    with pytest.raises(ConfigError, match="out of range"):
        feature_effect_tables(tiny, toy_sae, vectors, texts, [48], [1.0])
    other = {**vectors, "x": SteeringVector({"blocks.0.hook_resid_post": torch.ones(64)}, Provenance())}
    with pytest.raises(SteeringVectorError, match="different or several hooks"):
        cosine_table(other)
    with pytest.raises(SteeringVectorError, match="zero"):
        equal_norm({"z": SteeringVector({HOOK: torch.zeros(64)}, Provenance())}, 1.0)
    with pytest.raises(ConfigError, match="norm must be positive"):
        equal_norm(vectors, 0.0)


def compare_cli(toy_sae, tmp_path, *extra: str):
    """Run ``interp-steer compare`` on the tiny model with a saved toy SAE; returns (result, out dir, args)."""
    from typer.testing import CliRunner

    from interp_steer.cli import app

    sae_dir = tmp_path / "sae"
    toy_sae.save_model(str(sae_dir))
    out = tmp_path / "cmp"
    args = ["compare", "--dataset", "builtin:sentiment", "--out", str(out), "--model", "tiny-llama", "--layer", "1",
            "--sae", str(sae_dir), "--n-train", "4", "--n-test", "3", "--n-texts", "4", "--n-probe", "16",
            "--multipliers=-1,0,1", *extra, "--targets", "5"]
    return CliRunner().invoke(app, args), out, args


def test_compare_cli_writes_report(tiny, toy_sae, tmp_path):
    from typer.testing import CliRunner

    from interp_steer.cli import app

    result, out, args = compare_cli(toy_sae, tmp_path, "--n-generations", "1", "--max-new-tokens", "2")
    assert result.exit_code == 0, result.output
    for name in ("report.md", "config.json", "cosine.csv", "feature_effects.csv", "steerability.csv", "texts.csv",
                 "generations.csv", "feature_effects.png", "propensity_by_vector.png", "vectors/sae_ts.safetensors"):
        assert (out / name).exists(), name
    steer = pd.read_csv(out / "steerability.csv")
    assert list(steer.vector) == ["caa", "sae_ts", "sae_decoder_f5", "random"]
    report = (out / "report.md").read_text()
    assert "| caa |" in report and "Target features: 5" in report and "**Summary**: mean slope SAE-TS" in report
    bad = CliRunner().invoke(app, args[:-2] + ["--targets", "x"])
    assert bad.exit_code != 0


def test_compare_on_generated_texts(tiny, toy_sae, tmp_path):
    """--text-source generated: the feature effects are measured on the unsteered model's own continuations."""
    from typer.testing import CliRunner

    from interp_steer.cli import app
    from interp_steer.data import load_dataset, render_prompt, train_test_split
    from interp_steer.steering.generation import generate

    result, out, args = compare_cli(toy_sae, tmp_path, "--max-text-tokens", "12", "--n-generations", "0",
                                    "--text-source", "generated")
    assert result.exit_code == 0, result.output
    texts = pd.read_csv(out / "texts.csv", keep_default_na=False)["text"].tolist()
    train, _ = train_test_split(load_dataset("builtin:sentiment"), test_fraction=3 / 7, seed=0)
    prompts = list(dict.fromkeys(render_prompt(tiny.tokenizer, p) for p in train[:4]))[:4]
    expected = [t for t in (generate(tiny, p, max_new_tokens=12) for p in prompts) if t.strip()]
    assert texts == expected and len(texts) >= 1
    assert "generated by the unsteered model" in (out / "report.md").read_text()
    bad = CliRunner().invoke(app, [a if a != "generated" else "telepathy" for a in args])
    assert bad.exit_code == 2 and "text-source" in bad.output

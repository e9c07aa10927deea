"""The demo job on a tiny model: its new outputs exist and their numbers match independent computations.

Independent references: ``compute_propensities`` (the reference propensity engine, not the fast engine the demo
uses), ``generate`` one prompt at a time (the demo batches them), a hand-written steering hook with numpy KL,
``np.polyfit`` for the slopes and ``np.quantile`` for the distribution.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.data.neutral import load_neutral_corpus
from interp_steer.data.tokenization import encode_text
from interp_steer.evaluation import apply_variant, compute_propensities
from interp_steer.models import load_model
from interp_steer.report.format import format_ci
from interp_steer.runs.demo import DEMO_PROMPTS, STEPS, DemoConfig, DemoJob, run_demo
from interp_steer.steering import SteeringVector, chat_prompt, generate

CONFIG = dict(model="tiny-llama", layers="0,1", eval_layer=1, n_train=6, n_test=4, n_neutral=3, max_new_tokens=5,
              continuation_tokens=4, n_boot=200)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    result = run_demo(DemoConfig(**CONFIG), out, echo=lines.append)
    model = load_model("tiny-llama")
    return out, result, lines, model


def test_demo_writes_every_output(demo):
    out, result, lines, _ = demo
    for name in ("caa_layer1.safetensors", "generations.json", "propensity.csv", "steerability.csv",
                 "layer_summary.csv", "steerability_distribution.csv", "side_effects.csv", "baseline.csv",
                 "timings.csv"):
        assert (out / name).is_file(), name
    for plot in ("propensity_curves.png", "steerability_distribution.png"):
        assert (out / plot).stat().st_size > 10_000
    vector = SteeringVector.load(out / "caa_layer1.safetensors")
    assert vector.provenance.method == "caa" and vector.provenance.n_pairs == 6 and vector.provenance.layers == (1,)
    timings = pd.read_csv(out / "timings.csv")
    assert list(timings["step"]) == [*STEPS, "total"]
    assert (timings["wall_s"] >= 0).all() and (timings["cpu_s"] >= 0).all() and (timings["load_1min"] >= 0).all()
    assert timings["wall_s"].iloc[-1] == pytest.approx(timings["wall_s"].iloc[:-1].sum(), abs=0.01)
    progress = [line for line in lines if line.startswith("[") and "/7]" in line]
    assert [line.split("]")[1].split()[0] for line in progress] == [s.split()[0] for s in STEPS]


def test_propensities_equal_the_reference_engine(demo):
    out, _, _, model = demo
    cfg = DemoConfig(**CONFIG)
    _, test = DemoJob(cfg, [0, 1]).split()
    table = pd.read_csv(out / "propensity.csv")
    assert set(table["layer"]) == {0, 1}
    vector = SteeringVector.load(out / "caa_layer1.safetensors")
    reference = compute_propensities(model, test, vector, cfg.multipliers, progress=False)
    mine = table[table.layer == 1].set_index(["sample_id", "multiplier"])["propensity"]
    ref = reference.set_index(["sample_id", "multiplier"])["propensity"]
    assert len(mine) == len(ref) == len(test) * len(cfg.multipliers)
    np.testing.assert_allclose(mine.reindex(ref.index).to_numpy(), ref.to_numpy(), atol=1e-4)


def test_generations_equal_one_prompt_at_a_time(demo):
    out, _, _, model = demo
    vector = SteeringVector.load(out / "caa_layer1.safetensors")
    rows = json.loads((out / "generations.json").read_text())
    assert [r["prompt"] for r in rows] == list(DEMO_PROMPTS)
    for row in rows:
        for m in (-4.0, 0.0, 4.0):
            alone = generate(model, chat_prompt(model, row["prompt"]), vector, m, max_new_tokens=5).strip()
            assert row[f"x{m:+g}"] == alone


def test_steerability_distribution_matches_polyfit_and_quantiles(demo):
    out, _, _, _ = demo
    table = pd.read_csv(out / "propensity.csv")
    per_sample = pd.read_csv(out / "steerability.csv")
    dist = pd.read_csv(out / "steerability_distribution.csv").set_index("layer")
    for layer in (0, 1):
        slopes = []
        for _, curve in table[table.layer == layer].groupby("sample_id"):
            slopes.append(np.polyfit(curve["multiplier"], curve["propensity"], 1)[0])
        slopes = np.sort(slopes)
        np.testing.assert_allclose(np.sort(per_sample[per_sample.layer == layer]["slope"]), slopes, atol=1e-9)
        np.testing.assert_allclose(dist.loc[layer, ["q10", "q50", "q90"]].to_numpy(dtype=float),
                                   np.quantile(slopes, [0.1, 0.5, 0.9]), atol=1e-9)
        assert dist.loc[layer, "n_samples"] == 4
        assert dist.loc[layer, "anti_steerable_fraction"] == pytest.approx(np.mean(slopes < 0))
    summary = pd.read_csv(out / "layer_summary.csv").set_index("layer")
    assert (summary["mean_slope_lo"] <= summary["mean_slope"]).all()
    assert (summary["mean_slope"] <= summary["mean_slope_hi"]).all()
    # anti-steerable fraction: percentile bootstrap over the 4 samples (stats/ table); the resampled share of 4 rows
    # is Binomial(4, p) / 4, so its 2.5% / 97.5% points are within one step (1/4) of the binomial ones
    rng = np.random.default_rng(0)
    for layer, row in summary.iterrows():
        p = float((per_sample[per_sample.layer == layer]["slope"] < 0).mean())
        lo, hi = np.percentile(rng.binomial(4, p, size=20000) / 4, [2.5, 97.5])
        assert abs(row["anti_steerable_lo"] - lo) <= 0.25 + 1e-9 and abs(row["anti_steerable_hi"] - hi) <= 0.25 + 1e-9
        assert row["anti_steerable_lo"] <= p <= row["anti_steerable_hi"]


def _hand_kl(model, vector: SteeringVector, multiplier: float, tokens: list[int]) -> float:
    """Mean over positions of KL(unsteered ‖ steered), steering by a hand-written hook at every position."""
    hook_name = vector.hook_names[0]
    direction = vector.directions[hook_name]
    ids = torch.tensor([tokens])
    with torch.no_grad():
        plain = model(ids)[0].double()
        steered = model.run_with_hooks(ids, fwd_hooks=[(hook_name, lambda act, hook: act + multiplier * direction)])[0].double()
    p = torch.log_softmax(plain, -1).numpy()
    q = torch.log_softmax(steered, -1).numpy()
    return float((np.exp(p) * (p - q)).sum(-1).mean())


def test_side_effects_match_a_hand_hook(demo):
    out, _, _, model = demo
    vector = SteeringVector.load(out / "caa_layer1.safetensors")
    per_passage = pd.read_csv(out / "units/side_effects.csv")
    side = pd.read_csv(out / "side_effects.csv").set_index("multiplier")
    passages = load_neutral_corpus(limit=3)
    assert sorted(per_passage["passage_id"].unique()) == sorted(p.id for p in passages)
    assert list(side.index) == DemoConfig(**CONFIG).multipliers
    for m in (-2.0, 2.0):
        rows = per_passage[per_passage.multiplier == m].set_index("passage_id")
        for passage in passages:
            tokens = list(encode_text(model.tokenizer, passage.text))
            assert rows.loc[passage.id, "kl"] == pytest.approx(_hand_kl(model, vector, m, tokens), rel=1e-3, abs=1e-7)
        assert side.loc[m, "kl"] == pytest.approx(rows["kl"].mean(), rel=1e-9)
        assert side.loc[m, "kl_lo"] <= side.loc[m, "kl"] <= side.loc[m, "kl_hi"]
        assert side.loc[m, "n_passages"] == 3
    assert side.loc[0.0, "kl"] == pytest.approx(0.0, abs=1e-9)
    # the shift column is the paired change of the demo's own propensities
    table = pd.read_csv(out / "propensity.csv")
    main = table[table.layer == 1].pivot(index="sample_id", columns="multiplier", values="propensity")
    assert side.loc[2.0, "shift"] == pytest.approx((main[2.0] - main[0.0]).mean(), abs=1e-9)


def test_prompting_baseline_matches_the_reference_engine(demo):
    out, _, lines, model = demo
    cfg = DemoConfig(**CONFIG)
    job = DemoJob(cfg, [0, 1])
    _, test = job.split()
    baseline = pd.read_csv(out / "baseline.csv").set_index(["method", "arm"])
    vector = SteeringVector.load(out / "caa_layer1.safetensors")
    from interp_steer.evaluation.baseline import BUILTIN_PERSONAS

    sentences = BUILTIN_PERSONAS["builtin:sentiment"]
    base = compute_propensities(model, apply_variant(test, "BASE"), vector, [-2.0, 0.0, 2.0], progress=False)
    base = base.pivot(index="sample_id", columns="multiplier", values="propensity")
    pos = compute_propensities(model, apply_variant(test, "SYS_POS", sentences), vector, [0.0], progress=False)
    pos = pos.set_index("sample_id")["propensity"]
    assert baseline.loc[("prompting", "pos"), "shift"] == pytest.approx((pos - base[0.0]).mean(), abs=1e-4)
    assert baseline.loc[("steering", "pos"), "shift"] == pytest.approx((base[2.0] - base[0.0]).mean(), abs=1e-4)
    for key in [("steering", "pos"), ("prompting", "neg")]:
        row = baseline.loc[key]
        assert row["shift_lo"] <= row["shift"] <= row["shift_hi"] and row["n_samples"] == 4
        assert np.isfinite(row["kl"]) and row["kl"] >= 0
    printed = "\n".join(lines)  # the console table shows each arm's shift as "x [lo, hi]"
    prompting = baseline.loc[("prompting", "pos")]
    assert "Prompting baseline" in printed
    assert format_ci(prompting["shift"], prompting["shift_lo"], prompting["shift_hi"]) in printed


def test_rerun_reuses_every_unit(demo):
    out, result, _, _ = demo
    lines: list[str] = []
    again = run_demo(DemoConfig(**CONFIG), out, echo=lines.append)
    timings = again["timings"].set_index("step")
    assert timings.loc[["extract", "generate", "propensities", "side effects", "baseline"], "reused"].all()
    pd.testing.assert_frame_equal(again["side_effects"], result["side_effects"])


def test_demo_config_refuses_multipliers_without_zero():
    from interp_steer.errors import ConfigError

    with pytest.raises(ConfigError, match="--multipliers needs values including 0"):
        DemoConfig(multipliers=[1.0, 2.0])

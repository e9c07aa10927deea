"""Statement-level decomposition (slope = s_pos − s_neg), battery features and the plan lock (issue 26)."""

import numpy as np
import pandas as pd
import pytest
import torch

from interp_steer.analysis.battery import check_plan_lock
from interp_steer.analysis.battery_features import (
    braun_dataset_features,
    completion_activations,
    has_negation,
    lexical_scores,
    projection_features,
)
from interp_steer.analysis.decomposition import add_token_counts, category_shares, decompose
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError
from interp_steer.methods.caa import collect_contrastive_activations

MULTS = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]


def _propensities(seed=0, n=40):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, b = rng.normal(size=2) * 3
        for m in MULTS:
            pos, neg = -30 + a * m + rng.normal(), -28 + b * m + rng.normal()
            rows.append(dict(dataset=f"d{i % 4}", sample_id=f"s{i}", multiplier=m, pos_logprob=pos, neg_logprob=neg,
                             propensity=pos - neg))
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order must not matter


def test_decomposition_is_exact_against_polyfit():
    props = _propensities()
    out = decompose(props).set_index("sample_id")
    for sid, g in props.groupby("sample_id"):
        s_pos = np.polyfit(g["multiplier"], g["pos_logprob"], 1)[0]
        s_neg = np.polyfit(g["multiplier"], g["neg_logprob"], 1)[0]
        slope = np.polyfit(g["multiplier"], g["propensity"], 1)[0]
        assert out.loc[sid, "s_pos"] == pytest.approx(s_pos, abs=1e-10)
        assert out.loc[sid, "s_neg"] == pytest.approx(s_neg, abs=1e-10)
        assert out.loc[sid, "slope"] == pytest.approx(slope, abs=1e-10)
        assert out.loc[sid, "s_pos"] - out.loc[sid, "s_neg"] == pytest.approx(slope, abs=1e-10)


def test_decomposition_ci_matches_statsmodels_ols():
    import statsmodels.api as sm

    props = _propensities(1, 3)
    out = decompose(props).set_index("sample_id")
    g = props[props["sample_id"] == "s0"].sort_values("multiplier")
    fit = sm.OLS(g["neg_logprob"].to_numpy(), sm.add_constant(g["multiplier"].to_numpy())).fit()
    low, high = fit.conf_int(0.05)[1]
    assert out.loc["s0", "s_neg_low"] == pytest.approx(low, abs=1e-9)
    assert out.loc["s0", "s_neg_high"] == pytest.approx(high, abs=1e-9)


def test_categories_partition_anti_steerable_and_shares():
    out = decompose(_propensities(2, 200))
    anti = out[out["anti"]]
    assert set(anti["category"]) <= {"non_matching_raised", "matching_lowered", "both"}
    assert (out.loc[~out["anti"], "category"] == "steerable").all()
    raised = anti[anti["category"] == "non_matching_raised"]
    assert ((raised["s_neg"] > 0) & (raised["s_pos"] >= 0)).all()
    shares = category_shares(out, n_boot=200)
    assert shares["share"].sum() == pytest.approx(1.0)
    assert (shares["low"] <= shares["share"]).all() and (shares["share"] <= shares["high"]).all()


def test_decomposition_bad_input():
    with pytest.raises(DataFormatError, match="pos_logprob"):
        decompose(pd.DataFrame({"dataset": ["d"], "sample_id": ["s"], "multiplier": [0.0]}))
    props = _propensities()
    with pytest.raises(DataFormatError, match="same"):
        decompose(props.iloc[1:])


def test_per_token_slopes():
    out = decompose(_propensities(3, 4))
    counts = pd.DataFrame({"sample_id": out["sample_id"], "n_tokens_pos": 4, "n_tokens_neg": 2})
    merged = add_token_counts(out, counts)
    np.testing.assert_allclose(merged["s_pos_per_token"], out["s_pos"] / 4)
    np.testing.assert_allclose(merged["s_neg_per_token"], out["s_neg"] / 2)


def test_lexical_scores_leave_pair_out_by_hand():
    matching = ["i love kindness", "kindness matters", "i help"]
    non = ["i hate people", "people are bad", "i hurt"]
    pos, neg = lexical_scores(matching, non)
    # pair 0 matching: words {i, love, kindness}; other pairs: matching {kindness, matters}, {i, help} (n = 2);
    # non-matching {people, are, bad}, {i, hurt}
    lo = lambda cm, cn: np.log((cm + 1) / 4) - np.log((cn + 1) / 4)  # noqa: E731
    assert pos[0] == pytest.approx(np.mean([lo(1, 1), lo(0, 0), lo(1, 0)]))
    assert neg[0] == pytest.approx(np.mean([lo(1, 1), lo(0, 0), lo(0, 1)]))  # {i, hate, people}


def test_negation_words():
    assert has_negation("I do not like that") and has_negation("I don't care") and has_negation("Never again")
    assert not has_negation("I notice everything") and not has_negation("Knots are fun")


def test_completion_activations_match_caa_collection():
    from interp_steer.models.tiny import tiny_model

    model = tiny_model("tiny-llama")
    pairs = [ContrastivePair("Say something.", " I like it a lot", " No", kind="free_text", id=f"p{i}",
                             system_prompt=None) for i in range(2)]
    pairs.append(ContrastivePair("Other prompt here", " yes", " not at all really", kind="free_text", id="p2",
                                 system_prompt=None))
    fast = completion_activations(model, pairs, "blocks.1.hook_resid_post", batch_size=2)
    for read, key in (("completion_mean", "mean"), ("last", "last")):
        ref = collect_contrastive_activations(model, pairs, [1], read_position=read, progress=False)
        torch.testing.assert_close(fast[f"pos_{key}"], ref.positive["blocks.1.hook_resid_post"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(fast[f"neg_{key}"], ref.negative["blocks.1.hook_resid_post"], atol=1e-4, rtol=1e-4)


def test_projection_and_braun_features():
    rng = np.random.default_rng(0)
    pos, neg = torch.tensor(rng.normal(size=(30, 5)) + [2, 0, 0, 0, 0]), torch.tensor(rng.normal(size=(30, 5)))
    v = (pos - neg).mean(0)
    proj, cos = projection_features(pos - neg, v)
    d = (pos - neg).numpy()
    np.testing.assert_allclose(cos, d @ v.numpy() / np.linalg.norm(d, axis=1) / np.linalg.norm(v.numpy()), rtol=1e-5)
    braun = braun_dataset_features(pos, neg, v)
    u = v.numpy() / np.linalg.norm(v.numpy())
    pp, pn = pos.numpy() @ u, neg.numpy() @ u
    assert braun["braun_separation_dprime"] == pytest.approx((pp.mean() - pn.mean()) / np.sqrt((pp.var(ddof=1) + pn.var(ddof=1)) / 2), rel=1e-5)
    assert braun["braun_mean_cosine"] == pytest.approx(cos.mean(), rel=1e-5)


def test_plan_lock_refuses_edited_plan(tmp_path):
    plan = tmp_path / "plan.md"
    plan.write_text("H1: x predicts y\n")
    out = tmp_path / "out"
    check_plan_lock(plan, out, record=False)
    assert not (out / "plan_lock.json").exists()  # the feature stage only checks
    first = check_plan_lock(plan, out)
    assert check_plan_lock(plan, out) == first
    plan.write_text("H1: x predicts y, edited\n")
    with pytest.raises(ConfigError, match="edited after results exist"):
        check_plan_lock(plan, out)
    with pytest.raises(ConfigError, match="edited after results exist"):
        check_plan_lock(plan, out, record=False)


def test_battery_entry_point_refuses_edited_plan_in_one_line(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "analyses" / "anti_steerable_battery.py"
    spec = importlib.util.spec_from_file_location("anti_steerable_battery", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan_lock.json").write_text(json.dumps({"plan_sha256": "0" * 64}))
    assert module.main(["tests", str(tmp_path / "study"), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "edited after results exist" in err and "\n" not in err

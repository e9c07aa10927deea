"""``evaluate``'s side effects, capability, prompting baseline and steering card on the tiny model: the KL / ΔNLL
columns against two hand-hooked ``run_with_cache`` passes, the format mass against the softmax mass of the two
letter tokens, the card's sections / escaping / offline rendering, and the new one-line bad-input errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from interp_steer.cli import app
from interp_steer.data import ContrastivePair, load_dataset
from interp_steer.errors import ConfigError
from interp_steer.methods import extract_caa
from interp_steer.runs.evaluate import EvaluateConfig, EvaluateJob, parse_capability, run_evaluate
from interp_steer.runs.files import file_sha1
from interp_steer.runs.runner import run_job

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def vector_file(tiny, tmp_path_factory):
    vector = extract_caa(tiny, load_dataset("builtin:sentiment")[:4], [1], progress=False)
    return vector, vector.save(tmp_path_factory.mktemp("vec") / "sent.safetensors")


def _config(path, **kw) -> EvaluateConfig:
    base = dict(vector=str(path), dataset="builtin:sentiment", model="tiny-llama", batch_size=4, table_format="csv",
                vector_sha1=file_sha1(path), n_boot=100, neutral_n=0, n_generations=0, baseline=False)  # units on demand
    return EvaluateConfig(**{**base, **kw})


def _adding(delta: torch.Tensor, start: int = 0):
    def hook(act, hook):  # hand-written steering: + delta at positions ≥ start
        act = act.clone()
        act[:, start:] = act[:, start:] + delta
        return act
    return hook


@torch.no_grad()
def test_kl_and_dnll_columns_equal_two_run_with_cache_passes(tiny, vector_file, tmp_path):
    vector, path = vector_file
    cfg = _config(path, multipliers=[0.0, 0.5], n=2, neutral_n=3, continuation_tokens=3, units="norm")
    job = EvaluateJob(cfg, vector)
    report = run_job(job, tmp_path / "ev", model=tiny, progress=False)
    neutral_table, side = report.tables["neutral"], report.tables["side_effects"]
    assert set(neutral_table["units"]) == {"norm"} and set(side["units"]) == {"norm"}
    raw = float(side.loc[side.multiplier == 0.5, "raw_multiplier"].iloc[0])
    # norm units: the delta is 0.5 × (mean residual norm) along v, i.e. raw × v
    assert raw == pytest.approx(0.5 * side["reference_norm"].iloc[0] / float(vector.directions[HOOK].norm()))
    delta = raw * vector.directions[HOOK].to(tiny.cfg.dtype)
    neutral = job.neutral(tiny)
    kls, dnlls = [], []
    for text_ids, cont in zip(neutral.tokens, neutral.continuations):
        toks = torch.tensor([list(text_ids) + list(cont)])
        clean, _ = tiny.run_with_cache(toks)
        with tiny.hooks(fwd_hooks=[(HOOK, _adding(delta))]):
            steered, _ = tiny.run_with_cache(toks)
        lp_u = torch.log_softmax(clean[0].double(), -1)
        lp_s = torch.log_softmax(steered[0].double(), -1)
        n_kl = len(text_ids)
        kls.append(float((lp_u.exp() * (lp_u - lp_s)).sum(-1)[:n_kl].mean()))
        rows = torch.arange(n_kl - 1, n_kl - 1 + len(cont))
        target = torch.tensor(cont)
        dnlls.append(float(-lp_s[rows, target].mean() + lp_u[rows, target].mean()))
    got = neutral_table[neutral_table.multiplier == 0.5].set_index("passage_id").loc[list(neutral.passage_ids)]
    np.testing.assert_allclose(got["kl"], kls, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["dnll"], dnlls, rtol=1e-4, atol=1e-6)
    assert side.loc[side.multiplier == 0.5, "kl"].iloc[0] == pytest.approx(np.mean(kls), rel=1e-4)
    assert side.loc[side.multiplier == 0.0, "kl"].iloc[0] == pytest.approx(0.0, abs=1e-9)


@torch.no_grad()
def test_format_mass_is_the_softmax_mass_of_the_two_letters(tiny, vector_file, tmp_path):
    from interp_steer.evaluation import compute_propensities
    from interp_steer.evaluation.propensity import scoring_rows

    vector, path = vector_file
    mults = [-1.0, 0.0, 1.5]
    cfg = _config(path, framing="ab", multipliers=mults, n=3)
    job = EvaluateJob(cfg, vector)
    report = run_job(job, tmp_path / "ab", model=tiny, progress=False)
    answers, props = report.tables["answers"], report.tables["propensities"]
    pairs = job.pairs()
    assert len(answers) == len(props) == 3 * len(mults)
    rows = scoring_rows(tiny.tokenizer, pairs, n_ctx=tiny.cfg.n_ctx)
    direction = vector.directions[HOOK].to(tiny.cfg.dtype)
    for pair, row in zip(pairs, rows):
        for m in mults:
            toks = torch.tensor([list(row.ids)])
            with tiny.hooks(fwd_hooks=[(HOOK, _adding(m * direction, row.steer_from))]):
                logits, _ = tiny.run_with_cache(toks)
            p = torch.softmax(logits[0, -1].double(), -1)
            pos, neg = row.letters
            got = answers[(answers.sample_id == pair.id) & (answers.multiplier == m)].iloc[0]
            assert got["format_mass"] == pytest.approx(float(p[pos] + p[neg]), rel=1e-5)
            prop = props[(props.sample_id == pair.id) & (props.multiplier == m)]["propensity"].iloc[0]
            assert prop == pytest.approx(float(torch.log(p[pos]) - torch.log(p[neg])), abs=1e-4)
    # the one-pass propensities are those of the propensity engine
    direct = compute_propensities(tiny, pairs, vector, mults, vector_name="sent")
    np.testing.assert_allclose(props.sort_values(["sample_id", "multiplier"])["propensity"],
                               direct.sort_values(["sample_id", "multiplier"])["propensity"], atol=1e-5)
    side = report.tables["side_effects"]
    means = answers.groupby("multiplier")["format_mass"].mean()
    np.testing.assert_allclose(side.set_index("multiplier")["format_mass"], means.loc[side.multiplier], rtol=1e-9)


HOSTILE = "<script>alert(1)</script> & <b>bold</b>"
CARD_SECTIONS = ["summary", "figures", "steerability", "side-effects", "baseline", "capability", "generations",
                 "projection", "provenance"]


@pytest.fixture(scope="module")
def card_run(tiny, vector_file, data_root, tmp_path_factory):
    _, path = vector_file
    pairs = [ContrastivePair(prompt=f"{HOSTILE} Do you like item {i}?", positive=" I love it, truly.",
                             negative=" I hate it, truly.", kind="free_text", id=f"h#{i}", dataset="builtin:sentiment")
             for i in range(4)]
    cfg = _config(path, multipliers=[0.0, 0.5, 1.0], neutral_n=2, continuation_tokens=2, capability=["mmlu"],
                  capability_n=2, n_generations=1, max_new_tokens=3, baseline=True, kl_budget=50.0, split="all")
    out = tmp_path_factory.mktemp("card")
    vector = load_vector(path)
    result = run_evaluate(cfg, vector, out, model=tiny, data_dir=data_root, pairs=pairs, progress=False)
    return cfg, result, out / "steering_card.html"


def load_vector(path):
    from interp_steer.steering import SteeringVector

    return SteeringVector.load(path).select()


def test_recommendation_and_card_sections(card_run):
    cfg, result, card = card_run
    side = result.tables["side_effects"]
    within = side[(side.multiplier != 0) & (side.kl_hi <= cfg.kl_budget) & (side["shift"] > 0)]
    rec = result.recommendation
    if within.empty:
        assert rec["found"] is False
    else:
        assert rec["found"] and rec["multiplier"] == float(within.loc[within["shift"].idxmax(), "multiplier"])
    cap = result.tables["capability"]
    assert set(cap["dataset"]) == {"caa-test:mmlu"} and set(cap["multiplier"]) == set(cfg.multipliers)
    assert (cap["n_items"] == 2).all() and set(cap["units"]) == {"raw"}
    items = result.tables["capability_items"]
    np.testing.assert_allclose(cap.sort_values("multiplier")["accuracy"],
                               items.groupby("multiplier")["correct"].mean().sort_index())
    base = result.baseline
    assert base is not None and set(base["method"]) == {"steering", "prompting"}
    text = card.read_text()
    for ident in CARD_SECTIONS:
        assert f'<section id="{ident}">' in text
    assert "anti-steerable" in text and "KL (nats/token)" in text  # merged "x [lo, hi]" columns
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not re.search(r"""(src|href)=["']https?://""", text)
    assert text.count("data:image/png;base64,") == 2
    for png in ("propensity_curves.png", "steerability_distribution.png"):
        assert (card.parent / png).stat().st_size > 0


def test_evaluate_card_renders_in_headless_chromium(card_run):
    from test_steering_card import render_in_chromium

    _, _, card = card_run
    dom, body = render_in_chromium(card)
    assert int(body["data-images-loaded"]) == int(body["data-images-total"]) == 2
    assert body["data-sections"].split(",") == CARD_SECTIONS
    assert "L1 proj steered" in dom  # circuitsvis mounted its React view


def test_cli_prints_side_effects_and_baseline(tiny, vector_file, tmp_path):
    _, path = vector_file
    out = tmp_path / "cli"
    args = ["evaluate", "--vector", str(path), "--dataset", "builtin:sentiment", "--model", "tiny-llama", "--n", "3",
            "--multipliers", "0,1", "--neutral-n", "2", "--continuation-tokens", "2", "--n-generations", "1",
            "--max-new-tokens", "3", "--n-boot", "100", "--format", "csv", "--out", str(out)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for word in ("mean slope [95% CI]", "KL (nats/token) [95% CI]", "ΔNLL", "prompting", "steering", "Recommended"):
        assert word in result.output
    side = pd.read_csv(out / "side_effects.csv")
    assert list(side["multiplier"]) == [0.0, 1.0] and (side["n_passages"] == 2).all()
    assert (out / "steering_card.html").exists() and (out / "baseline.csv").exists()
    stamp = (out / "units" / "neutral.csv").stat().st_mtime_ns
    again = CliRunner().invoke(app, args, catch_exceptions=False)  # resumed: the side-effect units are reused
    assert again.exit_code == 0 and (out / "units" / "neutral.csv").stat().st_mtime_ns == stamp


BAD = [
    (["--capability", "mmlu,gsm8k"], "error: --capability 'gsm8k'"),
    (["--capability", "mmlu,mmlu"], "error: --capability"),
    (["--units", "percent"], "error: --units 'percent'"),
    (["--kl-budget", "0"], "error: --kl-budget"),
    (["--kl-budget", "nan"], "error: --kl-budget"),
    (["--kl-budget", "-1"], "error: --kl-budget"),
    (["--multipliers", "-1,1"], "error: --multipliers"),
    (["--capability-n", "1"], "error: --capability-n"),
    (["--neutral-n", "-1"], "error: --neutral-n"),
]


@pytest.mark.parametrize("extra,start", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_inputs_fail_in_one_line_before_the_model_loads(vector_file, tmp_path, extra, start):
    _, path = vector_file
    args = ["evaluate", "--vector", str(path), "--dataset", "builtin:sentiment", "--model", "no-such-model",
            "--out", str(tmp_path / "e"), *extra]
    result = CliRunner().invoke(app, args)
    output = result.output.strip()
    assert result.exit_code == 2, output
    assert len(output.splitlines()) == 1 and output.startswith(start), output  # not the unknown model's error


def test_parse_capability_and_config_checks(vector_file):
    _, path = vector_file
    assert parse_capability("truthfulqa, mmlu") == ["truthfulqa", "mmlu"] and parse_capability("") == []
    with pytest.raises(ConfigError, match="--units"):
        _config(path, multipliers=[0, 1], units="bogus")
    with pytest.raises(ConfigError, match="--kl-budget"):
        _config(path, multipliers=[0, 1], kl_budget=float("inf"))
    assert _config(path, multipliers=[-1, 1]).neutral_n == 0  # no side effects: 0 not needed


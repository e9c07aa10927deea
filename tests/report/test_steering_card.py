"""The steering card written by tune: self-contained (no external URLs), data text escaped, every section and
image rendered in headless Chromium, the summary first with numbers that match the tables, every interval as
"x [lo, hi]", no raw JSON outside <details>, nothing wider than a 1024 px viewport, and A4 pages in print.
The committed example cards are checked the same way."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from page_checks import assert_fits, assert_static, body_attributes, browser, run_chromium

from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.report.format import format_ci
from interp_steer.report.steering_card import steering_card_html

pytestmark = pytest.mark.slow  # each runs a (tiny) tune job

SECTIONS = ["summary", "figures", "steerability", "side-effects", "baseline", "generations", "projection", "provenance"]
EXAMPLES = sorted((Path(__file__).parents[2] / "analyses" / "results").glob("*/**/steering_card.html"))


@pytest.fixture(scope="module")
def card(tiny, tmp_path_factory):
    from interp_steer.runs.tune import TuneConfig, run_tune

    hostile = "<script>alert(1)</script> & <b>bold</b>"
    pairs = [ContrastivePair(prompt=f"{hostile} Do you like item {i}?", positive=" I love it, truly.",
                             negative=" I hate it, truly.", kind="free_text", id=f"h#{i}", dataset="builtin:sentiment")
             for i in range(6)]
    out = tmp_path_factory.mktemp("card")
    cfg = TuneConfig(model="tiny-llama", dataset="builtin:sentiment", layers=[1], multipliers=[0, 2], n_neutral=2,
                     continuation_tokens=2, n_boot=100)
    run_tune(cfg, out, model=tiny, data={cfg.dataset: (pairs[:3], pairs[3:])}, n_generations=1, max_new_tokens=3,
             progress=False)
    return out / "steering_card.html"


def test_card_is_offline_and_escaped(card):
    text = card.read_text()
    for ident in SECTIONS:
        assert f'<section id="{ident}">' in text
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not re.search(r"""(src|href)=["']https?://""", text)  # nothing fetched from the network
    assert text.count("data:image/png;base64,") == 2


def test_card_needs_a_summary():
    with pytest.raises(ConfigError):
        steering_card_html("x", provenance=None, recommendation={}, summary=pd.DataFrame())


def render_in_chromium(page) -> tuple[str, dict[str, str]]:
    """Open ``page`` in headless Chromium (no network); return its DOM after load and the ``<body>`` attributes the
    card's onload script wrote. Skips when chromium is absent (a failure under CI=1)."""
    dom = run_chromium(["--dump-dom", page.as_uri()], width=1000, height=1400)
    return dom, body_attributes(dom)


def test_card_renders_in_headless_chromium(card):
    dom, body = render_in_chromium(card)
    assert int(body["data-images-loaded"]) == int(body["data-images-total"]) == 2
    assert body["data-sections"].split(",") == SECTIONS
    assert "L1 proj steered" in dom  # circuitsvis mounted its React view


def test_card_summary_comes_first_and_matches_the_tables(card):
    text = card.read_text()
    assert text.index('<section id="summary">') < text.index('<section id="figures">') < text.index("<table")
    rec = json.loads((card.parent / "recommendation.json").read_text())
    summary = pd.read_csv(card.parent / "summary.csv")
    baseline = pd.read_csv(card.parent / "baseline.csv")
    head = text[text.index('<section id="summary">'):text.index('<section id="figures">')]
    pos = baseline[(baseline.method == "prompting") & (baseline.arm == "pos")].iloc[0]
    assert format_ci(pos["shift"], pos["shift_lo"], pos["shift_hi"]) in head  # steering vs prompting, with n
    assert f"(n = {int(pos['n_samples'])})" in head
    if rec["found"]:
        assert format_ci(rec["shift"], rec["shift_lo"], rec["shift_hi"]) in head
    else:
        assert "none:" in head and "No setting moves the behaviour" in head
    row = summary[summary.multiplier == summary.multiplier.max()].iloc[0]
    assert format_ci(row["kl"], row["kl_lo"], row["kl_hi"]) in text  # the side-effects table, merged


def test_card_static_checks(card):
    assert_static(card.read_text())
    assert "<details><summary>Full provenance JSON</summary>" in card.read_text()


def test_card_fits_1024_px(card):
    assert_fits(card)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_committed_example_cards(example):
    text = example.read_text()
    assert_static(text)
    for ident in ("summary", "figures", "steerability", "side-effects", "baseline", "generations", "provenance"):
        assert f'<section id="{ident}">' in text
    assert_fits(example)


def test_example_card_prints_on_a4():
    browser()
    example = EXAMPLES[0]
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "card.pdf"
        run_chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf}", example.as_uri()])
        data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    boxes = {tuple(round(float(v)) for v in m.split()) for m in re.findall(rb"/MediaBox\s*\[([^\]]+)\]", data)}
    assert boxes == {(0, 0, 595, 842)} or boxes == {(0, 0, 596, 843)}, boxes  # A4 in points
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 2

"""The steering card written by tune: self-contained (no external URLs), data text escaped, every section and
image rendered in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pandas as pd
import pytest

from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.viz.steering_card import steering_card_html

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--virtual-time-budget=5000", "--window-size=1000,1400",
]
pytestmark = pytest.mark.slow  # each runs a (tiny) tune job

SECTIONS = ["provenance", "recommendation", "steerability", "side-effects", "baseline", "generations", "projection"]


@pytest.fixture(scope="module")
def card(tiny, tmp_path_factory):
    from interp_steer.runs.tune import TuneConfig
    from interp_steer.tune import run_tune

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
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed in CI (.ci/run installs the Debian 'chromium' package)")
        pytest.skip("chromium not installed (apt-get install chromium); set CI=1 to make this a failure")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    return dom, dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body))


def test_card_renders_in_headless_chromium(card):
    dom, body = render_in_chromium(card)
    assert int(body["data-images-loaded"]) == int(body["data-images-total"]) == 2
    assert body["data-sections"].split(",") == SECTIONS
    assert "L1 proj steered" in dom  # circuitsvis mounted its React view

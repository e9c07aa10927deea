"""circuitsvis pages (offline, library inlined once), rendered in headless Chromium; patching figures."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from toy_steering import random_vector

from interp_steer.analysis.direct_effect import logit_lens
from interp_steer.analysis.patching import compare_samples
from interp_steer.analysis.view_data import attention_views, projection_view
from interp_steer.data import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.viz.patching_plots import plot_logit_lens, plot_patching
from interp_steer.viz.views import _library_source, draw_view, draw_views, save_page

PAIR = ContrastivePair("Do you like apples?\n\nChoices:\n(A) Yes\n(B) No", "(A)", "(B)", id="ab1", dataset="t")
OTHER = ContrastivePair("Is the sky green?\n\nChoices:\n(A) No\n(B) Yes", "(B)", "(A)", id="ab2", dataset="t")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--virtual-time-budget=5000", "--window-size=1000,1400",
]


@pytest.fixture(scope="module")
def vector():
    return random_vector(0, seed=2, scale=3.0)


@pytest.fixture(scope="module")
def page(tiny, vector, tmp_path_factory) -> Path:
    views = draw_views(attention_views(tiny, vector, PAIR, layer=1, multiplier=2.0, window=30))
    views.append(draw_view(*projection_view(tiny, vector, PAIR, [0, 2], multiplier=2.0)))
    return save_page(tmp_path_factory.mktemp("views") / "views.html", "tiny views", views)


def test_page_is_offline_and_inlines_the_library_once(page):
    text = page.read_text(encoding="utf-8")
    assert "unpkg.com" not in text and "cdn." not in text.lower().replace("dist/cdn", "")
    assert text.count(_library_source()) == 1
    assert text.count('<div id="circuits-vis-') == 4 and "/>" not in text.split("<body>")[1][:200]
    assert page.stat().st_size < 2_000_000


def test_view_errors(tiny, vector):
    with pytest.raises(ConfigError, match="layer"):
        attention_views(tiny, vector, PAIR, layer=7)
    with pytest.raises(ConfigError, match="layers"):
        projection_view(tiny, vector, PAIR, [])
    with pytest.raises(ConfigError, match="at least one view"):
        save_page("unused.html", "x", [])


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_page_renders_in_headless_chromium(page):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed in CI (.ci/run installs the Debian 'chromium' package)")
        pytest.skip("chromium not installed (apt-get install chromium); set CI=1 to make this a failure")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/a", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        shot = Path(profile) / "shot.png"
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/b", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=120)
        # React filled the mount points: the head selector of attention_heads and the token spans exist only then
        assert "Head Selector" in dom
        assert dom.count("L1H0 steered") >= 1
        import matplotlib.image as mpimg

        pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[0] > 500 and pixels.std() > 0.05  # not a blank page
    # the attention heatmaps (WebGL / canvas) drew coloured pixels, not only black text on white
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert (saturation > 0.2).mean() > 0.01


def test_patching_and_lens_figures(tiny, vector, tmp_path):
    frame = compare_samples(tiny, vector, PAIR, OTHER, multiplier=2.0)
    fig = plot_patching(frame, title="tiny")
    assert len(fig.axes) == 2 * 4 + 1  # 2 samples × 4 components + colour bar
    image = fig.axes[0].images[0].get_array()
    assert image.shape[0] == tiny.cfg.n_layers
    fig.savefig(tmp_path / "patching.png")
    lens = logit_lens(tiny, vector, PAIR, multiplier=2.0).assign(role="steerable")
    plot_logit_lens(lens).savefig(tmp_path / "lens.png")
    assert (tmp_path / "patching.png").stat().st_size > 10_000
    with pytest.raises(ConfigError):
        plot_patching(frame.drop(columns="share"))
    assert np.isfinite(frame["share"]).all()

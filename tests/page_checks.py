"""Checks shared by the steering-card and HTML-report tests: static (intervals, JSON, network) and in headless
Chromium (element widths at a 1024 px viewport, screenshots, PDF)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--virtual-time-budget=5000", "--hide-scrollbars",
]
NUMBER = r"-?(?:\d+(?:\.\d+)?(?:e[+-]\d+)?|n/a|inf)"
INTERVAL = re.compile(rf"{NUMBER} \[{NUMBER}, {NUMBER}\]")

# after load: the widest element (its right edge) and the page's scroll width, written on <body>
MEASURE = """<script>window.addEventListener('load',function(){setTimeout(function(){var w=window.innerWidth,max=0,
bad=[];document.querySelectorAll('body *').forEach(function(e){var r=e.getBoundingClientRect();if(r.width===0){return;}
if(r.right>max){max=r.right;}if(r.right>w+1&&bad.length<5){bad.push(e.tagName+'.'+(e.className||''));}});
document.body.setAttribute('data-viewport',w);document.body.setAttribute('data-max-right',Math.ceil(max));
document.body.setAttribute('data-scroll-width',document.documentElement.scrollWidth);
document.body.setAttribute('data-too-wide',bad.join(' '));},500);});</script>"""


def browser() -> str:
    """The Chromium binary; skips when absent (a failure under CI=1, where .ci/run installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed in CI (.ci/run installs the Debian 'chromium' package)")
        pytest.skip("chromium not installed (apt-get install chromium); set CI=1 to make this a failure")
    return found


def run_chromium(args: list[str], width: int = 1024, height: int = 900) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser(), *CHROMIUM_FLAGS, f"--window-size={width},{height}",
                               f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180)
    return done.stdout


def body_attributes(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))


def measure_widths(page: Path, width: int = 1024) -> dict[str, str]:
    """Open a copy of ``page`` with :data:`MEASURE` added, at ``width`` px; the body attributes it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / page.name
        copy.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        dom = run_chromium(["--dump-dom", copy.as_uri()], width=width)
    return body_attributes(dom)


def assert_fits(page: Path, width: int = 1024) -> dict[str, str]:
    """No element extends past the right edge of a ``width`` px viewport, and nothing scrolls sideways."""
    attrs = measure_widths(page, width)
    assert int(attrs["data-viewport"]) == width
    assert int(attrs["data-scroll-width"]) <= width, attrs
    assert int(attrs["data-max-right"]) <= width + 1, attrs
    assert attrs["data-too-wide"] == "", attrs
    return attrs


def visible_text(text: str) -> str:
    """The page without ``<details>``, scripts and styles (what a reader sees before opening anything)."""
    text = re.sub(r"<details>.*?</details>", "", text, flags=re.S)
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", text, flags=re.S)
    return text


def assert_static(text: str) -> None:
    """Every interval reads "x [lo, hi]", no raw JSON outside <details>, no _lo / _hi headers, no network."""
    shown = visible_text(text)
    plain = re.sub(r"<[^>]+>", " ", shown)
    for match in re.finditer(r"\[[^\[\]]*\d[^\[\]]*\]", plain):
        inner = match.group(0)
        if "," in inner and re.fullmatch(rf"\[{NUMBER}, {NUMBER}\]", inner):
            before = plain[max(0, match.start() - 40):match.end()]
            assert INTERVAL.search(before), f"an interval without its estimate: {before!r}"
    assert not re.search(r"<th>[^<]*_(lo|hi)\b", shown) and "ci_low" not in shown, "interval bounds as columns"
    assert not re.search(r"\{\s*(&quot;|\")\w+(&quot;|\")\s*:", shown), "raw JSON outside <details>"
    assert not re.search(r"""(src|srcset|data)\s*=\s*["']?\s*(https?:)?//""", text), "a resource from the network"
    assert not re.search(r"<link[^>]+href=[\"']https?://", text) and "@import" not in text
    assert not re.search(r"url\(\s*[\"']?https?://", text)

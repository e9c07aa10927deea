"""Markdown reports → self-contained HTML: the converter on each construct the reports use, figures inlined,
no network, and in headless Chromium nothing wider than a 1024 px viewport (the committed tan2024_full report
rendered into a temporary folder; a deliberately too-wide page as a control that the measurement can fail)."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from page_checks import assert_fits, assert_static, measure_widths

from interp_steer.errors import ConfigError
from interp_steer.report.html import markdown_to_html, render_markdown_file

ROOT = Path(__file__).parents[2]
STUDY = ROOT / "analyses" / "results" / "tan2024_full"
PNG = base64.b64decode(  # a 1 × 1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def test_headings_paragraphs_and_inline():
    out = markdown_to_html("# Title `x`\n\nSome **bold** and *it* text\ncontinued with [a link](https://a.org/b).\n\n"
                           "## 2. Part\n\n<script>alert(1)</script> & `a<b>`")
    assert '<h1 id="title-x">Title <code>x</code></h1>' in out
    assert "<p>Some <b>bold</b> and <i>it</i> text continued with <a href=\"https://a.org/b\">a link</a>.</p>" in out
    assert '<h2 id="2-part">' in out
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <code>a&lt;b&gt;</code>" in out


def test_lists_tables_code_and_quotes():
    text = ("- one *a*\n- two\n  continued\n\n1. first\n2. second\n\n| name | value |\n|---|---:|\n| `persona:x` | 3.24 [2.41, 4.08] |\n"
            "| b | n/a |\n\n```\ncode <here>\n  indented\n```\n\n> quoted **words**\n\n---\n")
    out = markdown_to_html(text)
    assert "<ul><li>one <i>a</i></li><li>two continued</li></ul>" in out
    assert "<ol><li>first</li><li>second</li></ol>" in out
    assert "<thead><tr><th>name</th><th>value</th></tr></thead>" in out
    assert "<td><code>persona:x</code></td><td class='num'>3.24 [2.41, 4.08]</td>" in out
    assert "<pre><code>code &lt;here&gt;\n  indented</code></pre>" in out
    assert "<blockquote><p>quoted <b>words</b></p></blockquote>" in out and "<hr>" in out


def test_images_are_inlined_and_web_images_become_links(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(PNG)
    out = markdown_to_html("![A figure](figures/a.png)\n\n![web](https://example.org/x.png)\n\n![gone](nope.png)",
                           tmp_path)
    assert f'<img alt="A figure" src="data:image/png;base64,{base64.b64encode(PNG).decode()}">' in out
    assert '<a href="https://example.org/x.png">web</a>' in out and "<img alt=\"web\"" not in out
    assert "[missing figure: nope.png]" in out


def test_render_markdown_file_writes_one_page(tmp_path):
    md = tmp_path / "report.md"
    md.write_text("# My *report*\n\nSee [the other](other.md).\n", encoding="utf-8")
    page = render_markdown_file(md)
    assert page == tmp_path / "report.html"
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<title>My report</title>" in text
    assert '<a href="other.html">the other</a>' in text
    with pytest.raises(ConfigError, match="no such file"):
        render_markdown_file(tmp_path / "missing.md")


@pytest.fixture(scope="module")
def study_page(tmp_path_factory):
    """The committed study report rendered beside a copy of its figures."""
    out = tmp_path_factory.mktemp("study")
    shutil.copy(STUDY / "report.md", out / "report.md")
    shutil.copytree(STUDY / "figures", out / "figures")
    return render_markdown_file(out / "report.md")


def test_study_report_page_is_self_contained(study_page):
    text = study_page.read_text()
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", (STUDY / "report.md").read_text())
    assert figures and text.count("src=\"data:image/png;base64,") == len(figures)
    assert "missing figure" not in text
    assert_static(text)


def test_study_report_page_fits_1024_px(study_page):
    assert_fits(study_page)


def test_width_measurement_catches_a_wide_page(tmp_path):
    page = tmp_path / "wide.html"
    page.write_text("<!DOCTYPE html><html><body><table><tr><td style='white-space:nowrap'>"
                    + "wide " * 400 + "</td></tr></table></body></html>")
    attrs = measure_widths(page)
    assert int(attrs["data-scroll-width"]) > 1024 and "TD" in attrs["data-too-wide"]


def test_static_checks_catch_bad_pages():
    with pytest.raises(AssertionError, match="network"):
        assert_static('<img src="https://cdn.example.org/x.png">')
    with pytest.raises(AssertionError, match="JSON"):
        assert_static('<pre>{"layer": 15}</pre>')
    with pytest.raises(AssertionError, match="bounds as columns"):
        assert_static("<table><tr><th>shift_lo</th></tr></table>")
    with pytest.raises(AssertionError, match="without its estimate"):
        assert_static("<td>[2.41, 4.08]</td>")
    assert_static("<details><pre>{\"layer\": 15}</pre></details><td>3.24 [2.41, 4.08]</td><a href='https://x.org'>x</a>")

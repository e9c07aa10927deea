"""Token strings that look like markup cannot break the standalone HTML page (issue 12 §5).

circuitsvis inlines a view's tokens as JSON inside a ``<script>`` block without escaping ``</``; the page writer
(:func:`interp_steer.viz.views.standalone_page`) escapes them. The page is parsed with the standard library's
HTML parser, which ends a script block where a browser does.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

cv = pytest.importorskip("circuitsvis")

from interp_steer.viz.views import save_page, standalone_page  # noqa: E402

TOKENS = ["Hello", "</script>", "<script>alert(1)</script>", "<!--", "</SCRIPT >", "-->", " world"]


class _Scripts(HTMLParser):
    """Collects the text of every <script> block and every tag seen outside them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.tags: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _props(script: str) -> dict:
    """The props object of ``CircuitsVis.render("<id>", CircuitsVis.<View>, {props})`` as JSON."""
    match = re.search(r"CircuitsVis\.render\(\s*\"[^\"]+\",\s*CircuitsVis\.\w+,\s*(\{.*\})\s*\)\s*$", script, flags=re.S)
    assert match, script[-300:]
    return json.loads(match.group(1))


def test_tokens_with_script_markup_stay_inside_their_script_block(tmp_path):
    view = cv.tokens.colored_tokens(tokens=TOKENS, values=[float(i) for i in range(len(TOKENS))])
    path = save_page(tmp_path / "page.html", "escaping", [("tokens", view)])
    parser = _Scripts()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert len(parser.scripts) == 2  # the circuitsvis bundle, then the one view: no block ended early
    assert parser.tags.count("script") == 2 and "section" in parser.tags
    view_script = parser.scripts[1]
    assert "</script" not in view_script.lower() and "<!--" not in view_script
    props = _props(view_script)
    assert props["tokens"] == TOKENS  # the escaped JSON decodes to exactly the original token strings
    assert props["values"] == [float(i) for i in range(len(TOKENS))]


def test_unescaped_circuitsvis_source_would_break_the_page():
    """The parser used above does see the problem in circuitsvis's own output (so the test can fail)."""
    view = cv.tokens.colored_tokens(tokens=TOKENS, values=[0.0] * len(TOKENS))
    raw = _Scripts()
    raw.feed(view.local_src)
    raw.close()
    assert len(raw.scripts) > 1  # a token ended the script block early
    fixed = _Scripts()
    fixed.feed(standalone_page("t", [("h", view)]))
    fixed.close()
    assert len(fixed.scripts) == 2

"""Interactive circuitsvis views drawn from view data (:mod:`interp_steer.analysis.view_data` computes it from the
model), saved as standalone (offline) HTML pages.

* :func:`draw_view` / :func:`draw_views` — a :class:`~interp_steer.analysis.view_data.TokenValues` as
  ``colored_tokens_multi``, a :class:`~interp_steer.analysis.view_data.HeadPatterns` as ``attention_heads``;
* :func:`save_page` — one HTML file with several views and the circuitsvis JavaScript inlined once.

``str(view)`` / ``show_code()`` load circuitsvis from a CDN (fails offline); pages here use ``view.local_src``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Sequence

from interp_steer.analysis.view_data import HeadPatterns, TokenValues, ViewData
from interp_steer.errors import ConfigError

_SELF_CLOSING_DIV = re.compile(r'(<div id="circuits-vis-[^"]*"[^>]*?)\s*/>')
_SCRIPT_OPEN = re.compile(r"<script\b[^>]*>", flags=re.IGNORECASE)


def _escape_script_body(source: str) -> str:
    """Make the text inside a view's ``<script>`` block unable to end it early.

    circuitsvis inlines a view's props (token strings included) as JSON in the script without escaping, so a
    token ``</script>`` would close the block and spill the rest of the page into the HTML. Inside the block,
    ``</`` becomes ``<\\/`` and ``<!--`` becomes ``\\u003C!--``: the same strings for JavaScript (and JSON),
    never markup for the HTML parser. The block runs from the view's first ``<script …>`` to its last
    ``</script>``, which circuitsvis writes as the end of every view.
    """
    opening = _SCRIPT_OPEN.search(source)
    end = source.lower().rfind("</script>")
    if opening is None or end < opening.end():
        return source
    body = source[opening.end():end].replace("</", "<\\/").replace("<!--", "\\u003C!--")
    return source[:opening.end()] + body + source[end:]


def draw_view(heading: str, data: ViewData) -> tuple[str, object]:
    """``(heading, circuitsvis view)`` of one piece of view data."""
    import circuitsvis as cv

    if isinstance(data, TokenValues):
        return heading, cv.tokens.colored_tokens_multi(tokens=data.tokens, values=data.values, labels=data.labels)
    if isinstance(data, HeadPatterns):
        return heading, cv.attention.attention_heads(attention=data.attention.tolist(), tokens=data.tokens,
                                                     attention_head_names=data.head_names)
    raise ConfigError(f"draw_view: no view for {type(data).__name__}")


def draw_views(items: Sequence[tuple[str, ViewData]]) -> list[tuple[str, object]]:
    """:func:`draw_view` of every ``(heading, data)`` pair, in order."""
    return [draw_view(heading, data) for heading, data in items]


def _library_source() -> str:
    """The inlined circuitsvis bundle exactly as ``render_local`` embeds it."""
    import circuitsvis

    bundle = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    return bundle.read_text(encoding="utf-8").replace("</script>", "")


def standalone_page(title: str, views: Sequence[tuple[str, object]]) -> str:
    """One offline HTML page: the circuitsvis bundle once (classic script, defines ``CircuitsVis``), then each
    view's ``local_src`` with its own copy of the bundle removed."""
    if not views:
        raise ConfigError("standalone_page needs at least one view")
    library = _library_source()
    parts = []
    for heading, view in views:
        rendered: Any = view  # a circuitsvis RenderedHTML
        source = rendered.local_src
        stripped = source.replace(library, "")
        # circuitsvis writes its mount point as "<div …/>", which HTML does not close: later views would be
        # nested inside it and wiped when React mounts the first one
        stripped = _SELF_CLOSING_DIV.sub(r"\1></div>", stripped)
        stripped = _escape_script_body(stripped)
        parts.append(f"<section><h2>{html.escape(heading)}</h2>\n{stripped}</section>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            f"<style>body{{font-family:sans-serif;margin:20px}} h2{{font-size:16px}}</style>\n"
            f"<script>{library}</script></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def save_page(path: str | Path, title: str, views: Sequence[tuple[str, object]]) -> Path:
    """Write :func:`standalone_page` to ``path`` (parents created) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standalone_page(title, views), encoding="utf-8")
    return path

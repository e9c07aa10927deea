"""Markdown reports → one self-contained HTML page each (figures embedded as data URIs, no network).

The markdown stays the source; :func:`render_markdown_file` writes ``report.html`` beside ``report.md`` for people
who do not read markdown. The converter covers the subset the reports use: ATX headings, paragraphs, bullet and
numbered lists, pipe tables, fenced code, block quotes, horizontal rules, and inline code, bold, italics, links and
images. A local image is read and inlined (``data:image/png;base64,…``); an image on the web is not fetched but
shown as a plain link, so the page never makes a request. The page's CSS (:data:`PAGE_STYLE`, shared with the
steering card) keeps every element within a 1024 px viewport and prints on A4.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
from pathlib import Path

from interp_steer.errors import ConfigError

PAGE_STYLE = """*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-size:14px;line-height:1.45;color:#222;
margin:0 auto;padding:16px 20px;max-width:960px}
h1{font-size:22px;margin:8px 0 12px}h2{font-size:17px;border-bottom:1px solid #ccc;margin-top:26px}h3{font-size:15px}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0;max-width:100%}
td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top;overflow-wrap:anywhere}td code,td.text{overflow-wrap:anywhere}
th{background:#f4f4f4;text-align:left}td.num{text-align:right}
code{font-size:12px;background:#f3f3f3;padding:0 2px;overflow-wrap:anywhere}
pre{background:#f7f7f7;padding:8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
img{max-width:100%;height:auto}figure{margin:10px 0}figcaption,.note{color:#555;font-size:12.5px}
blockquote{border-left:3px solid #ccc;margin:8px 0;padding:0 10px;color:#444}
details{margin:8px 0}summary{cursor:pointer;color:#333}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;padding:0;font-size:11px}table{font-size:9px}td,th{padding:2px 4px}
h2{break-after:avoid}img,figure,tr{break-inside:avoid}}"""

_NUMBER = re.compile(r"^[-+−]?[\d.,]+(e[-+]?\d+)?( \[[-+−\d.,e ]+\])?%?$")


def data_uri(path: Path) -> str:
    """``path`` as a ``data:`` URI (its MIME type from the extension)."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _inline(text: str, base: Path | None) -> str:
    """Inline markdown → HTML (escaped first; code spans are protected from the other rules)."""
    codes: list[str] = []

    def keep_code(match: re.Match) -> str:
        codes.append(f"<code>{html.escape(match.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = re.sub(r"`([^`]+)`", keep_code, text)
    text = html.escape(text, quote=False)

    def image(match: re.Match) -> str:
        alt, src = match.group(1), html.unescape(match.group(2))
        if re.match(r"https?://", src):
            return f'<a href="{html.escape(src)}">{alt or "image"}</a>'
        path = (base / src) if base is not None else Path(src)
        if not path.is_file():
            return f"<span class='note'>[missing figure: {html.escape(src)}]</span>"
        return f'<img alt="{html.escape(alt)}" src="{data_uri(path)}">'

    def link(match: re.Match) -> str:
        label, href = match.group(1), html.unescape(match.group(2))
        if href.endswith(".md") and not re.match(r"https?://", href):
            href = href[:-3] + ".html"
        return f'<a href="{html.escape(href)}">{label}</a>'

    text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", image, text)
    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str], base: Path | None) -> str:
    head = "".join(f"<th>{_inline(c, base)}</th>" for c in _cells(lines[0]))
    rows = []
    for line in lines[2:]:
        cells = "".join(f"<td class='num'>{_inline(c, base)}</td>" if _NUMBER.match(c) else f"<td>{_inline(c, base)}</td>"
                        for c in _cells(line))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def markdown_to_html(text: str, base: Path | None = None) -> str:
    """The body HTML of markdown ``text`` (see the module docstring); ``base``: the folder image paths are
    relative to."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1:j]))}</code></pre>")
            i = j + 1
        elif m := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            level = len(m.group(1))
            ident = re.sub(r"[^a-z0-9]+", "-", m.group(2).lower()).strip("-")
            out.append(f'<h{level} id="{ident}">{_inline(m.group(2), base)}</h{level}>')
            i += 1
        elif re.match(r"^(-{3,}|\*{3,})$", stripped):
            out.append("<hr>")
            i += 1
        elif stripped.startswith("|") and i + 1 < len(lines) and re.match(r"^\|?[\s:|-]+\|?$", lines[i + 1].strip()):
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            out.append(_table([ln.strip() for ln in lines[i:j]], base))
            i = j
        elif re.match(r"^([-*+]|\d+[.)])\s+", stripped):
            ordered = bool(re.match(r"^\d", stripped))
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                item = re.match(r"^\s*([-*+]|\d+[.)])\s+(.*)$", lines[i])
                if item:
                    items.append(item.group(2))
                elif items:
                    items[-1] += " " + lines[i].strip()
                i += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(t, base)}</li>" for t in items) + f"</{tag}>")
        elif stripped.startswith(">"):
            quote = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quote.append(lines[i].strip()[1:].strip())
                i += 1
            out.append(f"<blockquote>{markdown_to_html(chr(10).join(quote), base)}</blockquote>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6}\s|```|\||[-*+]\s|\d+[.)]\s|>)",
                                                                       lines[i].strip()):
                para.append(lines[i].strip())
                i += 1
            if not para:  # a line that looked like a block start but was not one
                para.append(stripped)
                i += 1
            out.append(f"<p>{_inline(' '.join(para), base)}</p>")
    return "\n".join(out)


def html_page(title: str, body: str, extra_head: str = "") -> str:
    """A complete page around ``body`` with :data:`PAGE_STYLE`."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>{extra_head}</head>\n"
            f"<body>\n{body}\n</body></html>\n")


def render_markdown_file(md_path: str | Path, html_path: str | Path | None = None) -> Path:
    """Render ``md_path`` to one self-contained HTML page (default: the same name with ``.html``); returns its
    path. The title is the first heading."""
    md_path = Path(md_path)
    if not md_path.is_file():
        raise ConfigError(f"render_markdown_file: {md_path}: no such file")
    text = md_path.read_text(encoding="utf-8")
    heading = re.search(r"^#\s+(.*)$", text, flags=re.M)
    title = re.sub(r"[`*]", "", heading.group(1)) if heading else md_path.stem
    out = Path(html_path) if html_path is not None else md_path.with_suffix(".html")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html_page(title, markdown_to_html(text, md_path.parent)), encoding="utf-8")
    os.replace(tmp, out)  # readers never see a half-written page
    return out

"""A steering card: one self-contained HTML page per vector (offline: images inlined, circuitsvis bundled once).

Sections, each a ``<section id=…>``: ``provenance`` (the vector's provenance JSON), ``recommendation``,
``steerability`` (the layers × multipliers table with 95% intervals, optionally the per-sample steerability with
its anti-steerable fraction and their intervals, and the plots: shift vs KL, propensity curves, …),
``side-effects``, ``baseline`` (steering vs the persona prompt), ``capability`` (when given), ``generations``
(steered texts side by side) and ``projection`` (the circuitsvis view of the residual's projection on the vector
over one prompt, when given). Every table and text from the data is HTML-escaped. After the page has loaded, a
small script writes ``data-images-loaded`` (images with a decoded bitmap) and ``data-sections`` on ``<body>`` so a
headless browser's DOM dump shows what rendered.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.viz.views import _SELF_CLOSING_DIV, _library_source

_STYLE = """body{font-family:sans-serif;margin:24px;max-width:1200px}h2{font-size:17px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f4f4f4}td.text{text-align:left;max-width:420px}pre{background:#f7f7f7;padding:8px;font-size:12px;
white-space:pre-wrap}img{max-width:100%}.note{color:#555;font-size:13px}"""

_ONLOAD = """<script>window.addEventListener('load',function(){var ok=0;for(var i=0;i<document.images.length;i++){
var im=document.images[i];if(im.complete&&im.naturalWidth>0){ok++;}}document.body.setAttribute('data-images-loaded',ok);
document.body.setAttribute('data-images-total',document.images.length);var s=[];document.querySelectorAll('section')
.forEach(function(e){if(e.offsetHeight>0){s.push(e.id);}});document.body.setAttribute('data-sections',s.join(','));});
</script>"""


def _table(frame: pd.DataFrame | None, digits: int = 4) -> str:
    if frame is None or frame.empty:
        return "<p class='note'>(none)</p>"
    return frame.to_html(index=False, escape=True, na_rep="", float_format=lambda x: f"{x:.{digits}g}", border=0)


def _image(png: bytes, alt: str) -> str:
    return f"<img alt=\"{html.escape(alt)}\" src=\"data:image/png;base64,{base64.b64encode(png).decode('ascii')}\">"


def _generations_html(generations: pd.DataFrame | None) -> str:
    if generations is None or generations.empty:
        return "<p class='note'>(none)</p>"
    mults = sorted(generations["multiplier"].unique())
    head = "".join(f"<th>multiplier {m:+g}</th>" for m in mults)
    rows = []
    for _, group in generations.groupby("prompt_index", sort=True):
        texts = group.set_index("multiplier")["text"]
        prompt = group["user_prompt"].iloc[0] if "user_prompt" in group.columns else ""
        cells = "".join(f"<td class='text'>{html.escape(str(texts.get(m, '')))}</td>" for m in mults)
        rows.append(f"<tr><td class='text'>{html.escape(str(prompt))}</td>{cells}</tr>")
    return f"<table><tr><th>prompt</th>{head}</tr>{''.join(rows)}</table>"


def steering_card_html(
    title: str,
    *,
    provenance: Mapping | None,
    recommendation: Mapping,
    summary: pd.DataFrame,
    images: Sequence[tuple[str, bytes]] = (),
    steerability: pd.DataFrame | None = None,
    side_effects: pd.DataFrame | None = None,
    baseline: pd.DataFrame | None = None,
    capability: pd.DataFrame | None = None,
    generations: pd.DataFrame | None = None,
    projection: tuple[str, object] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The card as one HTML string (see the module docstring). ``images``: ``(caption, PNG bytes)`` shown in the
    steerability section; ``steerability``: per-sample steerability statistics (e.g. mean slope and anti-steerable
    fraction with their intervals) shown there too; ``projection``: a ``(heading, circuitsvis view)`` such as
    :func:`~interp_steer.viz.views.projection_view` returns."""
    if summary is None or summary.empty:
        raise ConfigError("steering_card_html: the summary table is empty")
    sections = []

    def section(ident: str, heading: str, body: str) -> None:
        sections.append(f"<section id=\"{ident}\"><h2>{html.escape(heading)}</h2>\n{body}\n</section>")

    section("provenance", "Vector provenance",
            f"<pre>{html.escape(json.dumps(dict(provenance or {}), indent=2, default=str))}</pre>")
    rec_text = html.escape(str(recommendation.get("reason", "")))
    if recommendation.get("found"):
        rec_head = (f"Layer {recommendation['layer']}, multiplier {recommendation['multiplier']:g} "
                    f"({html.escape(str(recommendation.get('units', 'raw')))} units)")
    else:
        rec_head = "No setting within the KL budget"
    notes_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    section("recommendation", "Recommendation", f"<p><b>{rec_head}</b>: {rec_text}.</p>{notes_html}"
            f"<pre>{html.escape(json.dumps(dict(recommendation), indent=2, default=str))}</pre>")
    steer_cols = [c for c in ("layer", "multiplier", "raw_multiplier", "n_samples", "shift", "shift_lo", "shift_hi",
                              "mean_propensity") if c in summary.columns]
    figures = "".join(f"<figure>{_image(png, caption)}<figcaption class='note'>{html.escape(caption)}</figcaption></figure>"
                      for caption, png in images)
    per_sample = "" if steerability is None else (
        "<p class='note'>Per-sample steerability: slope of propensity on multiplier (mean) and anti-steerable "
        "fraction (share of samples with slope &lt; 0), percentile-bootstrap 95% intervals over samples.</p>"
        + _table(steerability.dropna(axis=1, how="all")))
    section("steerability", "Steerability (behaviour shift vs unsteered, 95% bootstrap CI)",
            _table(summary[steer_cols]) + per_sample + figures)
    side = side_effects if side_effects is not None else summary[[c for c in (
        "layer", "multiplier", "kl", "kl_lo", "kl_hi", "dnll", "dnll_lo", "dnll_hi", "format_mass") if c in summary.columns]]
    section("side-effects", "Side effects (KL and ΔNLL on the neutral corpus, nats/token; answer-format mass)",
            _table(side.dropna(axis=1, how="all")))
    section("baseline", "Prompting baseline: does steering beat just asking?",
            _table(None if baseline is None else baseline.dropna(axis=1, how="all")))
    if capability is not None:
        section("capability", "Capability under steering (letter-balanced MMLU / TruthfulQA)", _table(capability))
    section("generations", "Steered generations", _generations_html(generations))
    library = ""
    if projection is not None:
        heading, view = projection
        view = cast(Any, view)  # a circuitsvis RenderedHTML
        library = _library_source()
        source = _SELF_CLOSING_DIV.sub(r"\1></div>", view.local_src.replace(library, ""))
        section("projection", heading, source)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            f"<style>{_STYLE}</style>\n" + (f"<script>{library}</script>" if library else "") + "</head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + f"\n{_ONLOAD}</body></html>\n")


def save_steering_card(path: str | Path, title: str, **sections) -> Path:
    """Write :func:`steering_card_html` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(steering_card_html(title, **sections), encoding="utf-8")
    return path

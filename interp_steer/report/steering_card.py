"""A steering card: one self-contained HTML page per vector that answers "which setting, what does it buy, at
what cost, and is it better than asking?" before anything else.

Sections, each a ``<section id=…>``, in reading order: ``summary`` (the recommendation, its effect and cost, steering
vs the persona prompt, the capability change, each with its 95% interval and n, and a plain-words verdict),
``figures``, ``steerability`` (layers × multipliers, and the per-sample steerability when given), ``side-effects``,
``baseline`` (steering vs prompting), ``capability`` (when given), ``generations`` (steered texts side by side),
``projection`` (the circuitsvis view, when given) and ``provenance`` (a small key/value table; the full JSON in a
collapsed ``<details>``).

Every number follows :mod:`interp_steer.report.format` (intervals as ``"x [lo, hi]"``, units in the headers); tables
keep at most :data:`MAX_COLUMNS` columns (wider ones are split, repeating their key columns) so the page fits a
1024 px screen and prints on A4. Data text is HTML-escaped; images are inlined, so the page works offline. After
load, a small script writes ``data-images-loaded``, ``data-images-total`` and ``data-sections`` on ``<body>``.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.report.console import compare_phrase, display_frame
from interp_steer.report.format import format_interval, format_value
from interp_steer.report.html import PAGE_STYLE
from interp_steer.viz.views import _SELF_CLOSING_DIV, _library_source

MAX_COLUMNS = 7
KEY_COLUMNS = ("dataset", "layer", "vector", "multiplier", "method", "arm")
LABELS = {"n_samples": "n", "n_items": "n", "n_passages": "passages", "kl": "KL", "dnll": "ΔNLL",
          "format_mass": "format mass", "raw_multiplier": "raw mult.", "mean_propensity": "mean propensity",
          "anti_steerable_fraction": "anti-steerable", "repetition_rate": "repetition", "distinct_2": "distinct-2",
          "unsteered_ppl": "unsteered ppl"}
UNITS = {"kl": "nats/token", "dnll": "nats/token"}
_CARD_STYLE = """.summary{background:#f6f8fb;border:1px solid #d7dde8;border-radius:6px;padding:10px 14px}
.summary dl{display:grid;grid-template-columns:minmax(140px,max-content) 1fr;gap:4px 14px;margin:6px 0}
.summary dt{font-weight:600;color:#333}.summary dd{margin:0}.verdict{font-size:15px;margin:4px 0 8px}
td.text{min-width:160px}table.kv td:first-child{font-weight:600;white-space:nowrap}"""

_ONLOAD = """<script>window.addEventListener('load',function(){var ok=0;for(var i=0;i<document.images.length;i++){
var im=document.images[i];if(im.complete&&im.naturalWidth>0){ok++;}}document.body.setAttribute('data-images-loaded',ok);
document.body.setAttribute('data-images-total',document.images.length);var s=[];document.querySelectorAll('section')
.forEach(function(e){if(e.offsetHeight>0){s.push(e.id);}});document.body.setAttribute('data-sections',s.join(','));});
</script>"""


def _is_numeric(cells: Sequence[str]) -> bool:
    texts = [c for c in cells if c]
    return bool(texts) and all(c[0].isdigit() or c[0] in "-+" or c in ("n/a", "inf") for c in texts)


def _html_table(shown: pd.DataFrame) -> str:
    numeric = {c: _is_numeric(shown[c].tolist()) for c in shown.columns}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = "".join("<tr>" + "".join(f"<td class='num'>{html.escape(v)}</td>" if numeric[c] else
                                    f"<td>{html.escape(v)}</td>" for c, v in zip(shown.columns, row)) + "</tr>"
                   for row in shown.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def table_html(frame: pd.DataFrame | None, columns: Sequence[str] | None = None, *,
               units: Mapping[str, str] | None = None, max_columns: int = MAX_COLUMNS) -> str:
    """A compact HTML table: interval triples merged (``"x [lo, hi]"``), all-empty columns dropped, and split
    into several tables (key columns repeated) when wider than ``max_columns``."""
    if frame is None or frame.empty:
        return "<p class='note'>(none)</p>"
    frame = frame.dropna(axis=1, how="all")
    shown = display_frame(frame, columns, units={**UNITS, **dict(units or {})}, labels=LABELS)
    shown = shown.loc[:, [c for c in shown.columns if shown[c].astype(bool).any()]]
    if shown.shape[1] <= max_columns:
        return _html_table(shown)
    keys = [h for h in (LABELS.get(k, k.replace("_", " ")) for k in KEY_COLUMNS) if h in shown.columns][:3]
    rest = [c for c in shown.columns if c not in keys]
    step = max(max_columns - len(keys), 1)
    return "".join(_html_table(shown[keys + rest[i:i + step]]) for i in range(0, len(rest), step))


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
        rows.append(f"<tr><td class='text'><b>{html.escape(str(prompt))}</b></td>{cells}</tr>")
    return f"<table><thead><tr><th>prompt</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _provenance_html(provenance: Mapping | None) -> str:
    if not provenance:
        return "<p class='note'>(no provenance recorded)</p>"
    rows = []
    for key, value in provenance.items():
        if isinstance(value, Mapping):
            if key == "extra" and "split" in value:
                rows.append(("split", json.dumps(value["split"], default=str)))
            continue  # nested detail lives in the JSON below
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value))
        rows.append((key, str(value)))
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    full = html.escape(json.dumps(dict(provenance), indent=2, default=str))
    return (f"<table class='kv'><tbody>{body}</tbody></table>"
            f"<details><summary>Full provenance JSON</summary><pre>{full}</pre></details>")


def _row(frame: pd.DataFrame | None, **match: object) -> pd.Series | None:
    if frame is None or frame.empty or not all(k in frame.columns for k in match):
        return None
    rows = frame
    for key, value in match.items():
        rows = rows[rows[key] == value]
    return None if rows.empty else rows.iloc[0]


def _triple(row: pd.Series | Mapping | None, name: str) -> list[float]:
    if row is None:
        return [np.nan] * 3
    return [float(row.get(f"{name}{s}", np.nan) if row.get(f"{name}{s}") is not None else np.nan)
            for s in ("", "_lo", "_hi")]


def _setting_row(summary: pd.DataFrame, rec: Mapping) -> pd.Series | None:
    if not rec.get("found") or "multiplier" not in summary.columns:
        return None
    rows = summary[summary["multiplier"] == rec["multiplier"]]
    if "layer" in rows.columns and rec.get("layer") is not None:
        rows = rows[rows["layer"] == rec["layer"]]
    return None if rows.empty else rows.iloc[0]


def summary_html(recommendation: Mapping, summary: pd.DataFrame, baseline: pd.DataFrame | None,
                 capability: pd.DataFrame | None, propensity_units: str, notes: Sequence[str] = ()) -> str:
    """The summary block: recommendation, effect, cost, steering vs prompting and capability (each with its 95%
    interval and n), then a verdict in plain words."""
    rec, pu = recommendation, propensity_units
    items: list[tuple[str, str]] = []
    verdict: list[str] = []
    units = str(rec.get("units", "raw"))
    unit_words = "× the layer's mean residual norm" if units == "norm" else f"{units} units"
    if rec.get("found"):
        row = _setting_row(summary, rec)
        n = "" if row is None or "n_samples" not in row else f" (n = {int(row['n_samples'])} held-out samples)"
        passages = "" if row is None or "n_passages" not in row else f" (n = {int(row['n_passages'])} neutral passages)"
        where = f"layer {rec['layer']}, " if rec.get("layer") is not None else ""
        shift = [rec.get("shift"), rec.get("shift_lo"), rec.get("shift_hi")]
        kl = [rec.get("kl"), rec.get("kl_lo", np.nan), rec.get("kl_hi")]
        items.append(("Recommendation", f"{where}multiplier {rec['multiplier']:g} ({unit_words})"))
        items.append(("Effect", f"behaviour shift {format_interval(shift, units=pu)} vs unsteered{n}"))
        cost = f"KL {format_interval(kl, units='nats/token')} on neutral text{passages}; budget {rec.get('kl_budget', np.nan):g}"
        if rec.get("dnll") is not None:
            cost += f"; ΔNLL {format_interval(_triple(row, 'dnll'), units='nats/token')}"
        items.append(("Cost", cost))
        moves = (shift[1] or 0) > 0
        verdict.append(f"Steering at {where}{rec['multiplier']:g} {unit_words} "
                       + (f"moves the behaviour by {format_interval(shift, units=pu)}" if moves else
                          f"does not move the behaviour distinguishably from zero ({format_interval(shift, units=pu)})")
                       + f" at a KL of {format_value(rec.get('kl'))} nats/token.")
    else:
        items.append(("Recommendation", f"none: {rec.get('reason', 'no setting qualifies')}"))
        verdict.append("No setting moves the behaviour within the KL budget; see the tables below.")
    steer, prompt = _row(baseline, method="steering", arm="pos"), _row(baseline, method="prompting", arm="pos")
    if steer is not None and prompt is not None:
        s, p = _triple(steer, "shift"), _triple(prompt, "shift")
        skl, pkl = _triple(steer, "kl"), _triple(prompt, "kl")
        n = f" (n = {int(steer['n_samples'])})" if "n_samples" in steer else ""
        items.append(("Steering vs prompting", f"steering {format_interval(s, units=pu)} at KL {format_interval(skl)}; the "
                                               f"persona prompt {format_interval(p, units=pu)} at KL {format_interval(pkl)}{n}"))
        ratio = f" at {format_value(pkl[0] / skl[0], digits=2)}× less KL" if skl[0] and pkl[0] > skl[0] else ""
        verdict.append(compare_phrase("steering", s, "the persona prompt", p).capitalize()
                       + (ratio if s[1] > p[2] else "") + ".")
    if capability is not None and not capability.empty and rec.get("found"):
        lines, changed = [], []
        for spec, group in capability.groupby("dataset", sort=True):
            base, steered = _row(group, multiplier=0.0), _row(group, multiplier=rec["multiplier"])
            if base is None or steered is None:
                continue
            b, a = _triple(base, "accuracy"), _triple(steered, "accuracy")
            name = str(spec).split(":")[-1]
            lines.append(f"{name} accuracy {format_interval(b)} → {format_interval(a)} (n = {int(steered['n_items'])} items)")
            if a[2] < b[1] or a[1] > b[2]:
                changed.append(name)
        if lines:
            items.append(("Capability", "; ".join(lines)))
            verdict.append("Capability changes on " + ", ".join(changed) + "." if changed else
                           "No detectable capability change (the intervals with and without steering overlap).")
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items)
    note = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    return (f"<div class='summary'><p class='verdict'><b>{html.escape(' '.join(verdict))}</b></p><dl>{dl}</dl>"
            f"<p class='note'>Intervals: 95% percentile bootstrap over samples / passages / items.</p>{note}</div>")


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
    propensity_units: str | None = None,
) -> str:
    """The card as one HTML string (see the module docstring). ``images``: ``(caption, PNG bytes)`` shown under
    the summary; ``steerability``: per-sample steerability statistics (mean slope and anti-steerable fraction with
    their intervals); ``projection``: a ``(heading, circuitsvis view)`` such as
    :func:`~interp_steer.viz.views.draw_view` returns for :func:`~interp_steer.analysis.view_data.projection_view`; ``propensity_units``: ``"nats"`` or ``"logits"``
    (default: logits when the summary has a format mass, i.e. A/B data, else nats)."""
    if summary is None or summary.empty:
        raise ConfigError("steering_card_html: the summary table is empty")
    if propensity_units is None:
        ab = "format_mass" in summary.columns and summary["format_mass"].notna().any()
        propensity_units = "logits" if ab else "nats"
    pu = propensity_units
    sections = []

    def section(ident: str, heading: str, body: str) -> None:
        sections.append(f"<section id=\"{ident}\"><h2>{html.escape(heading)}</h2>\n{body}\n</section>")

    section("summary", "Summary", summary_html(recommendation, summary, baseline, capability, pu, notes)
            + f"<details><summary>Recommendation JSON</summary><pre>"
              f"{html.escape(json.dumps(dict(recommendation), indent=2, default=str))}</pre></details>")
    figures = "".join(f"<figure>{_image(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"
                      for caption, png in images)
    section("figures", "Figures", figures or "<p class='note'>(none)</p>")
    steer_cols = ["layer", "multiplier", "raw_multiplier", "n_samples", "shift", "mean_propensity"]
    per_sample = "" if steerability is None else (
        "<p class='note'>Per-sample steerability: slope of propensity on the multiplier (mean) and the anti-steerable "
        "fraction (share of samples with slope &lt; 0), 95% bootstrap intervals over samples.</p>"
        + table_html(steerability, ["dataset", "layer", "vector", "n_samples", "mean_slope", "anti_steerable_fraction"],
                     units={"mean_slope": f"{pu} per unit multiplier"}))
    section("steerability", f"Behaviour shift vs unsteered ({pu}, 95% CI)",
            table_html(summary, steer_cols, units={"shift": pu, "mean_propensity": pu}) + per_sample)
    side = side_effects if side_effects is not None else summary
    section("side-effects", "Side effects on neutral text and the answer format",
            table_html(side, ["layer", "multiplier", "n_passages", "kl", "dnll", "format_mass"]))
    section("baseline", "Prompting baseline: does steering beat just asking?",
            table_html(baseline, ["method", "arm", "setting", "n_samples", "shift", "kl", "dnll", "format_mass"],
                       units={"shift": pu})
            + ("" if baseline is None or "repetition_rate" not in baseline.columns else
               "<p class='note'>Generation quality of each arm:</p>"
               + table_html(baseline, ["method", "arm", "repetition_rate", "distinct_2", "unsteered_ppl"])))
    if capability is not None:
        section("capability", "Capability under steering (letter-balanced MMLU / TruthfulQA)",
                table_html(capability, ["dataset", "layer", "multiplier", "n_items", "accuracy", "format_mass"]))
    section("generations", "Steered generations, side by side", _generations_html(generations))
    library = ""
    if projection is not None:
        heading, view = projection
        view = cast(Any, view)  # a circuitsvis RenderedHTML
        library = _library_source()
        source = _SELF_CLOSING_DIV.sub(r"\1></div>", view.local_src.replace(library, ""))
        section("projection", heading, f"<div class='projection'>{source}</div>")
    section("provenance", "Vector provenance", _provenance_html(provenance))
    head = f"<style>{_CARD_STYLE}</style>" + (f"<script>{library}</script>" if library else "")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>\n"
            f"<style>{PAGE_STYLE}</style>{head}</head>\n"
            f"<body><h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + f"\n{_ONLOAD}</body></html>\n")


def save_steering_card(path: str | Path, title: str, **sections) -> Path:
    """Write :func:`steering_card_html` to ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(steering_card_html(title, **sections), encoding="utf-8")
    return path

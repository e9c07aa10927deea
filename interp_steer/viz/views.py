"""Interactive circuitsvis views of one sample, saved as standalone (offline) HTML pages.

* :func:`attention_views` — attention patterns of one layer with and without steering: the full head patterns
  (``circuitsvis.attention.attention_heads``) over the last ``window`` tokens, and the answer position's
  attention row over the whole input per head (clean, steered, steered − clean) as coloured tokens.
* :func:`projection_view` — per token, the projection of each chosen layer's residual stream on the unit
  steering vector (clean and steered), and optionally chosen SAE latents, as ``colored_tokens_multi``.
* :func:`save_page` — one HTML file with several views and the circuitsvis JavaScript inlined once.

``str(view)`` / ``show_code()`` load circuitsvis from a CDN (fails offline); pages here use ``view.local_src``.
The input is the answer readout of the pair (prompt + response prefix, see
:func:`~interp_steer.analysis.readout.answer_readout`); steering starts at the last prompt token.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from transformer_lens import HookedTransformer

from interp_steer.analysis.readout import clean_and_steered_caches
from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError
from interp_steer.steering.vector import SteeringVector

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


def _rounded(tensor: torch.Tensor, digits: int = 4) -> list:
    """Nested lists of rounded floats: keeps the inlined JSON small."""
    return torch.round(tensor.float().cpu(), decimals=digits).tolist()


def _token_labels(model: HookedTransformer, ids: Sequence[int]) -> list[str]:
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ConfigError("the model has no tokenizer attached; load it with interp_steer.models.load_model")
    return [str(tokenizer.decode([i])) for i in ids]


@torch.inference_mode()
def attention_views(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    layer: int,
    *,
    multiplier: float = 1.0,
    window: int = 40,
) -> list[tuple[str, object]]:
    """``(heading, view)`` pairs: the answer row per head, then full head patterns clean and steered."""
    import circuitsvis as cv

    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"layer={layer} out of range for a {model.cfg.n_layers}-layer model")
    if window < 2:
        raise ConfigError(f"window must be ≥ 2, got {window}")
    vector = vector.select()
    name = f"blocks.{layer}.attn.hook_pattern"
    readout, clean, steered = clean_and_steered_caches(model, vector, pair, multiplier, {name})
    tokens = _token_labels(model, readout.ids)
    clean_pattern, steered_pattern = clean[name][0], steered[name][0]  # [head, query, key]
    heads = range(model.cfg.n_heads)
    answer_rows = torch.cat([clean_pattern[:, -1].T, steered_pattern[:, -1].T, (steered_pattern - clean_pattern)[:, -1].T], dim=1)
    labels = [f"L{layer}H{h} {cond}" for cond in ("clean", "steered", "Δ") for h in heads]
    views = [(f"Attention from the answer position, layer {layer} (per head: clean, steered, steered − clean)",
              cv.tokens.colored_tokens_multi(tokens=tokens, values=torch.tensor(_rounded(answer_rows)), labels=labels))]
    lo = max(0, len(tokens) - window)
    head_names = [f"L{layer}H{h}" for h in heads]
    for condition, pattern in (("clean", clean_pattern), (f"steered ×{multiplier:g}", steered_pattern)):
        views.append((f"Layer {layer} attention patterns, {condition} (last {len(tokens) - lo} tokens)",
                      cv.attention.attention_heads(attention=_rounded(pattern[:, lo:, lo:]), tokens=tokens[lo:],
                                                   attention_head_names=head_names)))
    return views


@torch.inference_mode()
def projection_view(
    model: HookedTransformer,
    vector: SteeringVector,
    pair: ContrastivePair,
    layers: Sequence[int],
    *,
    multiplier: float = 1.0,
    sae=None,
    sae_features: Sequence[int] = (),
    sae_hook_name: str | None = None,
) -> tuple[str, object]:
    """``(heading, view)``: per-token projection on the unit vector at ``layers`` (clean, steered) and SAE latents."""
    import circuitsvis as cv

    vector = vector.select()
    bad = [layer for layer in layers if not 0 <= layer < model.cfg.n_layers]
    if bad or not layers:
        raise ConfigError(f"layers {list(layers)}: need at least one layer in 0..{model.cfg.n_layers - 1}")
    unit = vector.directions[vector.hook_names[0]].float().to(model.cfg.device)
    unit = unit / unit.norm()
    names = {f"blocks.{layer}.hook_resid_post" for layer in layers}
    if sae is not None and sae_features:
        sae_hook_name = sae_hook_name or getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
        if sae_hook_name not in model.hook_dict:
            raise ConfigError(f"sae_hook_name {sae_hook_name!r} is not a hook of the model")
        names.add(sae_hook_name)
    readout, clean, steered = clean_and_steered_caches(model, vector, pair, multiplier, names)
    columns, labels = [], []
    for layer in layers:
        for condition, cache in (("clean", clean), ("steered", steered)):
            columns.append(cache[f"blocks.{layer}.hook_resid_post"][0].float() @ unit)
            labels.append(f"L{layer} proj {condition}")
    if sae is not None and sae_features:
        for condition, cache in (("clean", clean), ("steered", steered)):
            latents = sae.encode(cache[sae_hook_name][0].float()).float()
            for feature in sae_features:
                columns.append(latents[:, int(feature)])
                labels.append(f"SAE {feature} {condition}")
    values = torch.tensor(_rounded(torch.stack(columns, dim=1)))
    view = cv.tokens.colored_tokens_multi(tokens=_token_labels(model, readout.ids), values=values, labels=labels)
    return "Projection of the residual stream on the steering vector (and SAE latents) per token", view


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

"""The ``explain`` report (``report.md``) from the tables of an explain run (:mod:`interp_steer.runs.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from interp_steer.analysis.breakdown import render_breakdown_markdown
from interp_steer.analysis.markdown_tables import markdown_table


def _top_sites(frame, k: int = 6):
    cols = ["component", "layer", "position", "token", "head", "share"]
    ranked = frame.reindex(frame["share"].abs().sort_values(ascending=False).index)
    return ranked[~((ranked["component"] == "resid_pre"))][cols].head(k)


def explain_report(config: Any, vector, n_test: int, runtime_s: float, disjoint_note: str, comparison: pd.DataFrame,
                   sae_table: pd.DataFrame | None, eps: float, tables: Mapping[str, pd.DataFrame], *, layer: int,
                   chosen: Mapping[str, str], view_layer: int, html_files: Mapping[str, str]) -> list[str]:
    """The report's lines: breakdown, direct effect, patching of the ``chosen`` samples, views (``tables``:
    ``direct``, ``patching``, ``features``)."""
    direct, patching, features = tables["direct"], tables["patching"], tables["features"]
    summary_direct = direct.groupby("group", observed=True)[["direct_raw", "direct_normed", "total_per_unit", "slope"]].mean().reset_index()
    component_sums = (patching[(patching["layer"] > layer) & (patching["component"] != "resid_pre")].groupby(["role", "component"], sort=False)["share"].sum().unstack("component").reset_index())
    rows = {r: patching[patching["role"] == r].iloc[0] for r in ("steerable", "anti-steerable")}
    steer_id, anti_id = chosen["steerable"], chosen["anti-steerable"]
    lines = [
        f"# Why are some samples anti-steerable? — {config.dataset}", "",
        f"Model `{config.model}`, vector `{Path(config.vector).name}` at `{vector.hook_names[0]}` "
        f"({vector.provenance.method}, {vector.provenance.n_pairs} training pairs), {n_test} held-out samples, "
        f"multipliers {config.multipliers}; patching and direct effects at ×{config.patch_multiplier:g}. "
        f"Runtime {runtime_s:.0f} s.", "",
        f"Held-out samples: {disjoint_note}.", "",
        "## Breakdown", "", render_breakdown_markdown(comparison, sae_table, eps=eps),
        "## Direct effect through the unembedding (mean per group)", "",
        "`direct_raw` = v·(W_U[:,pos] − W_U[:,neg]); `direct_normed` adds the final RMSNorm (weight / clean scale); "
        "`total_per_unit` = measured change of the answer logit diff per unit multiplier.", "",
        markdown_table(summary_direct), "",
        "## Activation patching: most steerable vs most anti-steerable sample", "",
    ]
    for role, sample_id in (("steerable", steer_id), ("anti-steerable", anti_id)):
        row = rows[role]
        lines += [f"**{role}** `{sample_id}`: logit diff clean {row['metric_clean']:+.3f} → steered {row['metric_steered']:+.3f} "
                  f"(slope {float(features.set_index('sample_id').loc[sample_id, 'slope']):+.3f}). Top non-residual sites:", "",
                  markdown_table(_top_sites(patching[patching["role"] == role])), ""]
    lines += [
        "Summed share per component over the layers after the vector (positions and heads summed; sites overlap, so "
        "sums are not exact decompositions; the rest flows through the residual stream directly):", "",
        markdown_table(component_sums), "",
        "![patching](patching.png)", "", "![patching downstream](patching_downstream.png)", "",
        "![logit lens](logit_lens.png)", "",
        f"Interactive views (attention at layer {view_layer}, the layer whose heads carry the most share; "
        "projection on the vector per token): " + ", ".join(f"[{r}]({f})" for r, f in html_files.items()), "",
        "Tables: `propensity.csv`, `sample_features.csv`, `direct_effect.csv`, `patching.csv`, `logit_lens.csv`.", "",
    ]
    return lines

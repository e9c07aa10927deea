"""The ``why`` report: one case's ``README.md`` from the tables its unit wrote (every number from those tables).

:func:`why_readme` takes the run's config, the case's summary record and its tables (``groups``,
``factor_tests``, ``sae_tests`` / ``sae_top_tokens``, ``contrast_tests`` / ``contrast_tokens``, ``predictor``,
``patching``, ``regions``, ``direct``, ``top_vector_tokens``, ``lens``); the job is :mod:`interp_steer.runs.why`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from interp_steer.analysis.markdown_tables import markdown_table


def fmt_ci(value: float, low: float, high: float, digits: int = 2) -> str:
    """``+v [+lo, +hi]`` with signs; ``n/a`` for a missing value, ``(CI n/a)`` for a missing interval."""
    if not np.isfinite(value):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:+.{digits}f} (CI n/a)"
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def why_readme(config: Any, case: str, summary: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> str:
    """The case's README.md: groups, candidate factors, SAE latents, predictors, patching, direct effects, views."""
    groups, t = tables["groups"], tables
    lines = _intro_lines(config, case, summary, groups)
    lines += _factor_lines(t["factor_tests"])
    lines += [f"## SAE latents (`{config.sae}`): last prompt token, clean run", ""]
    lines += _sae_section(t["sae_tests"], t["sae_top_tokens"], "Latents at the last prompt token (where steering starts; "
                          "constant when every sample shares one prompt). `sae_features.csv`, `sae_top_tokens.csv`.",
                          "sae_heldout.png")
    lines += [f"## SAE latents (`{config.sae}`): completion contrast (positive − negative completion, clean run)", ""]
    lines += _sae_section(t["contrast_tests"], t["contrast_tokens"], "Per sample, the mean latent activation over the "
                          "positive completion's tokens minus that over the negative completion's (\"active\" = non-zero). "
                          "`sae_completion_features.csv`, `sae_completion_top_tokens.csv`.", "sae_completion_heldout.png")
    lines += _predictor_lines(config, t["predictor"])
    lines += _patching_lines(config, summary, groups, t["patching"], t["regions"])
    lines += _effects_lines(summary, t["direct"], t["lens"], t["top_vector_tokens"])
    return "\n".join(lines)


def _intro_lines(config: Any, case: str, summary: Mapping[str, Any], groups: pd.DataFrame) -> list[str]:
    """Title, setup and the group sizes."""
    sizes = summary["groups"]
    n = summary["n_test"]
    return [
        f"# Why are some samples anti-steerable? — `{case}`", "",
        f"Model `{config.model}`; CAA vector at `{summary['hook']}` (norm {summary['vector_norm']:.1f}) from {summary['n_train']} "
        f"training pairs; {n} held-out samples; multipliers {config.multipliers}; patching, direct effects and views "
        f"at ×{config.patch_multiplier:g}. Metric: summed log-prob of the positive completion − that of the negative "
        "one (nats). Written by `interp-steer why` (`interp_steer.runs.why`).", "",
        "## Groups", "",
        f"steerable **{sizes['steerable']}**, anti-steerable **{sizes['anti-steerable']}**, insensitive "
        f"**{sizes['insensitive']}** of {n} (by sign alone: {int((groups['slope'] < 0).sum())} with a negative slope).", "",
        f"Rule: {summary['rule']}.", "",
    ]


def _factor_lines(factor_tests: pd.DataFrame) -> list[str]:
    """The candidate factors tested on the held-out half."""
    fmt = fmt_ci
    held = factor_tests[factor_tests["held"]]
    factor_view = pd.DataFrame({
        "factor": factor_tests["factor"],
        "discovery ρ": factor_tests["discovery_rho"].round(2),
        "held-out ρ [95% CI]": [fmt(r, lo, hi) for r, lo, hi in zip(factor_tests["heldout_rho"], factor_tests["heldout_rho_low"], factor_tests["heldout_rho_high"])],
        "held-out d [95% CI]": [fmt(d, lo, hi) for d, lo, hi in zip(factor_tests["heldout_d"], factor_tests["heldout_d_low"], factor_tests["heldout_d_high"])],
        "held": factor_tests["held"],
    })
    return [
        "## Candidate factors on held-out samples", "",
        f"Samples split (stratified by group) into a discovery half ({int(factor_tests['n_discovery'].iloc[0])}) and a "
        f"held-out half ({int(factor_tests['n_heldout'].iloc[0])}). ρ: Spearman with the slope; d: Cohen's d steerable − "
        "anti-steerable; CIs: 95% percentile bootstrap over held-out samples. *held* = held-out ρ CI excludes 0 on the "
        "side the discovery half predicted. `attn_prompt_steered`/`_delta` need the steered run (explanations, not "
        "predictor inputs).", "",
        markdown_table(factor_view), "",
        ("Held on held-out samples: " + ", ".join(f"`{f}` (ρ {fmt(r, lo, hi)})" for f, r, lo, hi in
                                                  zip(held["factor"], held["heldout_rho"], held["heldout_rho_low"], held["heldout_rho_high"]))
         if len(held) else "No factor held on the held-out half (every held-out ρ CI contains 0 or has the other sign)."), "",
        "![factors](factors_heldout.png)", "",
    ]


def _sae_section(tests: pd.DataFrame, top_tokens: pd.DataFrame, intro: str, figure: str) -> list[str]:
    """README lines for one table of SAE latents tested on the held-out half (or why there is none)."""
    fmt = fmt_ci
    if tests.empty:
        return ["No SAE latent was active in enough discovery samples to compare.", ""]
    view = pd.DataFrame({
        "latent": tests["feature"], "discovery d": tests["discovery_d"].round(2),
        "held-out d [95% CI]": [fmt(d, lo, hi) for d, lo, hi in zip(tests["heldout_d"], tests["heldout_d_low"], tests["heldout_d_high"])],
        "held-out ρ [95% CI]": [fmt(r, lo, hi) for r, lo, hi in zip(tests["heldout_rho"], tests["heldout_rho_low"], tests["heldout_rho_high"])],
        "active (steerable / anti)": [f"{a:.0%} / {b:.0%}" for a, b in zip(tests["active_steerable"], tests["active_anti"])],
        "held": tests["held"],
        "top tokens": [", ".join(repr(t) for t in top_tokens[top_tokens["feature"] == f]["token"].head(5)) for f in tests["feature"]],
    })
    return [f"{intro} The {len(tests)} latents with the largest |d| on the discovery half, tested on the held-out half "
            f"({int(tests['held'].sum())} held). Top tokens: where each latent fires most over every sample's prompt and "
            "completions.", "", markdown_table(view), "", f"![sae]({figure})", ""]


def _predictor_lines(config: Any, predictor: pd.DataFrame) -> list[str]:
    """Out-of-fold prediction of steerability from unsteered features, against the baseline propensity."""
    fmt = fmt_ci
    pred_view = pd.DataFrame({
        "predictor": predictor["predictor"], "metric": predictor["metric"],
        "held-out value [95% CI]": [fmt(v, lo, hi) for v, lo, hi in zip(predictor["value"], predictor["ci_low"], predictor["ci_high"])],
        "minus baseline [95% CI]": [fmt(v, lo, hi) for v, lo, hi in zip(predictor["vs_baseline"], predictor["vs_ci_low"], predictor["vs_ci_high"])],
    })
    beats = predictor[(predictor["predictor"] != "baseline propensity") & (predictor["predictor"] != "random") & (predictor["vs_ci_low"] > 0)]
    base_auc = predictor[(predictor["predictor"] == "baseline propensity") & (predictor["metric"] == "AUC")].iloc[0]
    return [
        "## Predicting steerability before steering", "",
        f"Out-of-fold ({config.n_folds}-fold, stratified) predictions from unsteered features only: logistic regression "
        "for the sign (AUC for *anti-steerable*), ridge for the slope (R²); 95% bootstrap CIs; *minus baseline* is "
        "paired with the baseline propensity alone on the same draws.", "",
        markdown_table(pred_view), "",
        ("Beats the baseline propensity alone (paired CI above 0): " + ", ".join(f"{r['predictor']} ({r['metric']})" for _, r in beats.iterrows())
         if len(beats) else
         f"**Nothing predicts better than the baseline propensity alone** (AUC {fmt(base_auc['value'], base_auc['ci_low'], base_auc['ci_high'])}): "
         "no paired difference's CI lies above 0."), "",
        "![predictor](predictor.png)", "",
    ]


def _patching_lines(config: Any, summary: Mapping[str, Any], groups: pd.DataFrame, patching: pd.DataFrame,
                    regions: pd.DataFrame) -> list[str]:
    """The two patched samples, the per-region shares and the prefix-cache speed-up."""
    speed = summary["speedup"]
    first = {r: patching[patching["role"] == r].iloc[0] for r in ("steerable", "anti-steerable")}
    by_region = regions[regions["region"].isin(["prompt", "completion"])].pivot_table(
        index=["role", "component"], columns="region", values="share", aggfunc="sum").reset_index()
    lines = ["## Activation patching: a steerable and an anti-steerable sample", ""]
    for role in ("steerable", "anti-steerable"):
        row = first[role]
        slope = float(groups.set_index("sample_id").loc[row["sample_id"], "slope"])
        lines.append(f"- **{role}** `{row['sample_id']}` (slope {slope:+.2f} nats/unit): metric clean {row['metric_clean']:+.2f} → "
                     f"steered {row['metric_steered']:+.2f}.")
    return lines + [
        "", f"Sites: resid_pre / attn_out / mlp_out per layer × position and each head (attn.hook_z; patched over the "
        f"regions {', '.join(config.head_regions)}), layers {', '.join(str(x) for x in sorted(set(patching['layer'])))} "
        "(sites at or before the vector's layer carry exactly nothing: causal masking). The only prompt position that "
        "steering changes is the last prompt token (where it starts).", "",
        "![patching](patching.png)", "",
        "Summed share per region (positions summed over layers; sites overlap, so sums are not a decomposition):", "",
        markdown_table(by_region.round(3)), "", "![regions](patching_regions.png)", "",
        f"**Prefix key/value reuse.** Positions before the last prompt token ({int(speed['prefix_tokens'])} tokens) are "
        f"computed once; each patched run recomputes only the {int(speed['suffix_tokens'])}-token suffix. On "
        f"{int(speed['n_sites'])} sites of the anti-steerable sample: full-sequence reruns {speed['full_s']:.1f} s, "
        f"prefix-cached {speed['prefix_s']:.1f} s (**{speed['speedup']:.1f}× faster**; largest difference between "
        f"the two {speed['max_abs_diff']:.1e} nats; wall time on a shared CPU).", "",
    ]


def _effects_lines(summary: Mapping[str, Any], direct: pd.DataFrame, lens: pd.DataFrame,
                   top_vector_tokens: pd.DataFrame) -> list[str]:
    """Direct effect, logit lens, the vector's top tokens, the views and the list of tables."""
    direct_means = direct.groupby("group", observed=True)[["slope", "total_per_unit", "direct_per_unit"]].agg(["mean", "count"])
    direct_means.columns = [f"{a} {b}" for a, b in direct_means.columns]
    direct_means = direct_means.reset_index()
    lens_view = lens[lens["condition"] == "steered − clean"].pivot_table(index="layer", columns="role", values="metric").reset_index()
    lens_view = lens_view[lens_view["layer"] % 3 == 2]
    return [
        "## Direct effect and logit lens on the completion tokens", "",
        "`total_per_unit`: measured metric change per unit multiplier (at the patch multiplier); `direct_per_unit`: "
        "the same with the vector added to the clean *final* residual only (no later layer reacts). Per token for the "
        "two patched samples (with the vector's linear logit push `vector_logit`): `completion_tokens.csv`.", "",
        markdown_table(direct_means.round(3)), "",
        "Logit lens (metric read from `resid_post`, steered − clean, every third layer):", "",
        markdown_table(lens_view.round(3)), "",
        "Tokens the vector raises / lowers most through the unembedding: "
        + ", ".join(repr(t) for t in top_vector_tokens[top_vector_tokens["direction"] == "raised"]["token"].head(8)) + " / "
        + ", ".join(repr(t) for t in top_vector_tokens[top_vector_tokens["direction"] == "lowered"]["token"].head(8)) + ".", "",
        "## Views (offline HTML, circuitsvis)", "",
        f"Attention at layer {summary['view_layer']} (the layer whose heads carry the most |share|) from the first "
        "completion tokens, clean vs steered, and the residual stream's projection on the vector per token: "
        "[steerable](views_steerable.html), [anti-steerable](views_anti-steerable.html).", "",
        f"Tables: `groups.csv`, `features.csv`, `factor_tests.csv`, `sae_features.csv`, `sae_top_tokens.csv`, "
        "`sae_completion_features.csv`, `sae_completion_top_tokens.csv`, "
        "`predictor.csv`, `predictions_oof.csv`, `patching.csv`, `patching_regions.csv`, `direct_effect.csv`, "
        "`completion_tokens.csv`, `logit_lens.csv`, `vector_top_tokens.csv`, `propensity.csv`. "
        f"Compute (s): {summary['timings_s']}.", "",
    ]

"""The steps of one ``why`` case (:func:`interp_steer.runs.why.why_case_files` runs them in this order).

Each step takes plain tables and numbers (no job or config object) and returns its tables:

1. :func:`case_groups` — per-sample slopes with bootstrap CIs and the steerable / anti-steerable / insensitive groups;
2. :func:`factor_tests` — candidate factors and SAE latents chosen on a discovery half, tested on the held-out half;
3. :func:`steerability_predictors` — out-of-fold prediction of the slope from unsteered features;
4. :func:`patch_pair` — prefix-cached activation patching of the most steerable and most anti-steerable sample, and
   its speed-up over full reruns;
5. :func:`completion_effects` — direct effect and logit lens on the completion tokens;
6. :func:`case_views` and :func:`case_figures` — the offline HTML views and the report's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

ROLES = ("steerable", "anti-steerable")


@dataclass
class Groups:
    """The per-sample slope groups of a case (rows in held-out sample order)."""

    table: pd.DataFrame
    sizes: dict
    labels: np.ndarray
    slope: np.ndarray


def case_groups(props: pd.DataFrame, ids: Sequence[str], *, n_boot: int, seed: int) -> Groups:
    """Slopes with bootstrap CIs and their groups (:func:`~interp_steer.analysis.slope_groups.slope_intervals`)."""
    from interp_steer.analysis.slope_groups import group_sizes, slope_intervals

    groups = slope_intervals(props, n_boot=n_boot, seed=seed)
    groups = groups.set_index("sample_id").loc[list(ids)].reset_index()
    return Groups(groups, group_sizes(groups["group"]), groups["group"].astype(str).to_numpy(),
                  groups["slope"].to_numpy(dtype=float))


def factor_tests(features: pd.DataFrame, cand, groups: Groups, *, sae: bool, n_boot: int,
                 seed: int) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """``(discovery mask, tables)``: ``factor_tests``, and (with an SAE) ``sae_tests`` / ``sae_top_tokens`` (last
    prompt token) and ``contrast_tests`` / ``contrast_tokens`` (completion contrast); empty frames otherwise."""
    from interp_steer.analysis.candidates import (
        STEERED_FEATURES,
        UNSTEERED_FEATURES,
        discovery_split,
        heldout_factor_tests,
        sae_heldout_tests,
        sae_top_tokens,
    )

    slope, group_arr = groups.slope, groups.labels
    discovery = discovery_split(group_arr, 0.5, seed=seed)
    tables = {"factor_tests": heldout_factor_tests(features, slope, group_arr, UNSTEERED_FEATURES + STEERED_FEATURES,
                                                   discovery=discovery, n_boot=n_boot, seed=seed)}
    tables.update(sae_tests=pd.DataFrame(), sae_top_tokens=pd.DataFrame(), contrast_tests=pd.DataFrame(),
                  contrast_tokens=pd.DataFrame())
    for latents, tests, tokens, signed in ((cand.sae_latents, "sae_tests", "sae_top_tokens", False),
                                           (cand.completion_latents, "contrast_tests", "contrast_tokens", True)):
        if sae and latents is not None and cand.token_latents is not None:
            tested = sae_heldout_tests(latents, slope, group_arr, discovery=discovery, top_k=8, n_boot=n_boot,
                                       seed=seed, **({"signed": True} if signed else {}))
            tables[tests] = tested
            if not tested.empty:
                tables[tokens] = sae_top_tokens(cand.token_latents, cand.token_records, tested["feature"].tolist(), k=5)
    return discovery, tables


def steerability_predictors(features: pd.DataFrame, cand, slope: np.ndarray, ids: Sequence[str], *, n_folds: int,
                            n_boot: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(predictor, out-of-fold predictions)``: the baseline propensity, the unsteered features and (with SAE
    latents) the features plus the top 5 latents per fold (:func:`~interp_steer.analysis.predictor.evaluate_predictors`)."""
    from interp_steer.analysis.candidates import UNSTEERED_FEATURES
    from interp_steer.analysis.predictor import evaluate_predictors, fixed_plus_top_correlated

    design = features[UNSTEERED_FEATURES]
    extra = {}
    if cand.sae_latents is not None:
        extra["unsteered + SAE (top 5 latents per fold)"] = (
            np.hstack([design.to_numpy(dtype=float), cand.sae_latents]),
            fixed_plus_top_correlated(len(UNSTEERED_FEATURES), 5))
    if cand.completion_latents is not None:
        extra["unsteered + SAE completion contrast (top 5 per fold)"] = (
            np.hstack([design.to_numpy(dtype=float), cand.completion_latents]),
            fixed_plus_top_correlated(len(UNSTEERED_FEATURES), 5))
    predictor, oof = evaluate_predictors(
        design, slope, {"baseline propensity": ["baseline_propensity"], "unsteered features": UNSTEERED_FEATURES},
        extra=extra, n_folds=n_folds, n_boot=n_boot, seed=seed)
    oof.insert(0, "sample_id", list(ids))
    return predictor, oof


def patched_samples(groups: pd.DataFrame) -> dict[str, str]:
    """``{"steerable": id, "anti-steerable": id}``: the most steerable and the most anti-steerable sample (by the CI
    groups; by sign if a group is empty)."""
    ranked = groups.sort_values("slope")
    anti_pool = ranked[ranked["group"] == "anti-steerable"]
    steer_pool = ranked[ranked["group"] == "steerable"]
    return {"steerable": (steer_pool if len(steer_pool) else ranked).iloc[-1]["sample_id"],
            "anti-steerable": (anti_pool if len(anti_pool) else ranked).iloc[0]["sample_id"]}


def patch_pair(model, vector, by_id: dict, chosen: dict[str, str], later: list[int], *, multiplier: float,
               head_regions: Sequence[str], batch_size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(patching, regions)``: prefix-cached patching of both chosen samples at the ``later`` layers
    (:func:`~interp_steer.analysis.prefix_patching.prefix_patching`) and its per-region summary."""
    from interp_steer.analysis.prefix_patching import prefix_patching, region_summary

    patching = pd.concat([
        prefix_patching(model, vector, by_id[sid], multiplier=multiplier, layers=later, head_regions=head_regions,
                        batch_size=batch_size).assign(role=role)
        for role, sid in chosen.items()], ignore_index=True)
    return patching, region_summary(patching)


def patching_timing(model, vector, pair, patching: pd.DataFrame, *, n_sites: int, multiplier: float,
                    batch_size: int) -> dict:
    """Speed-up on a subset of the anti-steerable sample's sites: the same sites, full reruns vs the prefix cache."""
    from interp_steer.analysis.patching import PatchSite
    from interp_steer.analysis.prefix_patching import patching_speedup

    anti_rows = patching[(patching["role"] == "anti-steerable") & (patching["component"] != "head")]
    subset = anti_rows.iloc[np.linspace(0, len(anti_rows) - 1, min(n_sites, len(anti_rows))).astype(int)]
    component_hook = {"resid_pre": "hook_resid_pre", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out"}
    sites = [PatchSite(f"blocks.{int(r.layer)}.{component_hook[r.component]}", (int(r.position),)) for r in subset.itertuples()]
    return patching_speedup(model, vector, pair, sites, multiplier=multiplier, batch_size=batch_size)


def completion_effects(model, vector, features: pd.DataFrame, by_id: dict, chosen: dict[str, str], *,
                       multiplier: float) -> dict[str, pd.DataFrame]:
    """``direct`` (per sample), ``tokens`` and ``lens`` (the two chosen samples) and ``top_vector_tokens``."""
    from interp_steer.analysis.completion_effects import (
        completion_logit_lens,
        completion_token_effects,
        vector_top_tokens,
    )

    direct = features[["sample_id", "slope", "group", "metric_clean", "metric_steered", "metric_direct", "total_per_unit",
                       "direct_per_unit"]]
    tokens = pd.concat([completion_token_effects(model, vector, by_id[sid], multiplier=multiplier).assign(role=role)
                        for role, sid in chosen.items()], ignore_index=True)
    lens = pd.concat([completion_logit_lens(model, vector, by_id[sid], multiplier=multiplier).assign(role=role)
                      for role, sid in chosen.items()], ignore_index=True)
    return {"direct": direct, "tokens": tokens, "lens": lens, "top_vector_tokens": vector_top_tokens(model, vector, k=10)}


def case_views(model, vector, case: str, by_id: dict, chosen: dict[str, str], patching: pd.DataFrame, layer: int, *,
               head_region: str, multiplier: float) -> tuple[int, dict[str, str]]:
    """``(view layer, {role: page})``: attention at the layer whose heads carry the most |share| and the projection
    view, one offline HTML page per chosen sample."""
    from interp_steer.analysis.view_data import free_text_attention_views, free_text_projection_view
    from interp_steer.viz.views import draw_views, standalone_page

    heads = patching[(patching["component"] == "head") & (patching["region"] == head_region)]
    view_layer = int(heads.groupby("layer")["share"].apply(lambda s: s.abs().sum()).idxmax()) if not heads.empty else layer + 1
    html = {}
    for role, sid in chosen.items():
        data = free_text_attention_views(model, vector, by_id[sid], view_layer, multiplier=multiplier)
        data += free_text_projection_view(model, vector, by_id[sid], sorted({layer, model.cfg.n_layers - 1}),
                                          multiplier=multiplier)
        html[role] = standalone_page(f"{case}: {role} sample {sid}", draw_views(data))
    return view_layer, html


def case_figures(case: str, tables: dict[str, Any], discovery: np.ndarray, later: list[int], *, multiplier: float,
                 n_test: int, n_folds: int) -> dict[str, Any]:
    """The report's figures by file name (patching, regions, held-out factors, predictor, SAE latents)."""
    from interp_steer.viz.anti_steerable_plots import (
        plot_factor_effects,
        plot_patching_side_by_side,
        plot_predictor,
        plot_region_shares,
    )

    title = f"{case}: share of the steering effect (×{multiplier:g}), layers {later[0]}–{later[-1]}"
    figures = {
        "patching.png": plot_patching_side_by_side(tables["patching"], title=title),
        "patching_regions.png": plot_region_shares(tables["regions"], title=f"{case}: summed share, last prompt token vs completion"),
        "factors_heldout.png": plot_factor_effects(tables["factor_tests"], title=f"{case}: candidate factors, held-out half "
                                                   f"(n = {int((~discovery).sum())})"),
        "predictor.png": plot_predictor(tables["predictor"], title=f"{case}: held-out prediction of steerability (n = {n_test}, "
                                        f"{n_folds}-fold)"),
    }
    sae_tests, contrast_tests = tables["sae_tests"], tables["contrast_tests"]
    if not sae_tests.empty:
        figures["sae_heldout.png"] = plot_factor_effects(sae_tests.assign(feature=[f"latent {f}" for f in sae_tests["feature"]]),
                                                         label="feature", title=f"{case}: SAE latents chosen on the discovery half")
    if not contrast_tests.empty:
        figures["sae_completion_heldout.png"] = plot_factor_effects(
            contrast_tests.assign(feature=[f"latent {f}" for f in contrast_tests["feature"]]), label="feature",
            title=f"{case}: SAE completion contrast (pos − neg), latents chosen on the discovery half")
    return figures

"""The ``why`` job: why are some free-text samples anti-steerable, where the model does steer?

One work unit per *case* (a dataset spec at one layer). A unit extracts a CAA vector from the case's train split
and, on ``n_test`` held-out samples:

1. fits each sample's slope with a bootstrap CI and groups the samples with that margin
   (:mod:`interp_steer.analysis.slope_groups`);
2. measures the candidate explanations (:mod:`interp_steer.analysis.candidates`) and tests each on the held-out
   half of a discovery / held-out split, SAE latents (bundled layer-12 SAE) included;
3. predicts the slope's sign and size from unsteered features only, out-of-fold, against the baseline
   propensity alone and a random score (:mod:`interp_steer.analysis.predictor`);
4. patches the most steerable and the most anti-steerable sample per layer × position and per head, on the
   prefix key/value cache (:mod:`interp_steer.analysis.prefix_patching`), and times that against full-sequence
   reruns on a subset of the sites;
5. reads the vector's direct effect and the logit lens on the completion tokens
   (:mod:`interp_steer.analysis.completion_effects`) and writes circuitsvis views (offline HTML).

Files of a unit go to ``<out>/<case>/`` (``README.md`` last, marking it done); a rerun computes only the missing
cases. ``combine`` writes ``summary.csv`` (group sizes and predictor per case) and ``predictor_pooled.csv`` (AUC
and R² over every finished case's out-of-fold predictions, bootstrap stratified by case).
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from interp_steer.errors import ConfigError
from interp_steer.runs.config import DEFAULT_SAE, JobConfig, device_field, model_field
from interp_steer.runs.runner import Job, UnitFiles

DEFAULT_CASES = ["builtin:sentiment@9", "persona:narcissism@free_text@9", "persona:politically-liberal@free_text@9"]


def parse_case(case: str) -> tuple[str, int]:
    """``"<dataset spec>@<layer>"`` → ``(spec, layer)``; ConfigError naming the case otherwise."""
    spec, _, layer = case.rpartition("@")
    if not spec or not layer.isdigit():
        raise ConfigError(f"case {case!r}: write it as <dataset spec>@<layer>, e.g. builtin:sentiment@9")
    return spec, int(layer)


def case_key(case: str) -> str:
    """A file-name-safe folder name for a case, e.g. ``sentiment_l9`` or ``narcissism_l9``."""
    spec, layer = parse_case(case)
    name = spec.split(":", 1)[-1].replace("@free_text", "")
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name) + f"_l{layer}"


@dataclass
class WhyConfig(JobConfig):
    """Options of a ``why`` run; saved as ``config.json`` beside the reports."""

    RESULT_FIELDS: ClassVar[tuple[str, ...]] = (
        "model", "multipliers", "patch_multiplier", "n_train", "n_test", "test_fraction", "seed", "sae", "n_boot",
        "n_folds", "timing_sites", "patch_layer_step", "head_regions",
    )
    JOB: ClassVar[str] = "why (anti-steerable) report"

    cases: list[str] = field(default_factory=lambda: list(DEFAULT_CASES))
    model: str = model_field()
    multipliers: list[float] = field(default_factory=lambda: [-1.5, -0.75, 0.0, 0.75, 1.5])
    patch_multiplier: float | None = None  # default: the largest |multiplier|
    n_train: int = 40
    n_test: int = 40
    test_fraction: float = 0.5
    seed: int = 0
    sae: str | None = DEFAULT_SAE
    n_boot: int = 1000
    n_folds: int = 5
    timing_sites: int = 96
    patch_layer_step: int = 1
    head_regions: list[str] = field(default_factory=lambda: ["prompt", "completion", "all"])
    batch_size: int = 64
    data_dir: str | None = None
    device: str = device_field()

    def __post_init__(self) -> None:
        self.cases = list(self.cases)
        self.multipliers = [float(m) for m in self.multipliers]
        if not self.cases:
            raise ConfigError("--cases: name at least one case (<dataset spec>@<layer>)")
        keys = [case_key(c) for c in self.cases]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"--cases {self.cases}: two cases map to the same folder")
        for case in self.cases:
            spec, _ = parse_case(case)
            if "free_text" not in spec and not spec.startswith("builtin:"):
                raise ConfigError(f"case {case!r}: the why report needs a free-text dataset (e.g. persona:x@free_text)")
        if len(set(self.multipliers)) < 3 or 0.0 not in self.multipliers:
            raise ConfigError(f"--multipliers {self.multipliers}: need at least three distinct values including 0")
        if self.patch_multiplier is None:
            self.patch_multiplier = max(abs(m) for m in self.multipliers)
        if self.patch_multiplier == 0:
            raise ConfigError("--patch-multiplier must be non-zero")
        if self.n_folds < 2:
            raise ConfigError(f"--n-folds {self.n_folds}: need at least 2 folds for held-out predictions")
        if self.n_test < 2 * self.n_folds:
            raise ConfigError(f"--n-test {self.n_test}: need at least 2 × n_folds ({2 * self.n_folds}) samples")
        if self.n_train < 2:
            raise ConfigError(f"--n-train {self.n_train}: need at least 2 training pairs")
        if self.patch_layer_step < 1:
            raise ConfigError(f"--patch-layer-step {self.patch_layer_step}: must be ≥ 1")
        self.head_regions = list(self.head_regions)
        bad = [r for r in self.head_regions if r not in ("prompt", "completion", "all")]
        if bad or not self.head_regions:
            raise ConfigError(f"--head-regions {self.head_regions}: choose from prompt, completion, all")
        if self.n_boot < 100:
            raise ConfigError(f"--n-boot {self.n_boot}: need at least 100 bootstrap draws")


@dataclass(frozen=True)
class WhyUnit:
    """One case: a dataset spec at one layer."""

    case: str

    @property
    def key(self) -> str:
        return case_key(self.case)


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


class WhyJob(Job):
    """``why`` as a runner job, one unit per case (see the module docs)."""

    config: WhyConfig

    def __init__(self, config: WhyConfig) -> None:
        self.config = config

    def units(self) -> list[WhyUnit]:
        return [WhyUnit(c) for c in self.config.cases]

    def unit_files(self, unit: WhyUnit) -> list[str]:
        return [f"{unit.key}/README.md"]

    def compute(self, unit: WhyUnit, model) -> UnitFiles:
        return [(f"{unit.key}/{name}", payload) for name, payload in why_case_files(self.config, unit.case, model)]

    def combine(self, out_dir: Path) -> dict[str, pd.DataFrame]:
        return combine_why(out_dir, self.config)


def combine_why(out_dir: Path, config: WhyConfig) -> dict[str, pd.DataFrame]:
    """``summary.csv`` and ``predictor_pooled.csv`` over the finished cases (no forward passes)."""
    from interp_steer.analysis.predictor import auc, bootstrap_ci, r_squared
    from interp_steer.runs.files import write_table_atomic

    rows, oofs = [], []
    for case in config.cases:
        folder = out_dir / case_key(case)
        if not (folder / "README.md").exists():
            continue
        groups = pd.read_csv(folder / "groups.csv")
        predictor = pd.read_csv(folder / "predictor.csv")
        sizes = groups["group"].value_counts()
        rec: dict[str, Any] = {"case": case, "n": len(groups), **{g: int(sizes.get(g, 0)) for g in
                                                               ("steerable", "anti-steerable", "insensitive")},
                               "anti_by_sign": int((groups["slope"] < 0).sum()), "mean_slope": float(groups["slope"].mean())}
        for _, p in predictor.iterrows():
            rec[f"{p['predictor']} {p['metric']}"] = round(float(p["value"]), 3)
        rows.append(rec)
        oofs.append(pd.read_csv(folder / "predictions_oof.csv").assign(case=case))
    tables: dict[str, pd.DataFrame] = {}
    if not rows:
        return tables
    summary = pd.DataFrame(rows)
    write_table_atomic(summary, out_dir / "summary.csv")
    tables["summary"] = summary
    oof = pd.concat(oofs, ignore_index=True)
    strata = oof["case"].astype("category").cat.codes.to_numpy() * 2 + oof["anti"].to_numpy()
    pooled = []
    names = sorted({c.rsplit(": ", 1)[0] for c in oof.columns if ": " in c})
    anti = oof["anti"].to_numpy()
    # R² pooled over cases uses slopes standardised within each case (cases differ in scale)
    z = oof.groupby("case")["slope"].transform(lambda s: (s - s.mean()) / s.std(ddof=0)).to_numpy(dtype=float)
    for name in names:
        prob = oof[f"{name}: P(anti)"].to_numpy(dtype=float)
        zpred = ((oof[f"{name}: slope"] - oof.groupby("case")["slope"].transform("mean"))
                 / oof.groupby("case")["slope"].transform(lambda s: s.std(ddof=0))).to_numpy(dtype=float)
        for metric, fn in (("AUC", lambda i, p=prob: auc(p[i], anti[i])), ("R² (within-case z)", lambda i, s=zpred: r_squared(s[i], z[i]))):
            every = np.arange(len(oof))
            low, high, _ = bootstrap_ci(fn, len(oof), n_boot=config.n_boot, seed=config.seed, strata=strata)
            pooled.append({"predictor": name, "metric": metric, "value": fn(every), "ci_low": low, "ci_high": high,
                           "n_samples": len(oof), "n_cases": oof["case"].nunique()})
    pooled_table = pd.DataFrame(pooled)
    write_table_atomic(pooled_table, out_dir / "predictor_pooled.csv")
    tables["predictor_pooled"] = pooled_table
    return tables


def run_why(config: WhyConfig, out_dir: Path, echo=print, *, executor=None, time_budget_s: float | None = None) -> dict:
    """Run the missing cases into ``out_dir`` and combine; returns the combined tables."""
    from interp_steer.data.registry import check_datasets
    from interp_steer.models import load_model
    from interp_steer.runs.runner import preflight, run_job

    out_dir = preflight(config, out_dir)
    check_datasets([parse_case(case)[0] for case in config.cases], config.data_dir)
    model = load_model(config.model, device=config.device) if executor is None else None
    if model is not None and config.sae:
        check_why_sae(config, model)
    report = run_job(WhyJob(config), out_dir, model=model, executor=executor, progress=False, time_budget_s=time_budget_s)
    report.raise_if_failed()
    from interp_steer.report.html import render_markdown_file

    for readme in sorted(out_dir.glob("*/README.md")):  # each case's report also as one self-contained page
        render_markdown_file(readme)
    echo(report.summary_line())
    return report.tables


def check_why_sae(config: WhyConfig, model) -> None:
    """Load ``config.sae`` and check it reads ``model`` (hook and width) before any case runs; a one-line error
    naming ``--sae`` otherwise."""
    from interp_steer.errors import InterpSteerError
    from interp_steer.sae.loading import check_sae_fits, load_sae

    if not config.sae:
        return
    try:
        check_sae_fits(load_sae(config.sae, device=config.device), model)
    except InterpSteerError as exc:
        raise ConfigError(f"--sae {config.sae}: {exc} (model {config.model!r}; pass --sae '' to skip the SAE "
                          f"sections)") from None


def _fmt_ci(value: float, low: float, high: float, digits: int = 2) -> str:
    if not np.isfinite(value):
        return "n/a"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{value:+.{digits}f} (CI n/a)"
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


@torch.no_grad()
def why_case_files(config: WhyConfig, case: str, model) -> list[tuple[str, Any]]:
    """The analysis of one case: ``(file name, payload)`` pairs, ``README.md`` last."""
    from interp_steer.analysis.candidates import (
        STEERED_FEATURES,
        UNSTEERED_FEATURES,
        candidate_features,
        discovery_split,
        heldout_factor_tests,
        sae_heldout_tests,
        sae_top_tokens,
    )
    from interp_steer.analysis.completion_effects import (
        completion_logit_lens,
        completion_token_effects,
        vector_top_tokens,
    )
    from interp_steer.analysis.markdown_tables import markdown_table
    from interp_steer.analysis.patching import PatchSite
    from interp_steer.analysis.predictor import evaluate_predictors, fixed_plus_top_correlated
    from interp_steer.analysis.prefix_patching import patching_speedup, prefix_patching, region_summary
    from interp_steer.analysis.slope_groups import group_sizes, slope_intervals
    from interp_steer.data import DataSplit, load_dataset
    from interp_steer.evaluation.fast_engine import fast_propensities
    from interp_steer.methods.caa import extract_caa
    from interp_steer.viz.anti_steerable_plots import (
        plot_factor_effects,
        plot_patching_side_by_side,
        plot_predictor,
        plot_region_shares,
    )
    from interp_steer.viz.free_text_views import free_text_attention_views, free_text_projection_view
    from interp_steer.viz.views import standalone_page

    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 2)

    spec, layer = parse_case(case)
    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"case {case!r}: layer {layer} out of range for a {model.cfg.n_layers}-layer model")
    mult = float(config.patch_multiplier or 0.0)
    pairs = load_dataset(spec, data_dir=config.data_dir)
    if any(p.kind != "free_text" for p in pairs):
        raise ConfigError(f"case {case!r}: the dataset is not free text; use <spec>@free_text")
    train, test = DataSplit(config.test_fraction, config.seed, config.n_train, config.n_test).split(pairs)
    if len(test) < 2 * config.n_folds:
        raise ConfigError(f"case {case!r}: only {len(test)} held-out samples")
    vector = extract_caa(model, train, [layer], progress=False, dataset=spec)
    hook = vector.hook_names[0]
    props = fast_propensities(model, test, vector, config.multipliers, progress=False, vector_name=f"caa:{spec}")
    lap("vector + propensities")

    groups = slope_intervals(props, n_boot=config.n_boot, seed=config.seed)
    ids = [p.id for p in test]
    groups = groups.set_index("sample_id").loc[ids].reset_index()
    sizes = group_sizes(groups["group"])
    group_arr = groups["group"].astype(str).to_numpy()
    slope = groups["slope"].to_numpy(dtype=float)

    sae, sae_hook = None, None
    if config.sae:
        from interp_steer.sae.loading import check_sae_fits, load_sae

        sae = load_sae(config.sae, device=config.device)
        sae_hook = check_sae_fits(sae, model)
    cand = candidate_features(model, vector, test, props, multiplier=mult, sae=sae, sae_hook_name=sae_hook)
    features = cand.table.merge(groups, on="sample_id")
    lap("candidate features")

    discovery = discovery_split(group_arr, 0.5, seed=config.seed)
    factor_tests = heldout_factor_tests(features, slope, group_arr, UNSTEERED_FEATURES + STEERED_FEATURES,
                                        discovery=discovery, n_boot=config.n_boot, seed=config.seed)
    sae_tests = pd.DataFrame()
    top_tokens = pd.DataFrame()
    if sae is not None and cand.sae_latents is not None and cand.token_latents is not None:
        sae_tests = sae_heldout_tests(cand.sae_latents, slope, group_arr, discovery=discovery, top_k=8,
                                      n_boot=config.n_boot, seed=config.seed)
        if not sae_tests.empty:
            top_tokens = sae_top_tokens(cand.token_latents, cand.token_records, sae_tests["feature"].tolist(), k=5)
    contrast_tests, contrast_tokens = pd.DataFrame(), pd.DataFrame()
    if sae is not None and cand.completion_latents is not None and cand.token_latents is not None:
        contrast_tests = sae_heldout_tests(cand.completion_latents, slope, group_arr, discovery=discovery, top_k=8,
                                           n_boot=config.n_boot, seed=config.seed, signed=True)
        if not contrast_tests.empty:
            contrast_tokens = sae_top_tokens(cand.token_latents, cand.token_records,
                                             contrast_tests["feature"].tolist(), k=5)

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
        extra=extra, n_folds=config.n_folds, n_boot=config.n_boot, seed=config.seed)
    oof.insert(0, "sample_id", ids)
    lap("factor tests + predictor")

    # patching: the most steerable and the most anti-steerable sample (by the CI groups; by sign if a group is empty)
    ranked = groups.sort_values("slope")
    anti_pool = ranked[ranked["group"] == "anti-steerable"]
    steer_pool = ranked[ranked["group"] == "steerable"]
    anti_id = (anti_pool if len(anti_pool) else ranked).iloc[0]["sample_id"]
    steer_id = (steer_pool if len(steer_pool) else ranked).iloc[-1]["sample_id"]
    by_id = {p.id: p for p in test}
    later = list(range(layer + 1, model.cfg.n_layers, config.patch_layer_step))
    patching = pd.concat([
        prefix_patching(model, vector, by_id[sid], multiplier=mult, layers=later, head_regions=config.head_regions,
                        batch_size=config.batch_size).assign(role=role)
        for role, sid in (("steerable", steer_id), ("anti-steerable", anti_id))], ignore_index=True)
    regions = region_summary(patching)
    lap("patching")
    # speed-up on a subset of the anti-steerable sample's sites: the same sites, full reruns vs the prefix cache
    anti_rows = patching[(patching["role"] == "anti-steerable") & (patching["component"] != "head")]
    subset = anti_rows.iloc[np.linspace(0, len(anti_rows) - 1, min(config.timing_sites, len(anti_rows))).astype(int)]
    component_hook = {"resid_pre": "hook_resid_pre", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out"}
    sites = [PatchSite(f"blocks.{int(r.layer)}.{component_hook[r.component]}", (int(r.position),)) for r in subset.itertuples()]
    speed = patching_speedup(model, vector, by_id[anti_id], sites, multiplier=mult, batch_size=config.batch_size)
    lap("speed-up timing")

    direct = features[["sample_id", "slope", "group", "metric_clean", "metric_steered", "metric_direct", "total_per_unit",
                       "direct_per_unit"]]
    tokens = pd.concat([completion_token_effects(model, vector, by_id[sid], multiplier=mult).assign(role=role)
                        for role, sid in (("steerable", steer_id), ("anti-steerable", anti_id))], ignore_index=True)
    lens = pd.concat([completion_logit_lens(model, vector, by_id[sid], multiplier=mult).assign(role=role)
                      for role, sid in (("steerable", steer_id), ("anti-steerable", anti_id))], ignore_index=True)
    top_vector_tokens = vector_top_tokens(model, vector, k=10)
    lap("direct effects + logit lens")

    heads = patching[(patching["component"] == "head") & (patching["region"] == config.head_regions[-1])]
    view_layer = int(heads.groupby("layer")["share"].apply(lambda s: s.abs().sum()).idxmax()) if not heads.empty else layer + 1
    html = {}
    for role, sid in (("steerable", steer_id), ("anti-steerable", anti_id)):
        views = free_text_attention_views(model, vector, by_id[sid], view_layer, multiplier=mult)
        views += free_text_projection_view(model, vector, by_id[sid], sorted({layer, model.cfg.n_layers - 1}), multiplier=mult)
        html[role] = standalone_page(f"{case}: {role} sample {sid}", views)
    lap("views")

    title = f"{case}: share of the steering effect (×{mult:g}), layers {later[0]}–{later[-1]}"
    figures = {
        "patching.png": plot_patching_side_by_side(patching, title=title),
        "patching_regions.png": plot_region_shares(regions, title=f"{case}: summed share, last prompt token vs completion"),
        "factors_heldout.png": plot_factor_effects(factor_tests, title=f"{case}: candidate factors, held-out half "
                                                   f"(n = {int((~discovery).sum())})"),
        "predictor.png": plot_predictor(predictor, title=f"{case}: held-out prediction of steerability (n = {len(test)}, "
                                        f"{config.n_folds}-fold)"),
    }
    if not sae_tests.empty:
        figures["sae_heldout.png"] = plot_factor_effects(sae_tests.assign(feature=[f"latent {f}" for f in sae_tests["feature"]]),
                                                         label="feature", title=f"{case}: SAE latents chosen on the discovery half")
    if not contrast_tests.empty:
        figures["sae_completion_heldout.png"] = plot_factor_effects(
            contrast_tests.assign(feature=[f"latent {f}" for f in contrast_tests["feature"]]), label="feature",
            title=f"{case}: SAE completion contrast (pos − neg), latents chosen on the discovery half")

    summary = {"case": case, "spec": spec, "layer": layer, "hook": hook, "n_train": len(train), "n_test": len(test),
               "vector_norm": float(vector.directions[hook].norm()), "groups": sizes, "rule": groups.attrs.get("rule", ""),
               "steerable_sample": str(steer_id), "anti_sample": str(anti_id), "view_layer": view_layer,
               "speedup": speed, "timings_s": timings}
    readme = _readme(config, case, summary, groups, factor_tests, (sae_tests, top_tokens), (contrast_tests, contrast_tokens),
                     predictor, patching, regions, direct, top_vector_tokens, lens, markdown_table, _fmt_ci)
    files: list[tuple[str, Any]] = [
        ("propensity.csv", props), ("groups.csv", groups), ("features.csv", features),
        ("factor_tests.csv", factor_tests), ("sae_features.csv", sae_tests), ("sae_top_tokens.csv", top_tokens),
        ("sae_completion_features.csv", contrast_tests), ("sae_completion_top_tokens.csv", contrast_tokens),
        ("predictor.csv", predictor), ("predictions_oof.csv", oof), ("patching.csv", patching),
        ("patching_regions.csv", regions), ("direct_effect.csv", direct), ("completion_tokens.csv", tokens),
        ("logit_lens.csv", lens), ("vector_top_tokens.csv", top_vector_tokens),
    ]
    files += [(name, _png(fig)) for name, fig in figures.items()]
    files += [(f"views_{role}.html", page) for role, page in html.items()]
    files += [("summary.json", summary), ("README.md", readme)]
    return files


def _sae_section(tests: pd.DataFrame, top_tokens: pd.DataFrame, intro: str, figure: str, markdown_table, fmt) -> list[str]:
    """README lines for one table of SAE latents tested on the held-out half (or why there is none)."""
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


def _readme(config, case, summary, groups, factor_tests, sae_last, sae_contrast, predictor, patching, regions, direct,
            top_vector_tokens, lens, markdown_table, fmt) -> str:
    """The case's README.md (every number from the tables beside it)."""
    sizes = summary["groups"]
    n = summary["n_test"]
    held = factor_tests[factor_tests["held"]]
    factor_view = pd.DataFrame({
        "factor": factor_tests["factor"],
        "discovery ρ": factor_tests["discovery_rho"].round(2),
        "held-out ρ [95% CI]": [fmt(r, lo, hi) for r, lo, hi in zip(factor_tests["heldout_rho"], factor_tests["heldout_rho_low"], factor_tests["heldout_rho_high"])],
        "held-out d [95% CI]": [fmt(d, lo, hi) for d, lo, hi in zip(factor_tests["heldout_d"], factor_tests["heldout_d_low"], factor_tests["heldout_d_high"])],
        "held": factor_tests["held"],
    })
    pred_view = pd.DataFrame({
        "predictor": predictor["predictor"], "metric": predictor["metric"],
        "held-out value [95% CI]": [fmt(v, lo, hi) for v, lo, hi in zip(predictor["value"], predictor["ci_low"], predictor["ci_high"])],
        "minus baseline [95% CI]": [fmt(v, lo, hi) for v, lo, hi in zip(predictor["vs_baseline"], predictor["vs_ci_low"], predictor["vs_ci_high"])],
    })
    beats = predictor[(predictor["predictor"] != "baseline propensity") & (predictor["predictor"] != "random") & (predictor["vs_ci_low"] > 0)]
    base_auc = predictor[(predictor["predictor"] == "baseline propensity") & (predictor["metric"] == "AUC")].iloc[0]
    speed = summary["speedup"]
    first = {r: patching[patching["role"] == r].iloc[0] for r in ("steerable", "anti-steerable")}
    by_region = regions[regions["region"].isin(["prompt", "completion"])].pivot_table(
        index=["role", "component"], columns="region", values="share", aggfunc="sum").reset_index()
    direct_means = direct.groupby("group", observed=True)[["slope", "total_per_unit", "direct_per_unit"]].agg(["mean", "count"])
    direct_means.columns = [f"{a} {b}" for a, b in direct_means.columns]
    direct_means = direct_means.reset_index()
    lens_view = lens[lens["condition"] == "steered − clean"].pivot_table(index="layer", columns="role", values="metric").reset_index()
    lens_view = lens_view[lens_view["layer"] % 3 == 2]
    lines = [
        f"# Why are some samples anti-steerable? — `{case}`", "",
        f"Model `{config.model}`; CAA vector at `{summary['hook']}` (norm {summary['vector_norm']:.1f}) from {summary['n_train']} "
        f"training pairs; {n} held-out samples; multipliers {config.multipliers}; patching, direct effects and views "
        f"at ×{config.patch_multiplier:g}. Metric: summed log-prob of the positive completion − that of the negative "
        "one (nats). Written by `interp-steer why` (`interp_steer.runs.why`).", "",
        "## Groups", "",
        f"steerable **{sizes['steerable']}**, anti-steerable **{sizes['anti-steerable']}**, insensitive "
        f"**{sizes['insensitive']}** of {n} (by sign alone: {int((groups['slope'] < 0).sum())} with a negative slope).", "",
        f"Rule: {summary['rule']}.", "",
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
        f"## SAE latents (`{config.sae}`): last prompt token, clean run", "",
    ]
    lines += _sae_section(sae_last[0], sae_last[1], "Latents at the last prompt token (where steering starts; constant when every "
                          "sample shares one prompt). `sae_features.csv`, `sae_top_tokens.csv`.", "sae_heldout.png",
                          markdown_table, fmt)
    lines += [f"## SAE latents (`{config.sae}`): completion contrast (positive − negative completion, clean run)", ""]
    lines += _sae_section(sae_contrast[0], sae_contrast[1], "Per sample, the mean latent activation over the positive completion's tokens "
                          "minus that over the negative completion's (\"active\" = non-zero). "
                          "`sae_completion_features.csv`, `sae_completion_top_tokens.csv`.", "sae_completion_heldout.png",
                          markdown_table, fmt)
    lines += [
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
        "## Activation patching: a steerable and an anti-steerable sample", "",
    ]
    for role in ("steerable", "anti-steerable"):
        row = first[role]
        slope = float(groups.set_index("sample_id").loc[row["sample_id"], "slope"])
        lines.append(f"- **{role}** `{row['sample_id']}` (slope {slope:+.2f} nats/unit): metric clean {row['metric_clean']:+.2f} → "
                     f"steered {row['metric_steered']:+.2f}.")
    lines += [
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
    return "\n".join(lines)

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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp_steer.errors import ConfigError
from interp_steer.runs.analysis_configs import DEFAULT_CASES, WhyConfig, case_key, parse_case  # noqa: F401
from interp_steer.runs.runner import Job, UnitFiles


@dataclass(frozen=True)
class WhyUnit:
    """One case: a dataset spec at one layer."""

    case: str

    @property
    def key(self) -> str:
        return case_key(self.case)


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
    from interp_steer.analysis.predictor import auc, r_squared
    from interp_steer.runs.files import write_table_atomic
    from interp_steer.stats.intervals import metric_interval

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
            _, low, high = metric_interval(fn, len(oof), strata=strata, n_boot=config.n_boot, seed=config.seed)
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


@torch.no_grad()
def why_case_files(config: WhyConfig, case: str, model) -> list[tuple[str, Any]]:
    """The analysis of one case: ``(file name, payload)`` pairs, ``README.md`` last (the steps are in
    :mod:`interp_steer.runs.why_steps`)."""
    from interp_steer.analysis.candidates import candidate_features
    from interp_steer.report.figures import figure_png
    from interp_steer.report.why import why_readme
    from interp_steer.runs import why_steps as steps

    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 2)

    spec, layer, train, test, vector, props = _case_vector(config, case, model)
    hook = vector.hook_names[0]
    lap("vector + propensities")
    ids, mult, by_id = [p.id for p in test], float(config.patch_multiplier or 0.0), {p.id: p for p in test}
    groups = steps.case_groups(props, ids, n_boot=config.n_boot, seed=config.seed)
    sae, sae_hook = _case_sae(config, model)
    cand = candidate_features(model, vector, test, props, multiplier=mult, sae=sae, sae_hook_name=sae_hook)
    features = cand.table.merge(groups.table, on="sample_id")
    lap("candidate features")
    discovery, tables = steps.factor_tests(features, cand, groups, sae=sae is not None, n_boot=config.n_boot,
                                           seed=config.seed)
    tables["predictor"], oof = steps.steerability_predictors(features, cand, groups.slope, ids, n_folds=config.n_folds,
                                                             n_boot=config.n_boot, seed=config.seed)
    lap("factor tests + predictor")
    chosen = steps.patched_samples(groups.table)
    later = list(range(layer + 1, model.cfg.n_layers, config.patch_layer_step))
    tables["patching"], tables["regions"] = steps.patch_pair(model, vector, by_id, chosen, later, multiplier=mult,
                                                             head_regions=config.head_regions, batch_size=config.batch_size)
    lap("patching")
    speed = steps.patching_timing(model, vector, by_id[chosen["anti-steerable"]], tables["patching"],
                                  n_sites=config.timing_sites, multiplier=mult, batch_size=config.batch_size)
    lap("speed-up timing")
    tables.update(steps.completion_effects(model, vector, features, by_id, chosen, multiplier=mult))
    lap("direct effects + logit lens")
    view_layer, html = steps.case_views(model, vector, case, by_id, chosen, tables["patching"], layer,
                                        head_region=config.head_regions[-1], multiplier=mult)
    lap("views")
    figures = steps.case_figures(case, tables, discovery, later, multiplier=mult, n_test=len(test), n_folds=config.n_folds)
    summary = {"case": case, "spec": spec, "layer": layer, "hook": hook, "n_train": len(train), "n_test": len(test),
               "vector_norm": float(vector.directions[hook].norm()), "groups": groups.sizes,
               "rule": groups.table.attrs.get("rule", ""), "steerable_sample": str(chosen["steerable"]),
               "anti_sample": str(chosen["anti-steerable"]), "view_layer": view_layer, "speedup": speed,
               "timings_s": timings}
    readme = why_readme(config, case, summary, {"groups": groups.table, **tables})
    t = tables
    files: list[tuple[str, Any]] = [
        ("propensity.csv", props), ("groups.csv", groups.table), ("features.csv", features),
        ("factor_tests.csv", t["factor_tests"]), ("sae_features.csv", t["sae_tests"]),
        ("sae_top_tokens.csv", t["sae_top_tokens"]), ("sae_completion_features.csv", t["contrast_tests"]),
        ("sae_completion_top_tokens.csv", t["contrast_tokens"]), ("predictor.csv", t["predictor"]),
        ("predictions_oof.csv", oof), ("patching.csv", t["patching"]), ("patching_regions.csv", t["regions"]),
        ("direct_effect.csv", t["direct"]), ("completion_tokens.csv", t["tokens"]), ("logit_lens.csv", t["lens"]),
        ("vector_top_tokens.csv", t["top_vector_tokens"]),
    ]
    files += [(name, figure_png(fig, dpi=100)) for name, fig in figures.items()]
    files += [(f"views_{role}.html", page) for role, page in html.items()]
    files += [("summary.json", summary), ("README.md", readme)]
    return files


def _case_vector(config: WhyConfig, case: str, model):
    """``(spec, layer, train, test, vector, propensities)``: the case's split, its CAA vector at the case's layer and
    the held-out propensities (fast engine); one-line ConfigErrors for a bad layer, A/B data or too few samples."""
    from interp_steer.data import DataSplit, load_dataset
    from interp_steer.evaluation.fast_engine import fast_propensities
    from interp_steer.methods.caa import extract_caa

    spec, layer = parse_case(case)
    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"case {case!r}: layer {layer} out of range for a {model.cfg.n_layers}-layer model")
    pairs = load_dataset(spec, data_dir=config.data_dir)
    if any(p.kind != "free_text" for p in pairs):
        raise ConfigError(f"case {case!r}: the dataset is not free text; use <spec>@free_text")
    train, test = DataSplit(config.test_fraction, config.seed, config.n_train, config.n_test).split(pairs)
    if len(test) < 2 * config.n_folds:
        raise ConfigError(f"case {case!r}: only {len(test)} held-out samples")
    vector = extract_caa(model, train, [layer], progress=False, dataset=spec)
    props = fast_propensities(model, test, vector, config.multipliers, progress=False, vector_name=f"caa:{spec}")
    return spec, layer, train, test, vector, props


def _case_sae(config: WhyConfig, model):
    """``(sae, hook name)`` of ``config.sae``, or ``(None, None)`` without one."""
    if not config.sae:
        return None, None
    from interp_steer.sae.loading import check_sae_fits, load_sae

    sae = load_sae(config.sae, device=config.device)
    return sae, check_sae_fits(sae, model)

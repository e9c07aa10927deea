"""Tables, figures and the markdown report of ``bipo_vs_caa.py`` (from the cached unit tables and vectors)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

METHODS = ("caa", "bipo", "bipo@caa_norm")
LABELS = {"caa": "CAA", "bipo": "BiPO (own norm)", "bipo@caa_norm": "BiPO scaled to CAA norm"}
UNITS = {"free_text": "log p(pos) − log p(neg), nats", "ab": "logit(pos letter) − logit(neg letter)"}


def short(dataset: str) -> str:
    """``persona:narcissism@free_text`` → ``narcissism``; A/B sets get an ``(A/B)`` suffix."""
    name = dataset.split(":", 1)[-1]
    if name.endswith("@free_text"):
        return name[: -len("@free_text")]
    return name if dataset.startswith("builtin:") else f"{name} (A/B)"


def sem(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def ratio(bipo: float, caa: float, floor: float = 0.25) -> float:
    """BiPO / CAA mean slope, only where CAA itself steers (mean slope > ``floor``), else NaN."""
    return bipo / caa if caa > floor else float("nan")


# ------------------------------------------------------------------------------------------------ tables
def summary_table(propensities: pd.DataFrame, per_sample: pd.DataFrame) -> pd.DataFrame:
    from interp_steer.evaluation import summarize_steerability

    summary = summarize_steerability(per_sample, by=["dataset", "kind", "vector"])
    lo, hi = propensities["multiplier"].min(), propensities["multiplier"].max()
    means = propensities.groupby(["dataset", "vector", "multiplier"])["propensity"].mean().unstack("multiplier")
    norms = propensities.groupby(["dataset", "vector"])["vector_norm"].first()
    summary["vector_norm"] = [norms[(d, v)] for d, v in zip(summary["dataset"], summary["vector"])]
    for m, col in ((lo, f"prop_at_{lo:g}"), (0.0, "prop_at_0"), (hi, f"prop_at_{hi:g}")):
        if m in means.columns:
            summary[col] = [means.loc[(d, v), m] for d, v in zip(summary["dataset"], summary["vector"])]
    # side effect: change of the mean log-prob of the two completions (nats, summed over tokens) vs multiplier 0
    avg = propensities.assign(avg=(propensities["pos_logprob"] + propensities["neg_logprob"]) / 2)
    avg = avg.groupby(["dataset", "vector", "multiplier"])["avg"].mean().unstack("multiplier")
    for m in (lo, hi):
        if 0.0 in avg.columns:
            summary[f"logprob_shift_at_{m:g}"] = [avg.loc[(d, v), m] - avg.loc[(d, v), 0.0]
                                                  for d, v in zip(summary["dataset"], summary["vector"])]
    order = {m: i for i, m in enumerate(METHODS)}
    kinds = {"free_text": 0, "ab": 1}
    summary = summary.sort_values(["kind", "dataset", "vector"],
                                  key=lambda s: s.map(order) if s.name == "vector" else s.map(kinds) if s.name == "kind" else s)
    return summary.rename(columns={"vector": "method"}).reset_index(drop=True)


def comparison_table(per_sample: pd.DataFrame, vectors: dict, propensities: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset: cosine, norms, mean slopes, equal-norm ratio, paired per-sample difference, BiPO loss."""
    from interp_steer.steering import SteeringVector

    rows = []
    for dataset, group in per_sample.groupby("dataset", sort=False):
        spec = propensities.loc[propensities["dataset"] == dataset, "spec"].iloc[0]
        caa, bipo = SteeringVector.load(vectors[(spec, "caa")]), SteeringVector.load(vectors[(spec, "bipo")])
        slopes = group.pivot_table(index="sample_id", columns="vector", values="slope")
        diff = slopes["bipo@caa_norm"] - slopes["caa"]
        extra = bipo.provenance.extra
        losses = extra.get("loss_history", [])
        seconds = propensities.loc[(propensities["dataset"] == dataset) & (propensities["method"] == "bipo"), "train_seconds"].iloc[0]
        rows.append({
            "dataset": dataset, "kind": group["kind"].iloc[0], "n_test": len(slopes),
            "cosine_bipo_caa": next(iter(bipo.cosine(caa).values())),
            "caa_norm": next(iter(caa.norms().values())), "bipo_norm": next(iter(bipo.norms().values())),
            "caa_mean_slope": slopes["caa"].mean(), "bipo_mean_slope": slopes["bipo"].mean(),
            "bipo_eqnorm_mean_slope": slopes["bipo@caa_norm"].mean(),
            "eqnorm_ratio": ratio(slopes["bipo@caa_norm"].mean(), slopes["caa"].mean()),
            "eqnorm_diff_mean": diff.mean(), "eqnorm_diff_sem": sem(diff),
            "share_bipo_steeper": float((diff > 0).mean()),
            "bipo_loss_first": losses[0] if losses else float("nan"),
            "bipo_loss_last5": float(np.mean(losses[-5:])) if losses else float("nan"),
            "bipo_steps": extra.get("steps"), "bipo_train_s": seconds,
            "bipo_s_per_step": seconds / max(1, extra.get("steps") or 1),
        })
    return pd.DataFrame(rows)


def curve_table(propensities: pd.DataFrame) -> pd.DataFrame:
    grouped = propensities.groupby(["dataset", "kind", "vector", "multiplier"])["propensity"]
    return grouped.agg(mean="mean", sem=sem, n="size").reset_index().rename(columns={"vector": "method"})


# ------------------------------------------------------------------------------------------------ figures
def curves_figure(curves: pd.DataFrame, layer: int):
    datasets = list(dict.fromkeys(curves.sort_values("kind", ascending=False)["dataset"]))
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.4 * nrows), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        part = curves[curves["dataset"] == dataset]
        for i, method in enumerate(METHODS):
            line = part[part["method"] == method].sort_values("multiplier")
            ax.plot(line["multiplier"], line["mean"], marker="o", ms=3, color=f"C{i}", label=LABELS[method],
                    ls="--" if method == "bipo" else "-")
            ax.fill_between(line["multiplier"], line["mean"] - line["sem"], line["mean"] + line["sem"], color=f"C{i}", alpha=0.15)
        ax.axhline(0, color="grey", lw=0.7, ls=":")
        ax.set_title(short(dataset), fontsize=9)
        ax.set_xlabel("steering multiplier")
        ax.set_ylabel(UNITS[part["kind"].iloc[0]], fontsize=7)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Mean held-out propensity ± SEM vs multiplier, layer {layer} (steering from the last prompt token on)", fontsize=10)
    fig.tight_layout()
    return fig


def bars_figure(summary: pd.DataFrame):
    datasets = list(dict.fromkeys(summary["dataset"]))
    x = np.arange(len(datasets))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    for i, method in enumerate(METHODS):
        part = summary[summary["method"] == method].set_index("dataset").reindex(datasets)
        left.bar(x + (i - 1) * 0.27, part["mean_slope"], 0.27, color=f"C{i}", label=LABELS[method])
        right.bar(x + (i - 1) * 0.27, 100 * part["anti_steerable_fraction"], 0.27, color=f"C{i}", label=LABELS[method])
    for ax in (left, right):
        ax.set_xticks(x, [short(d) for d in datasets], rotation=25, ha="right", fontsize=8)
        ax.set_xlabel("dataset")
    left.axhline(0, color="grey", lw=0.7)
    left.set_ylabel("mean steerability (Δ propensity per unit multiplier)")
    left.set_title("Mean per-sample steerability (A/B: logits, free text: nats)")
    right.set_ylabel("anti-steerable samples (%)")
    right.set_title("Share of samples with negative slope")
    left.legend(fontsize=7)
    fig.tight_layout()
    return fig


def scatter_figure(per_sample: pd.DataFrame):
    free = per_sample[per_sample["kind"] == "free_text"]
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for i, (dataset, group) in enumerate(free.groupby("dataset", sort=False)):
        slopes = group.pivot_table(index="sample_id", columns="vector", values="slope")
        ax.scatter(slopes["caa"], slopes["bipo@caa_norm"], s=14, alpha=0.7, color=f"C{i}", label=short(dataset))
    lo, hi = float(np.nanmin(free["slope"])), float(np.nanmax(free["slope"]))
    ax.plot([lo, hi], [lo, hi], color="grey", ls=":", lw=1, label="y = x")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("CAA slope (nats per unit multiplier)")
    ax.set_ylabel("BiPO at CAA norm slope (nats per unit multiplier)")
    ax.set_title("Per-sample steerability at equal norm (free text)")
    ax.legend(fontsize=7)
    return fig


def loss_figure(vectors: dict):
    from interp_steer.steering import SteeringVector

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, path in enumerate(path for (_, method), path in vectors.items() if method == "bipo"):
        provenance = SteeringVector.load(path).provenance
        losses = provenance.extra.get("loss_history", [])
        ax.plot(np.arange(1, len(losses) + 1), losses, color=f"C{i}", label=short(provenance.dataset))
    ax.axhline(math.log(2), color="grey", ls=":", lw=1, label="log 2 (zero vector)")
    ax.set_xlabel("BiPO optimiser step")
    ax.set_ylabel("training loss (per-pair DPO loss, nats)")
    ax.set_title("BiPO training loss (random direction ±1 per micro-batch)")
    ax.legend(fontsize=7)
    return fig


# ------------------------------------------------------------------------------------------------ report
def all_positions_section(report, allpos: pd.DataFrame, propensities: pd.DataFrame, args) -> None:
    from interp_steer.evaluation import steerability, summarize_steerability
    from interp_steer.viz.plots import plot_propensity_curves

    mults = sorted(float(m) for m in allpos["multiplier"].unique())
    main = propensities[propensities["dataset"].isin(allpos["dataset"]) & propensities["vector"].isin(allpos["vector"])]
    main = main[main["multiplier"].isin(mults)] if set(mults) <= set(main["multiplier"]) else main
    zero = allpos[allpos["multiplier"] == 0].merge(main[main["multiplier"] == 0], on=["sample_id", "vector"], suffixes=("", "_main"))
    check = float((zero["propensity"] - zero["propensity_main"]).abs().max()) if len(zero) else float("nan")
    both = pd.concat([main[allpos.columns.intersection(main.columns)].assign(positions="from_last_prompt"), allpos])
    per = steerability(both, keys=["dataset", "positions", "vector", "sample_id"])
    table = summarize_steerability(per, by=["dataset", "positions", "vector"])
    curves = both.groupby(["dataset", "positions", "vector", "multiplier"])["propensity"].mean().unstack("multiplier").reset_index()
    curves.columns = [c if isinstance(c, str) else f"mean_prop_at_{c:g}" for c in curves.columns]
    table = table.merge(curves, on=["dataset", "positions", "vector"]).rename(columns={"vector": "method"})
    report.lines += ["## Check: steering at every position (BiPO's training convention)", ""]
    report.text(f"BiPO optimises the vector added at **every** position (system prompt, user turn and response); the "
                f"evaluation above adds it from the last prompt token on. Here the same test pairs are scored with the "
                f"vector added at every position (`steer(..., positions=\"all\")` + `pair_logprobs`) at multipliers "
                f"{mults}, for CAA and for BiPO at the CAA norm; the rows `from_last_prompt` are the main evaluation at "
                f"the same multipliers. Sanity check: at multiplier 0 the two scorers agree to {check:.1e} nats.")
    means = table.pivot_table(index=["dataset", "positions"], columns="method", values="mean_slope")
    if {"caa", "bipo@caa_norm"} <= set(means.columns):
        report.text("Equal-norm ratio of mean slopes (BiPO / CAA) under each convention: " + "; ".join(
            f"{short(d)} {p}: {row['bipo@caa_norm']:.2f} / {row['caa']:.2f} = {row['bipo@caa_norm'] / row['caa']:.2f}"
            for (d, p), row in means.iterrows()) + ".")
    report.table(table[["dataset", "positions", "method", "n_samples", "mean_slope", "median_slope",
                        "anti_steerable_fraction", *[c for c in table.columns if c.startswith("mean_prop_at_")]]],
                 "all_positions_check")
    labelled = both.assign(dataset=lambda f: f["dataset"].map(short) + " · " + method_label(f["vector"]) + ", " + f["positions"])
    report.figure(plot_propensity_curves(labelled, n_individual=2, title="Every-position vs from-last-prompt steering "
                                         f"({', '.join(short(d) for d in allpos['dataset'].unique())})"),
                  "all_positions_curves", "Mean ± std propensity under the two steering conventions (thin: single samples)")


def method_label(series: pd.Series) -> pd.Series:
    return series.map({"caa": "CAA", "bipo": "BiPO", "bipo@caa_norm": "BiPO@|CAA|"})


def headline(comparison: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    lines = []
    free = comparison[comparison["kind"] == "free_text"]
    if len(free):
        wins = int((free["bipo_eqnorm_mean_slope"] > free["caa_mean_slope"]).sum())
        lines.append(
            f"- **Equal norm, free text**: BiPO scaled to the CAA norm has the larger mean slope on **{wins} of {len(free)}** "
            f"datasets (ratio BiPO/CAA {free['eqnorm_ratio'].min():.2f} … {free['eqnorm_ratio'].max():.2f}, mean "
            f"{free['eqnorm_ratio'].mean():.2f}); share of test samples where BiPO's slope is steeper: "
            f"{free['share_bipo_steeper'].min():.2f} … {free['share_bipo_steeper'].max():.2f}.")
        lines.append(
            f"- **Own norms**: BiPO's mean slope is larger on {int((free['bipo_mean_slope'] > free['caa_mean_slope']).sum())} "
            f"of {len(free)} datasets; |BiPO| = {free['bipo_norm'].min():.1f} … {free['bipo_norm'].max():.1f} vs |CAA| = "
            f"{free['caa_norm'].min():.1f} … {free['caa_norm'].max():.1f}; mean slope BiPO "
            f"{free['bipo_mean_slope'].min():.2f} … {free['bipo_mean_slope'].max():.2f} vs CAA "
            f"{free['caa_mean_slope'].min():.2f} … {free['caa_mean_slope'].max():.2f} nats/unit.")
        lines.append(f"- **Cosine(BiPO, CAA)**: {free['cosine_bipo_caa'].min():.2f} … {free['cosine_bipo_caa'].max():.2f} (free text).")
        anti = summary[summary["kind"] == "free_text"].groupby("method")["anti_steerable_fraction"].mean()
        lines.append("- **Anti-steerable fraction** (mean over free-text datasets): "
                     + ", ".join(f"{LABELS[m]} {100 * anti[m]:.0f}%" for m in METHODS if m in anti) + ".")
        shifts = [c for c in summary.columns if c.startswith("logprob_shift_at_")]
        if shifts:
            mean_shift = summary[summary["kind"] == "free_text"].groupby("method")[shifts].mean()
            lines.append("- **Side effect** (change of the mean log-prob of the two completions vs multiplier 0, nats, mean over "
                         "free-text datasets, at " + " / ".join(c.rsplit("_", 1)[1] for c in shifts) + "): "
                         + "; ".join(f"{LABELS[m]} " + " / ".join(f"{mean_shift.loc[m, c]:+.1f}" for c in shifts)
                                     for m in METHODS if m in mean_shift.index) + ".")
    for row in comparison[comparison["kind"] == "ab"].itertuples():
        lines.append(f"- **A/B ({short(row.dataset)})**: mean slope CAA {row.caa_mean_slope:+.3f}, BiPO {row.bipo_mean_slope:+.3f}, "
                     f"BiPO at CAA norm {row.bipo_eqnorm_mean_slope:+.3f} logits/unit; cosine {row.cosine_bipo_caa:.2f}.")
    return lines


def write_report(report, propensities, allpos, vectors, layer, layer_source, engine_name, args, extra) -> Path:
    from interp_steer.evaluation import steerability
    from interp_steer.viz.plots import plot_steerability_distribution

    per_sample = steerability(propensities)
    summary = summary_table(propensities, per_sample)
    comparison = comparison_table(per_sample, vectors, propensities)
    curves = curve_table(propensities)
    report.save_csv(per_sample, "per_sample")
    report.save_csv(curves, "curves")
    report.save_csv(propensities.drop(columns=["spec"]), "propensities")
    n_train = int(propensities["n_train"].max())
    report.text(
        f"CAA and BiPO vectors at **layer {layer}** ({layer_source}, `blocks.{layer}.hook_resid_post`), both from the same "
        f"{n_train} train pairs per dataset (`train_test_split(test_fraction=0.5, seed={args.seed})`, first n of each half), "
        f"evaluated on the same {args.n_test} held-out test pairs at multipliers {args.multipliers}. Three vectors per "
        "dataset: CAA, BiPO at its own (trained) norm, and BiPO rescaled to the CAA norm (`SteeringVector.normalize`).",
        "**Conventions.** *Evaluation* (`" + engine_name + "`) adds `m·v` from the **last prompt token on** (prompt "
        "tokens before it are unsteered); free-text propensity = log p(positive completion) − log p(negative completion) "
        "in nats, A/B propensity = logit difference of the answer letters. *CAA* reads the mean over completion tokens "
        "(free text) or the answer letter (A/B). *BiPO* trains with the vector added at **every** position (prompt and "
        f"response): AdamW, lr {args.lr:g}, β {args.beta:g}, {args.steps} steps of {args.batch_size}×{args.grad_accumulation} "
        f"pairs, linear warm-up {args.steps // 10} steps then cosine decay (lr {args.lr:g} instead of the paper's 5e-4, "
        "which barely moves the vector in a short CPU run). Steerability = per-sample least-squares slope of propensity "
        "on the multiplier; anti-steerable = slope < 0. The every-position check at the end scores BiPO's own convention.",
    )
    report.lines += ["## Headline", ""]
    report.text("\n".join(headline(comparison, summary)))
    report.table(comparison, "comparison", caption="Per dataset: cosine and norms of the two vectors, mean slopes, "
                 "equal-norm ratio (only where CAA's mean slope > 0.25) and paired per-sample difference (BiPO at CAA norm − CAA, "
                 "mean ± SEM), BiPO training loss (first step, mean of the last 5) and training time of the invocation that "
                 "trained it (incl. the reference pass).")
    report.lines += ["## Steerability per (dataset, method)", ""]
    report.table(summary.drop(columns=["sign_flip_fraction"]), "summary", caption="`prop_at_*`: mean propensity at that "
                 "multiplier; `logprob_shift_at_*`: mean change (vs multiplier 0) of the average summed log-prob of the two "
                 "completions, a side-effect measure (how much the vector lowers the likelihood of both answers; free text only).")
    report.figure(bars_figure(summary), "summary_bars", "Mean steerability and anti-steerable share per dataset and method")
    report.figure(curves_figure(curves, layer), "propensity_curves",
                  "Propensity curves of the three vectors per dataset (same test pairs, same multipliers)")
    report.figure(scatter_figure(per_sample), "slopes_equal_norm",
                  "Per-sample slopes at equal norm: CAA (x) vs BiPO rescaled to the CAA norm (y)")
    labelled = per_sample.assign(dataset=lambda f: f["dataset"].map(short) + " · " + method_label(f["vector"]))
    report.figure(plot_steerability_distribution(labelled, title=f"Per-sample steerability, layer {layer}"),
                  "steerability_distribution", "Per-sample steerability per (dataset, method), sorted by median")
    report.figure(loss_figure(vectors), "bipo_loss", "BiPO training loss per step (log 2 = loss of the zero vector)")
    if allpos is not None and len(allpos):
        report.save_csv(allpos, "all_positions_propensities")
        all_positions_section(report, allpos, propensities, args)
    report.lines += ["## Caveats", ""]
    report.text("- Small sizes (see Settings): a few dozen train/test pairs per dataset, a short BiPO run on CPU with a "
                "learning rate far above the paper's; a longer or better-tuned BiPO run may change the ranking.",
                "- Slopes depend on the vector norm; the equal-norm rows are the like-for-like comparison, and the raw "
                "BiPO norm is whatever the short run reached.",
                "- BiPO's training objective is, up to the steering positions, the free-text propensity itself (log-prob "
                "margin of the positive over the negative completion, on train pairs of the same framing), while CAA only "
                "averages activation differences; so the equal-norm rows measure per-norm efficiency on the quantity BiPO "
                "optimises. `logprob_shift_at_*` shows what that efficiency costs in likelihood of both completions.",
                "- A/B slopes on this model are tiny and letter-dominated (see `analyses/results/spurious_factors`); "
                "the A/B row only shows whether BiPO changes that.")
    timings = extra.pop("unit seconds", {})
    if timings:
        report.text(f"Compute time of the units (each measured when it was computed, `units/timings.json`): "
                    f"{sum(timings.values()) / 60:.1f} min in all (" + ", ".join(
                        f"{k.split('__')[0]} {short(k.split('__')[1])} "
                        f"{v:.0f} s" for k, v in timings.items()) + "), plus model loading.")
    report.settings(args, {"layer": f"{layer} ({layer_source})", "engine": engine_name, **extra})
    path = report.write()
    print(path)
    return path

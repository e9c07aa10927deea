"""Norm-relative layer scan: does the A/B framing steer once the CAA vector is as long as the residual stream?

The layer scan (``layer_scan.py``) uses raw CAA vectors. With letter-balanced training pairs the A/B vectors are
short (the answer-letter component cancels), so multipliers of ±1.5 barely move anything. Here every layer's CAA
direction is rescaled to the **mean residual-stream norm at that layer** (measured at the read position of the
same train pairs, :func:`interp_steer.methods.caa.activation_norms`), so a multiplier ``m`` adds a vector
``m`` times as long as a typical residual. The same is done for the free-text framing of the same datasets, so
both framings are compared on one scale.

    python analyses/norm_relative_scan.py                      # defaults below
    python analyses/norm_relative_scan.py --framings ab --layers 3:30:3
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Report, base_parser, load_embedded_model, parse_int_list, read_unit, split_pairs, write_unit,
)

DATASETS = ("narcissism", "agreeableness", "desire-for-acquiring-power", "risk-seeking")
RELATIVE_MULTIPLIERS = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)


def run_unit(model, name: str, framing: str, args) -> pd.DataFrame:
    from interp_steer.evaluation import steerability
    from interp_steer.evaluation.fast_engine import fast_propensities
    from interp_steer.methods.caa import activation_norms, collect_contrastive_activations, mean_difference, norm_relative
    from interp_steer.steering import SteeringVector

    spec = f"persona:{name}" + ("@free_text" if framing == "free_text" else "")
    train, test = split_pairs(spec, args.n_train, args.n_test, args.seed)
    acts = collect_contrastive_activations(model, train, args.layers, progress=False)
    raw = SteeringVector(mean_difference(acts))
    norms = activation_norms(acts)
    scaled = norm_relative(raw, norms)
    vectors = {layer: scaled.select(layer) for layer in args.layers}
    propensities = fast_propensities(model, test, vectors, args.multipliers, progress=False, vector_name=f"caa-rel:{spec}")
    per_sample = steerability(propensities)
    hook = per_sample["layer"].map(lambda layer: f"blocks.{layer}.hook_resid_post")
    return per_sample.assign(dataset=name, framing=framing, resid_norm=hook.map(norms),
                             raw_vector_norm=hook.map(raw.norms()))


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], n_train=30, n_test=30, multipliers=RELATIVE_MULTIPLIERS)
    parser.add_argument("--layers", type=parse_int_list, default=list(range(3, 30, 3)), help="e.g. 3:30:3 or 6,12")
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=list(DATASETS), help="persona names")
    parser.add_argument("--framings", type=lambda s: s.split(","), default=["ab", "free_text"], help="ab,free_text")
    args = parser.parse_args()
    report = Report("norm_relative_scan", "Norm-relative layer scan: A/B vs free text on one scale (SmolLM2-135M)", args.out)
    torch.set_num_threads(args.threads)
    model, frames = None, []
    layers_key = "-".join(str(x) for x in args.layers)
    mults_key = "_".join(f"{m:g}" for m in args.multipliers)
    for framing in args.framings:
        for name in args.datasets:
            key = f"{framing}__{name}__tr{args.n_train}_te{args.n_test}_s{args.seed}__L{layers_key}__m{mults_key}"
            frame = read_unit(report.out_dir, key)
            if frame is None:
                t0 = time.time()
                model = model if model is not None else load_embedded_model(args.threads)
                frame = run_unit(model, name, framing, args)
                write_unit(report.out_dir, key, frame)
                print(f"[norm_relative_scan] {framing} {name}: {time.time() - t0:.0f}s", flush=True)
            frames.append(frame)
    write_report(report, pd.concat(frames, ignore_index=True), args)


def write_report(report: Report, per_sample: pd.DataFrame, args) -> None:
    from interp_steer.viz.plots import plot_layer_scan

    report.save_csv(per_sample, "per_sample")
    per_sample = per_sample.assign(is_A=per_sample["is_A"].astype("boolean"))
    by_dataset = per_sample.groupby(["framing", "dataset", "layer"]).agg(
        mean_slope=("slope", "mean"), anti_steerable_fraction=("slope", lambda s: float((s < 0).mean())),
        resid_norm=("resid_norm", "first"), raw_vector_norm=("raw_vector_norm", "first"),
    ).reset_index()
    ab = per_sample[per_sample["framing"] == "ab"]
    if not ab.empty:
        balanced = ab.groupby(["dataset", "layer", "is_A"])["slope"].mean().groupby(["dataset", "layer"]).mean()
        by_dataset["letter_balanced_slope"] = [
            balanced.get((d, lay), float("nan")) if f == "ab" else float("nan")
            for f, d, lay in zip(by_dataset["framing"], by_dataset["dataset"], by_dataset["layer"])
        ]
    by_layer = by_dataset.groupby(["framing", "layer"]).agg(
        n_datasets=("dataset", "size"), mean_slope=("mean_slope", "mean"), min_dataset_slope=("mean_slope", "min"),
        max_dataset_slope=("mean_slope", "max"), anti_steerable_fraction=("anti_steerable_fraction", "mean"),
        mean_resid_norm=("resid_norm", "mean"), raw_to_resid_norm=("raw_vector_norm", "mean"),
        **({"letter_balanced_slope": ("letter_balanced_slope", "mean")} if not ab.empty else {}),
    ).reset_index()
    by_layer["raw_to_resid_norm"] = by_layer["raw_to_resid_norm"] / by_layer["mean_resid_norm"]

    report.text(
        f"Persona datasets {', '.join(args.datasets)}; {args.n_train} train / {args.n_test} test pairs each "
        "(letter-balanced prefixes of the stratified split); CAA direction per layer rescaled to the mean residual "
        f"norm at that layer; multipliers {args.multipliers} (fractions of that norm). Slope units: A/B — logit "
        "difference of the answer letters per unit relative multiplier; free text — log-prob difference of the "
        "completions (nats) per unit. `raw_to_resid_norm`: length of the raw CAA vector as a fraction of the "
        "residual norm (how far the raw scan's multipliers reach)."
    )
    report.lines += ["## Headline", ""]
    for framing, part in by_layer.groupby("framing"):
        best = part.loc[part["mean_slope"].idxmax()]
        report.text(
            f"- **{framing}**: best layer {int(best['layer'])} with mean slope {best['mean_slope']:.3f} per unit "
            f"(datasets {best['min_dataset_slope']:.3f} … {best['max_dataset_slope']:.3f}), "
            f"{100 * best['anti_steerable_fraction']:.0f}% anti-steerable; raw CAA vector = "
            f"{100 * part['raw_to_resid_norm'].min():.1f}–{100 * part['raw_to_resid_norm'].max():.1f}% of the residual norm."
        )
    report.table(by_layer, "summary_by_layer", caption="Per framing and layer, averaged over datasets.")
    for framing in by_dataset["framing"].unique():
        part = by_dataset[by_dataset["framing"] == framing]
        summary = part[["dataset", "layer", "mean_slope", "anti_steerable_fraction"]]
        unit = "logit diff" if framing == "ab" else "log-prob diff"
        report.figure(plot_layer_scan(summary, title=f"Norm-relative scan, {framing} ({unit} per unit of residual norm)"),
                      f"norm_relative_{framing}", f"{framing}: mean steerability (solid) and anti-steerable % (dashed) "
                      "per dataset vs layer, multipliers in units of the residual norm")
    report.table(by_dataset, "summary_by_dataset", caption="Per framing, dataset and layer.")
    report.settings(args, {"engine": "fast_propensities", "vector": "CAA, rescaled to the mean residual norm per layer"})
    print(report.write())


if __name__ == "__main__":
    main()

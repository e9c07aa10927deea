"""In-distribution vs out-of-distribution steerability (Tan et al. 2024, Sec. 6) on MWE persona datasets.

Prompt variants (``interp_steer.evaluation.variants``): BASE, SYS_POS / SYS_NEG (persona sentence for / against
the behaviour as system prompt), USER_POS / USER_NEG (the sentence prepended to the user turn). A CAA vector is
extracted per variant from the train pairs rendered in that variant, at one layer.

* **ID** steerability: the BASE vector on BASE prompts; **OOD**: the BASE vector on variant-Y prompts.
* **relative steerability** of vector X on variant Y: ``slope(X→Y) / |slope(Y→Y)|`` (reported where Y's own
  slope > 0.25, Tan et al.'s rule).

The free-text framing is used because it is the one in which the embedded model steers (A/B slopes are ≈ 0).
By default only the grid cells these quantities need are evaluated — the BASE row (BASE vector on every variant)
and the diagonal (each variant's vector on its own prompts), 9 of the 25 cells — because free-text scoring
(full log-softmax over 49k tokens at each completion token) is the expensive part on a CPU. ``--full-grid``
evaluates all 25 cells with ``cross_variant_steerability``.

Persona sentences: ``persona_sentences(train)`` on the free-text *train* pairs (no test statement is quoted): the
highest-confidence train statement the behaviour agrees with (POS) and disagrees with (NEG), the same rule and
sentences as for the A/B framing of those statements (see ``interp_steer.evaluation.variants``).

    python analyses/id_ood.py                       # layer from layer_scan.py
    python analyses/id_ood.py --full-grid --n-train 50 --n-test 50 --multipliers=-1.5,-1,-0.5,0,0.5,1,1.5
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Report, base_parser, chosen_layer, load_embedded_model, propensity_engine, read_unit, split_pairs, write_unit,
)

DATASETS = (
    "narcissism",
    "desire-for-acquiring-power",
    "believes-AIs-are-not-an-existential-threat-to-humanity",
    "agreeableness",
    "politically-liberal",
    "subscribes-to-Christianity",
    "risk-seeking",
)
KEYS = ["dataset", "train_variant", "variant", "layer", "hook_name", "vector", "sample_id"]


def run_dataset(model, engine, engine_name: str, name: str, layer: int, args) -> pd.DataFrame:
    """Per-sample steerability of the evaluated (train variant, eval variant) cells of one dataset."""
    from interp_steer.evaluation import VARIANTS, apply_variant, cross_variant_steerability, persona_sentences, steerability
    from interp_steer.methods.caa import extract_caa

    spec = f"persona:{name}@free_text"
    train, test = split_pairs(spec, args.n_train, args.n_test, args.seed)
    sentences = persona_sentences(train)  # what cross_variant_steerability derives itself; kept for the report
    extra = {"batch_size": None} if engine_name == "fast_propensities" else {}
    if args.full_grid:
        result = cross_variant_steerability(model, train, test, layer, args.multipliers,
                                            engine=lambda *a, batch_size=None, **k: engine(*a, **k, **extra))
        per_sample = result["per_sample"]
    else:
        vectors = {v: extract_caa(model, apply_variant(train, v, sentences), [layer], progress=False) for v in VARIANTS}
        # the BASE vector on all variants in one engine call (ids made unique per variant), then the diagonal
        evals = {"BASE": [p.with_(id=f"{p.id}|{v}") for v in VARIANTS for p in apply_variant(test, v, sentences)]}
        evals.update({v: apply_variant(test, v, sentences) for v in VARIANTS if v != "BASE"})
        frames = [engine(model, pairs, vectors[tv], args.multipliers, progress=False, vector_name=f"caa:{tv}",
                         **extra).assign(train_variant=tv) for tv, pairs in evals.items()]
        frames = [f.assign(sample_id=f["sample_id"].str.split("|").str[0]) for f in frames]
        per_sample = steerability(pd.concat(frames, ignore_index=True), keys=KEYS)
    return per_sample.assign(behaviour=name, sentence_pos=sentences.positive, sentence_neg=sentences.negative)


def id_ood_table(per_sample: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, eval variant ≠ BASE): ID (BASE→BASE), OOD (BASE→Y), own (Y→Y), relative (BASE→Y / |Y→Y|)."""
    from interp_steer.evaluation.variants import MIN_OWN_SLOPE

    means = per_sample.groupby(["behaviour", "train_variant", "variant"])["slope"].mean()
    rows = []
    for name in per_sample["behaviour"].unique():
        id_slope = means.get((name, "BASE", "BASE"), np.nan)
        for variant in sorted(per_sample.loc[per_sample["variant"] != "BASE", "variant"].unique()):
            ood, own = means.get((name, "BASE", variant), np.nan), means.get((name, variant, variant), np.nan)
            rel = ood / abs(own) if np.isfinite(own) and own > MIN_OWN_SLOPE else np.nan
            rows.append({"dataset": name, "variant": variant, "id_steerability": id_slope, "ood_steerability": ood,
                         "own_variant_steerability": own, "relative_steerability": rel})
    return pd.DataFrame(rows)


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], n_train=12, n_test=6, multipliers=(-1.5, 0.0, 1.5))
    parser.add_argument("--layer", type=int, default=None, help="steering layer (default: layer_scan.py's choice)")
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=list(DATASETS), help="persona names, in order")
    parser.add_argument("--min-datasets", type=int, default=5, help="always run at least this many datasets")
    parser.add_argument("--time-budget-min", type=float, default=13.0, help="start no dataset beyond min-datasets after this")
    parser.add_argument("--full-grid", action="store_true", help="evaluate all 25 (vector, variant) cells")
    args = parser.parse_args()
    layer, layer_source = chosen_layer(args.layer)
    report = Report("id_ood", f"ID vs OOD steerability across prompt variants at layer {layer} (SmolLM2-135M, free text)", args.out)
    model = None  # loaded only when a unit has to be computed
    torch.set_num_threads(args.threads)
    engine, engine_name = propensity_engine()
    deadline, frames, seconds = time.time() + 60 * args.time_budget_min, [], []
    for i, name in enumerate(args.datasets):
        key = f"L{layer}__{name}__tr{args.n_train}_te{args.n_test}_s{args.seed}{'_full' if args.full_grid else ''}"
        frame = read_unit(report.out_dir, key)
        if frame is None:
            if i >= args.min_datasets and time.time() + (max(seconds) if seconds else 0) > deadline:
                break
            t0 = time.time()
            model = model if model is not None else load_embedded_model(args.threads)
            frame = run_dataset(model, engine, engine_name, name, layer, args)
            write_unit(report.out_dir, key, frame)
            seconds.append(time.time() - t0)
            print(f"[id_ood] {name}: {seconds[-1]:.0f}s", flush=True)
        frames.append(frame)
    write_report(report, pd.concat(frames, ignore_index=True), layer, layer_source, args, engine_name)


def write_report(report: Report, per_sample: pd.DataFrame, layer: int, layer_source: str, args, engine_name: str) -> None:
    from interp_steer.evaluation import relative_steerability, steerability_matrix
    from interp_steer.viz.plots import plot_id_vs_ood
    import matplotlib.pyplot as plt

    report.save_csv(per_sample.drop(columns=["sentence_pos", "sentence_neg"]), "per_sample")
    names = list(per_sample["behaviour"].unique())
    matrices = {n: steerability_matrix(per_sample[per_sample["behaviour"] == n]) for n in names}
    mean_matrix = sum(matrices.values()) / len(matrices)
    relatives = pd.concat([relative_steerability(m).assign(dataset=n) for n, m in matrices.items()])
    mean_relative = relatives.drop(columns="dataset").groupby(level=0).mean().reindex(mean_matrix.index)
    table = id_ood_table(per_sample)

    report.text(
        f"CAA vectors at **layer {layer}** ({layer_source}), free-text framing of MWE persona statements (the "
        "framing in which this model steers; its A/B slopes are ≈ 0, see the layer scan), "
        f"{args.n_train} train / {args.n_test} test pairs per dataset, multipliers {args.multipliers}. "
        f"Datasets ({len(names)}): " + ", ".join(f"`{n}`" for n in names) + ".",
        ("All 25 (vector, variant) cells evaluated (`cross_variant_steerability`)." if args.full_grid else
         "Cells evaluated: the BASE vector on all five variants and each variant's own vector on its own prompts "
         "(9 of 25; `--full-grid` for all); other matrix cells are –."),
    )
    ood = table.groupby("variant")[["id_steerability", "ood_steerability", "relative_steerability"]].mean().reset_index()
    ratio = (table["ood_steerability"] / table["id_steerability"]).median()
    rho = table["id_steerability"].corr(table["ood_steerability"], method="spearman") if len(table) > 2 else np.nan
    report.lines += ["## Headline", ""]
    report.text(f"- Mean ID steerability (BASE vector on BASE prompts): {table.groupby('dataset')['id_steerability'].first().mean():.2f} nats/unit.",
                f"- Mean OOD steerability (BASE vector on the four persona variants): {table['ood_steerability'].mean():.2f}; "
                f"median OOD/ID ratio {ratio:.2f}; Spearman ρ(ID, OOD) over the {len(table)} (dataset, variant) points = {rho:.2f}.",
                f"- Mean relative steerability BASE→variant: {table['relative_steerability'].mean():.2f} "
                f"({table['relative_steerability'].notna().sum()} of {len(table)} cells pass the own-slope > 0.25 rule).")
    report.table(ood, "id_ood_by_variant", caption="Per eval variant, mean over datasets:")
    report.lines += ["## Steerability matrix (mean over datasets; rows = vector's train variant, columns = eval variant)", ""]
    report.table(mean_matrix.reset_index(), "matrix_mean")
    report.table(mean_relative.reset_index(), "relative_mean", caption="Relative steerability slope(X→Y) / |slope(Y→Y)| (mean over datasets):")
    report.figure(matrix_figure(mean_matrix, mean_relative, plt), "matrix", "Steerability and relative steerability matrices (mean over datasets)")
    table["label"] = table["dataset"].str.slice(0, 18) + ":" + table["variant"]
    report.figure(plot_id_vs_ood(table, label="label", title=f"ID (BASE→BASE) vs OOD (BASE→variant), layer {layer}"),
                  "id_vs_ood", "Each point: one dataset × eval variant; x = BASE vector on BASE prompts, y = BASE vector on the variant's prompts")
    report.table(table.drop(columns="label"), "id_ood_per_dataset", caption="Per dataset and variant:")
    sentences = per_sample.groupby("behaviour")[["sentence_pos", "sentence_neg"]].first().reset_index()
    report.table(sentences, "persona_sentences", caption="Persona sentences used (from train statements):")
    report.settings(args, {"layer": f"{layer} ({layer_source})", "engine": engine_name})
    print(report.write())


def matrix_figure(matrix: pd.DataFrame, relative: pd.DataFrame, plt):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, data, title in ((axes[0], matrix, "mean steerability (nats / unit)"), (axes[1], relative, "relative steerability")):
        values = data.to_numpy(dtype=float)
        image = ax.imshow(values, cmap="viridis")
        ax.set_xticks(range(len(data.columns)), data.columns, rotation=30, fontsize=8)
        ax.set_yticks(range(len(data.index)), data.index, fontsize=8)
        ax.set_xlabel("eval variant"); ax.set_ylabel("vector's train variant"); ax.set_title(title)
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()

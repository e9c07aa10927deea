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
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, base_parser, chosen_layer, study_executor  # noqa: E402

from interp_steer.runs.id_ood import IdOodConfig  # noqa: E402

DATASETS = (
    "narcissism",
    "desire-for-acquiring-power",
    "believes-AIs-are-not-an-existential-threat-to-humanity",
    "agreeableness",
    "politically-liberal",
    "subscribes-to-Christianity",
    "risk-seeking",
)
def main() -> None:
    from interp_steer.runs.id_ood import run_id_ood

    parser = base_parser(__doc__.split("\n")[0], IdOodConfig)
    parser.add_argument("--layer", type=int, default=None, help="steering layer (default: layer_scan.py's choice)")
    parser.add_argument("--datasets", type=lambda s: s.split(","), default=list(DATASETS), help="persona names, in order")
    parser.add_argument("--min-datasets", type=int, default=5, help="always run at least this many datasets")
    parser.add_argument("--time-budget-min", type=float, default=13.0, help="start no dataset beyond min-datasets after this")
    parser.add_argument("--full-grid", action="store_true", help="evaluate all 25 (vector, variant) cells")
    args = parser.parse_args()
    layer, layer_source = chosen_layer(args.layer)
    report = Report("id_ood", f"ID vs OOD steerability across prompt variants at layer {layer} ({args.model}, free text)", args.out)
    settings = dict(model=args.model, layer=layer, multipliers=args.multipliers, n_train=args.n_train,
                    n_test=args.n_test, seed=args.seed, full_grid=args.full_grid)
    executor = study_executor(args)
    # the first --min-datasets always run; the rest only while the time budget lasts (one job, two passes)
    first = run_id_ood(IdOodConfig(datasets=args.datasets[: args.min_datasets], **settings), report.out_dir,
                       executor=executor)
    first.raise_if_failed()
    run = run_id_ood(IdOodConfig(datasets=args.datasets, **settings), report.out_dir, executor=executor,
                     time_budget_s=max(0.0, 60 * args.time_budget_min - first.seconds))
    print(f"[id_ood] {run.summary_line()}", flush=True)
    run.raise_if_failed()
    write_report(report, run.tables["per_sample"], layer, layer_source, args, "fast_propensities")


def write_report(report: Report, per_sample: pd.DataFrame, layer: int, layer_source: str, args, engine_name: str) -> None:
    import matplotlib.pyplot as plt

    from interp_steer.evaluation import relative_steerability, steerability_matrix
    from interp_steer.runs.id_ood import id_ood_table
    from interp_steer.viz.plots import plot_id_vs_ood

    report.save_csv(per_sample.drop(columns=["sentence_pos", "sentence_neg"]), "per_sample")
    names = list(per_sample["behaviour"].unique())
    matrices = {n: steerability_matrix(per_sample[per_sample["behaviour"] == n]) for n in names}
    mean_matrix = sum(matrices.values()) / len(matrices)
    relatives = pd.concat([relative_steerability(m).assign(dataset=n) for n, m in matrices.items()])
    mean_relative = relatives.drop(columns="dataset").groupby(level=0).mean().reindex(mean_matrix.index)
    table = id_ood_table(per_sample)  # interp_steer.runs.id_ood (also written as id_ood.csv)

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

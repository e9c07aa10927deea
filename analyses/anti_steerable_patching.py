"""Intervention (c) of issue 26: patch the steering out of (or into) the non-matching completion's own positions
and re-measure s_neg, s_pos and the slope, for anti-steerable and steerable samples.

Samples (fixed before any patch was run): datasets of the held-out half of the battery's seed-0 dataset split whose
CAA vectors are cached, in the study's unit order, the first ``--n-datasets``; in each, every anti-steerable test
sample (study slope < 0) and as many steerable ones drawn at random (numpy seed 0; all if fewer).
Resumable: one CSV per dataset under OUT_DIR/interventions/patching/.

    python analyses/anti_steerable_patching.py STUDY_DIR OUT_DIR [--n-datasets 6]
    python analyses/anti_steerable_patching.py STUDY_DIR OUT_DIR --summarize
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def choose(study: pd.DataFrame, test: list, seed: int = 0) -> list:
    """Every anti-steerable test pair and as many random steerable ones (seeded), in test order."""
    import numpy as np

    slope = study.set_index("sample_id")["slope"]
    anti = [p for p in test if slope[p.id] < 0]
    steerable = [p for p in test if slope[p.id] > 0]
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(len(steerable), size=min(len(anti), len(steerable)), replace=False).tolist())
    picked = {p.id for p in anti} | {p.id for i, p in enumerate(steerable) if i in keep}
    return [p for p in test if p.id in picked]


def main(argv: list[str] | None = None) -> int:
    import torch

    from interp_steer.analysis.battery import study_split
    from interp_steer.analysis.battery_heldout import held_out_vector_datasets
    from interp_steer.analysis.completion_patching import completion_patch_slopes, standard_patches
    from interp_steer.config.keys import dataset_stem
    from interp_steer.models import load_model
    from interp_steer.steering.vector import Provenance, SteeringVector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n-datasets", type=int, default=6)
    parser.add_argument("--summarize", action="store_true", help="only summarise the finished datasets")
    args = parser.parse_args(argv)
    out = args.out_dir / "interventions" / "patching"
    if args.summarize:
        print(summarize(out).to_string(index=False))
        return 0
    cfg, top, vectors, chosen = held_out_vector_datasets(args.study_dir, args.n_datasets)
    model = load_model(top["model"])
    out.mkdir(parents=True, exist_ok=True)
    layer = cfg["layer"]
    for spec in chosen:
        key = dataset_stem(spec)
        target = out / f"{key}.csv"
        if target.exists():
            continue
        direction = torch.load(vectors / f"{key}.pt", weights_only=True).float()
        vector = SteeringVector({f"blocks.{layer}.hook_resid_post": direction},
                                Provenance(model=model.cfg.model_name, method="caa", layers=[layer]))
        _, _, test = study_split(spec, cfg["n_train"], cfg["n_test"], cfg["test_fraction"], cfg["seed"])
        study = pd.read_csv(args.study_dir / "steerability" / "units" / f"{key}.per_sample.csv",
                            usecols=["sample_id", "slope"])
        pairs = choose(study, test)
        table = completion_patch_slopes(model, vector, pairs, standard_patches(layer), cfg["multipliers"])
        table = table.merge(study.rename(columns={"slope": "study_slope"}), on="sample_id", validate="many_to_one")
        table.assign(dataset=spec, layer=layer).to_csv(target, index=False)
        print(f"{spec}: {len(pairs)} samples", flush=True)
    return 0


def summarize(folder: Path) -> pd.DataFrame:
    """:func:`~interp_steer.analysis.completion_patching.patch_effects` over every finished dataset
    (dataset-clustered CIs), written to ``folder/summary.csv``; the largest gap of the unpatched slope to the
    study's slope is printed as a check."""
    from interp_steer.analysis.completion_patching import combine_sides, patch_effects

    files = sorted(folder.glob("*.csv"))
    files = [f for f in files if f.name != "summary.csv"]
    if not files:
        return pd.DataFrame()
    table = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    none = table[table["patch"] == "none"]
    print(f"max |unpatched slope − study slope| = {(none['slope'] - none['study_slope']).abs().max():.2e}")
    table = combine_sides(table, "pos_tokens_unsteered_at_layer", "neg_tokens_unsteered_at_layer",
                          "both_tokens_unsteered_at_layer")  # derived: steering left at the last prompt token only
    summary = patch_effects(table)
    summary.to_csv(folder / "summary.csv", index=False)
    write_markdown(summary, table, folder / "patching.md")
    return summary


def write_markdown(summary: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """The summary as a short markdown page (n, means, dataset-clustered 95% CIs)."""
    from interp_steer.analysis.markdown_tables import markdown_table

    def ci(row, key: str) -> str:
        return f"{row[key]:+.2f} [{row[key + '_low']:+.2f}, {row[key + '_high']:+.2f}]"

    rows = [{"patch": r["patch"], "group": r["group"], "n (datasets)": f"{r['n']} ({r['n_datasets']})",
             "s_neg before → after": f"{r['s_neg_before']:.2f} → {r['s_neg_after']:.2f}",
             "Δ s_neg [95% CI]": ci(r, "s_neg_change"), "share of s_neg removed": ci(r, "s_neg_removed"),
             "Δ s_pos": ci(r, "s_pos_change"),
             "slope before → after": f"{r['slope_before']:.2f} → {r['slope_after']:.2f}",
             "slope sign flipped [95% CI]": ci(r, "sign_flipped")} for _, r in summary.iterrows()]
    none = table[table["patch"] == "none"]
    gap = float((none["slope"] - none["study_slope"]).abs().max())
    text = [
        "# Intervention (c): patching the non-matching completion's positions — "
        f"{none['dataset'].nunique()} held-out datasets, {len(none)} samples",
        "",
        "Written by `analyses/anti_steerable_patching.py --summarize`. Slopes in nats per unit multiplier over the "
        "study's multipliers; CIs from 2000 bootstrap resamples of datasets (few datasets: wide). `sign flipped`: "
        "anti-steerable → steerable, or steerable → anti-steerable. Patches: steering removed at the non-matching "
        "completion's own tokens at the steering layer (`neg_tokens_unsteered_at_layer`) or at every layer from it "
        "on (`…_all_layers`); the same for the matching completion (`pos_…`, control); both (derived: steering left "
        "at the last prompt token only); and the reverse, only the non-matching completion's tokens steered "
        "(`only_neg_tokens_steered`: the matching completion is unsteered there, so its slope sign is not a "
        "steerability verdict). `share of s_neg removed` = Σ(s_neg before − after) / Σ s_neg before: meaningful "
        "where the group's s_neg is clearly positive (anti-steerable); for steerable samples s_neg ≈ 0 and the ratio "
        "is unstable.",
        "",
        f"Check: unpatched slopes equal the study's per-sample slopes to {gap:.1e}.",
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
    ]
    path.write_text("\n".join(text), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

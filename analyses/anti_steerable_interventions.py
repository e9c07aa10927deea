"""Pilot of intervention (b) of issue 26: project the CAA vector off its top-k logit-lens token directions (k = 100,
the battery's pre-registered k, not tuned) and, as a control, off a random k-dimensional subspace; re-measure the
slopes on datasets of the held-out half (seed-0 dataset split) whose vectors are cached.

    python analyses/anti_steerable_interventions.py STUDY_DIR OUT_DIR [--n-datasets 3] [--k 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def main(argv: list[str] | None = None) -> int:
    import torch

    from interp_steer.analysis.battery import study_split
    from interp_steer.analysis.battery_heldout import held_out_vector_datasets
    from interp_steer.analysis.interventions import project_off_logit_lens, project_off_random, steered_slopes
    from interp_steer.config.keys import dataset_stem
    from interp_steer.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n-datasets", type=int, default=3)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--summarize", action="store_true", help="only summarise the finished datasets")
    parser.add_argument("--negation", type=int, default=0, metavar="N",
                        help="instead: intervention (a) on the first N test samples (unit order, cached vectors) "
                             "whose non-matching statement has a removable negation")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.out_dir / "interventions").to_string(index=False))
        print(summarize_negation(args.out_dir / "interventions").to_string(index=False))
        return 0
    cfg, top, vectors, chosen = held_out_vector_datasets(args.study_dir, args.n_datasets)
    model = load_model(top["model"])
    out = args.out_dir / "interventions"
    out.mkdir(parents=True, exist_ok=True)
    if args.negation:  # every free-text dataset in unit order, as the SmolLM2 pilot ran it
        from interp_steer.analysis.battery import free_text_specs

        negation_edits(model, args.study_dir, free_text_specs(args.study_dir), vectors, cfg, args.negation, out)
        return 0
    for spec in chosen:
        key = dataset_stem(spec)
        target = out / f"projection_k{args.k}_{key}.csv"
        if target.exists():
            continue
        direction = torch.load(vectors / f"{key}.pt", weights_only=True)
        _, _, test = study_split(spec, cfg["n_train"], cfg["n_test"], cfg["test_fraction"], cfg["seed"])
        study = pd.read_csv(args.study_dir / "steerability" / "units" / f"{key}.per_sample.csv",
                            usecols=["sample_id", "slope"])
        for name, projected in (("logit_lens", project_off_logit_lens(model, direction, args.k)),
                                ("random", project_off_random(direction, args.k, seed=0))):
            slopes = steered_slopes(model, test, projected, cfg["layer"], cfg["multipliers"])
            study = study.merge(slopes.rename(columns={"slope": f"slope_{name}"}), on="sample_id")
            study[f"norm_ratio_{name}"] = float(projected.norm() / direction.norm())
            print(f"{spec} {name}: done", flush=True)
        study.assign(dataset=spec, k=args.k).to_csv(target, index=False)
    return 0


def negation_edits(model, study_dir: Path, specs: list[str], vectors: Path, cfg: dict, limit: int, out: Path) -> None:
    """Intervention (a): drop the negation of the non-matching statement, re-measure slope, s_pos and s_neg."""
    import torch

    from interp_steer.analysis.battery import study_split
    from interp_steer.analysis.interventions import edit_pairs, remove_negation, steered_slopes
    from interp_steer.config.keys import dataset_stem

    frames = []
    for spec in specs:
        key = dataset_stem(spec)
        if not (vectors / f"{key}.pt").exists() or sum(len(f) for f in frames) >= limit:
            continue
        _, _, test = study_split(spec, cfg["n_train"], cfg["n_test"], cfg["test_fraction"], cfg["seed"])
        edited = edit_pairs(test, remove_negation, "negative")[: limit - sum(len(f) for f in frames)]
        if not edited:
            continue
        direction = torch.load(vectors / f"{key}.pt", weights_only=True)
        before = steered_slopes(model, [o for o, _ in edited], direction, cfg["layer"], cfg["multipliers"])
        after = steered_slopes(model, [e for _, e in edited], direction, cfg["layer"], cfg["multipliers"])
        after["sample_id"] = after["sample_id"].str.removesuffix("~edit")
        frame = before.merge(after, on="sample_id", suffixes=("", "_edited"))
        frame["dataset"] = spec
        frame["negative"] = [o.negative for o, _ in edited]
        frame["negative_edited"] = [e.negative for _, e in edited]
        frames.append(frame)
        print(f"{spec}: {len(frame)} edited", flush=True)
    pd.concat(frames, ignore_index=True).to_csv(out / "negation_edits.csv", index=False)


def summarize_negation(folder: Path, n_boot: int = 2000) -> pd.DataFrame:
    """Intervention (a): mean change of s_neg, s_pos and the slope after the edit (paired bootstrap 95% CI over
    samples, as the pilot has few datasets: :func:`~interp_steer.stats.intervals.paired_difference_interval`), for
    all edited samples and for those anti-steerable before; ``negation_summary.csv``."""
    from interp_steer.stats.intervals import paired_difference_interval

    path = folder / "negation_edits.csv"
    if not path.exists():
        return pd.DataFrame()
    table = pd.read_csv(path)
    rows = []
    for group, part in (("all edited", table), ("anti-steerable before", table[table["slope"] < 0])):
        for column in ("s_neg", "s_pos", "slope"):
            change, low, high = paired_difference_interval(part[f"{column}_edited"], part[column], n_boot=n_boot)
            rows.append(dict(group=group, n=len(part), n_datasets=part["dataset"].nunique(), quantity=column,
                             mean_before=float(part[column].mean()), mean_after=float(part[f"{column}_edited"].mean()),
                             mean_change=change, low=low, high=high,
                             turned_steerable=float(((part["slope"] < 0) & (part["slope_edited"] > 0)).sum())))
    summary = pd.DataFrame(rows)
    summary.to_csv(folder / "negation_summary.csv", index=False)
    return summary


def summarize(folder: Path) -> pd.DataFrame:
    """Per projection (logit-lens, random control): :func:`intervention_effect` over every finished dataset
    (dataset-clustered CIs); written to ``folder/summary.csv``."""
    from interp_steer.analysis.interventions import intervention_effect

    files = sorted(folder.glob("projection_k*.csv"))
    if not files:
        return pd.DataFrame()
    table = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    rows = []
    for name in ("logit_lens", "random"):
        effect = intervention_effect(table["slope"].to_numpy(), table[f"slope_{name}"].to_numpy(),
                                     table["dataset"].to_numpy())
        rows.append(dict(projection=name, k=int(table["k"].iloc[0]), n_datasets=table["dataset"].nunique(),
                         mean_norm_ratio=float(table.groupby("dataset")[f"norm_ratio_{name}"].first().mean()),
                         mean_slope_before=float(table["slope"].mean()),
                         mean_slope_after=float(table[f"slope_{name}"].mean()), **effect))
    summary = pd.DataFrame(rows)
    summary.to_csv(folder / "summary.csv", index=False)
    return summary


if __name__ == "__main__":
    sys.exit(main())

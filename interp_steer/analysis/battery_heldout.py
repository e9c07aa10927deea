"""Held-out-by-dataset evaluation of the battery's features: logistic model on a random half of the datasets,
scored on the other half, against the baseline-propensity-only model and the base-rate-only score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.stats import auc, within_group_auc_test


def zscore_within(table: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Features centred and scaled inside each dataset (no labels used); constant columns become 0."""
    grouped = table.groupby("dataset")[features]
    sd = grouped.transform("std").replace(0, np.nan)
    return ((table[features] - grouped.transform("mean")) / sd).fillna(0.0)


def dataset_halves(datasets: list[str], seed: int) -> tuple[list[str], list[str]]:
    """A seeded random half of ``datasets`` (sorted first) for fitting and the rest for testing."""
    names = sorted(set(datasets))
    if len(names) < 4:
        raise ConfigError(f"held-out-by-dataset evaluation needs ≥ 4 datasets, got {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    half = len(names) // 2
    return [names[i] for i in order[:half]], [names[i] for i in order[half:]]


def heldout_scores(table: pd.DataFrame, features: list[str], seed: int) -> pd.DataFrame:
    """Held-out rows (``dataset, anti, score``) of a logistic model (sklearn, C = 1) fitted on the other half."""
    from sklearn.linear_model import LogisticRegression

    data = table.dropna(subset=features).reset_index(drop=True)
    x = zscore_within(data, features).to_numpy(float)
    fit_sets, test_sets = dataset_halves(list(data["dataset"]), seed)
    train = data["dataset"].isin(fit_sets).to_numpy()
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x[train], data["anti"].to_numpy()[train])
    held = data.loc[~train, ["dataset", "anti"]].copy()
    held["score"] = model.decision_function(x[~train])
    return held


def heldout_summary(table: pd.DataFrame, feature_sets: dict[str, list[str]], seeds: range = range(20),
                    n_boot: int = 2000) -> pd.DataFrame:
    """Per feature set: within-dataset AUC on the held-out half (seed 0, dataset-bootstrap CI), pooled AUC, and
    the mean / min / max within-dataset AUC over ``seeds``; plus the base-rate-only score's pooled AUC."""
    rows = []
    for name, features in feature_sets.items():
        per_seed = []
        for seed in seeds:
            held = heldout_scores(table, features, seed)
            res = within_group_auc_test(held["score"].to_numpy(), held["anti"].to_numpy(), held["dataset"].to_numpy(),
                                        n_boot=n_boot, n_perm=1, seed=0)
            per_seed.append(res.auc)
            if seed == seeds[0]:
                first, pooled = res, auc(held["score"].to_numpy(), held["anti"].to_numpy())
                base = held.groupby("dataset")["anti"].transform("mean")
                base_pooled = auc(base.to_numpy(), held["anti"].to_numpy())
        rows.append(dict(model=name, features=", ".join(features), within_auc=first.auc, low=first.low, high=first.high,
                         pooled_auc=pooled, base_rate_pooled_auc=base_pooled, n_test_datasets=first.n_groups,
                         within_auc_mean_over_seeds=float(np.mean(per_seed)), within_auc_min=float(np.min(per_seed)),
                         within_auc_max=float(np.max(per_seed)), n_seeds=len(per_seed)))
    return pd.DataFrame(rows)


def battery_vectors_dir(model: str) -> Path:
    """Where the battery caches each dataset's study vector (``<stem>.pt``) for the given model spec."""
    return Path.home() / ".cache" / "interp_steer" / "anti_steerable" / model


def held_out_vector_datasets(study_dir: Path, n_datasets: int, seed: int = 0) -> tuple[dict, dict, Path, list[str]]:
    """``(steerability config, study config, vectors folder, datasets)`` for the intervention scripts: the first
    ``n_datasets`` free-text datasets (study order) of the held-out half of the seeded dataset split that have a
    cached battery vector."""
    import json

    from interp_steer.analysis.battery import free_text_specs
    from interp_steer.config.keys import dataset_stem

    study_dir = Path(study_dir)
    steer_cfg = json.loads((study_dir / "steerability" / "config.json").read_text(encoding="utf-8"))
    top = json.loads((study_dir / "config.json").read_text(encoding="utf-8"))
    vectors = battery_vectors_dir(top["model"])
    specs = free_text_specs(study_dir)
    _, held = dataset_halves(specs, seed)
    chosen = [s for s in specs if s in held and (vectors / f"{dataset_stem(s)}.pt").exists()][:n_datasets]
    return steer_cfg, top, vectors, chosen

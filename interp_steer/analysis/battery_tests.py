"""Stage 2 of the anti-steerability battery: the pre-registered tests, tables and report (plan in
``analyses/prereg/anti_steerable_battery.md``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from interp_steer.analysis.battery import check_plan_lock, free_text_specs, load_features, study_split
from interp_steer.analysis.decomposition import add_token_counts, category_shares, decompose
from interp_steer.errors import DataFormatError
from interp_steer.stats import auc, benjamini_hochberg, holm, metric_interval, within_group_auc_test

# id, feature, predicted direction of the AUC for "anti-steerable" (+1: > 0.5, −1: < 0.5, 0: two-sided)
SAMPLE_HYPOTHESES = [
    ("H1", "lexical_margin", -1), ("H2", "logit_lens_overlap_margin", +1), ("H3", "negation_matching", +1),
    ("H4", "negation_nonmatching", +1), ("H5", "label_confidence_min", -1), ("H6", "length_difference", 0),
    ("H7", "length_total", 0), ("H8", "baseline_propensity", +1), ("H9", "projection_mean", -1),
    ("H10", "cosine_mean", -1), ("H11", "projection_last", -1), ("H12", "cosine_last", -1),
]
DATASET_HYPOTHESES = [("D1", "braun_mean_cosine", -1), ("D2", "braun_separation_dprime", -1)]
TEXT_FEATURES = ["lexical_margin", "negation_matching", "negation_nonmatching", "label_confidence_min",
                 "length_difference", "length_total", "baseline_propensity"]
ACTIVATION_FEATURES = ["logit_lens_overlap_margin", "projection_mean", "cosine_mean", "projection_last",
                       "cosine_last", "separation_mean", "separation_last"]


def study_propensities(study_dir: Path) -> pd.DataFrame:
    """The free-text propensity rows of every finished unit of the study."""
    from interp_steer.config.keys import dataset_stem

    units = Path(study_dir) / "steerability" / "units"
    frames = [pd.read_csv(units / f"{dataset_stem(s)}.propensity.csv") for s in free_text_specs(study_dir)
              if (units / f"{dataset_stem(s)}.per_sample.csv").is_file()]
    if not frames:
        raise DataFormatError(f"{units} holds no finished free-text unit")
    return pd.concat(frames, ignore_index=True)


def check_study_slopes(study_dir: Path, decomposed: pd.DataFrame, tol: float = 1e-6) -> float:
    """Max |decomposition slope − the study's per-sample ``slope``|; ``DataFormatError`` above ``tol``."""
    from interp_steer.config.keys import dataset_stem

    units = Path(study_dir) / "steerability" / "units"
    study = pd.concat([pd.read_csv(units / f"{dataset_stem(s)}.per_sample.csv", usecols=["sample_id", "slope"])
                       for s in decomposed["dataset"].unique()], ignore_index=True)
    merged = decomposed.merge(study, on="sample_id", suffixes=("", "_study"), validate="one_to_one")
    gap = float((merged["slope"] - merged["slope_study"]).abs().max())
    if len(merged) != len(decomposed) or gap > tol:
        raise DataFormatError(f"{units}: decomposition slopes differ from the per-sample tables (max gap {gap:.2e})")
    return gap


def vector_norm_check(study_dir: Path, per_dataset: pd.DataFrame) -> pd.DataFrame:
    """``per_dataset`` with the study's ``study_vector_norm`` and the relative gap to the re-extracted norm."""
    from interp_steer.config.keys import dataset_stem

    units = Path(study_dir) / "steerability" / "units"
    norms = {s: float(pd.read_csv(units / f"{dataset_stem(s)}.per_sample.csv", usecols=["vector_norm"]).iloc[0, 0])
             for s in per_dataset["dataset"]}
    out = per_dataset.assign(study_vector_norm=per_dataset["dataset"].map(norms))
    if "vector_norm" in out.columns:
        out["vector_norm_rel_gap"] = (out["vector_norm"] - out["study_vector_norm"]).abs() / out["study_vector_norm"]
        if (out["vector_norm_rel_gap"] > 1e-3).any():
            bad = out.loc[out["vector_norm_rel_gap"] > 1e-3, "dataset"].iloc[0]
            raise DataFormatError(f"re-extracted CAA vector of {bad} differs from the study's norm by > 1e-3")
    return out


def text_features(study_dir: Path, datasets: list[str], tokenizer, data_dir=None) -> pd.DataFrame:
    """H1, H3–H7 features of every test sample of ``datasets`` (tokenizer only, no forward passes)."""
    from interp_steer.analysis.battery import _min_confidence
    from interp_steer.analysis.battery_features import has_negation, lexical_scores
    from interp_steer.data.tokenization import encode_pair

    cfg = json.loads((Path(study_dir) / "steerability" / "config.json").read_text(encoding="utf-8"))
    frames = []
    for spec in datasets:
        pairs, _, test = study_split(spec, cfg["n_train"], cfg["n_test"], cfg["test_fraction"], cfg["seed"], data_dir)
        lex_pos, lex_neg = lexical_scores([p.positive for p in pairs], [p.negative for p in pairs])
        index = {p.id: i for i, p in enumerate(pairs)}
        rows = [index[p.id] for p in test]
        encoded = [encode_pair(tokenizer, p) for p in test]
        n_pos = np.array([len(e.positive_ids) for e in encoded])
        n_neg = np.array([len(e.negative_ids) for e in encoded])
        frames.append(pd.DataFrame(dict(
            dataset=spec, sample_id=[p.id for p in test], lexical_margin=lex_pos[rows] - lex_neg[rows],
            negation_matching=[float(has_negation(p.positive)) for p in test],
            negation_nonmatching=[float(has_negation(p.negative)) for p in test],
            label_confidence_min=[_min_confidence(p) for p in test], n_tokens_pos=n_pos, n_tokens_neg=n_neg,
            length_difference=n_neg - n_pos, length_total=n_neg + n_pos)))
    return pd.concat(frames, ignore_index=True)


def sample_tests(table: pd.DataFrame, n_boot: int = 2000, n_perm: int = 4000) -> pd.DataFrame:
    """Within-dataset AUC (dataset bootstrap CI, within-dataset permutation p) of each sample-level feature."""
    rows = []
    for hid, feature, predicted in SAMPLE_HYPOTHESES:
        data = table.dropna(subset=[feature]) if feature in table.columns else table.iloc[:0]
        if data.empty:
            rows.append(dict(id=hid, feature=feature, predicted=predicted, level="sample", n_datasets=0))
            continue
        res = within_group_auc_test(data[feature].to_numpy(float), data["anti"].to_numpy(), data["dataset"].to_numpy(),
                                    n_boot=n_boot, n_perm=n_perm, seed=0)
        rows.append(dict(id=hid, feature=feature, predicted=predicted, level="sample", effect="within-dataset AUC",
                         estimate=res.auc, low=res.low, high=res.high, null=0.5, p=res.p_value,
                         n_datasets=res.n_groups, n_samples=len(data)))
    return pd.DataFrame(rows)


def dataset_tests(per_dataset: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """Spearman ρ of each dataset-level feature with the dataset's anti-steerable fraction (bootstrap CI over
    datasets, :func:`~interp_steer.stats.intervals.metric_interval`)."""
    rows = []
    for hid, feature, predicted in DATASET_HYPOTHESES:
        data = per_dataset.dropna(subset=[feature])
        x, y = data[feature].to_numpy(float), data["anti_fraction"].to_numpy(float)
        rho, p = spearmanr(x, y)
        def rho_of(i: np.ndarray, x: np.ndarray = x, y: np.ndarray = y) -> float:
            return float(spearmanr(x[i], y[i])[0])

        _, low, high = metric_interval(rho_of, len(x), n_boot=n_boot)
        rows.append(dict(id=hid, feature=feature, predicted=predicted, level="dataset", effect="Spearman rho",
                         estimate=float(rho), low=float(low), high=float(high), null=0.0, p=float(p),
                         n_datasets=len(x), n_samples=np.nan))
    return pd.DataFrame(rows)


def verdicts(results: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Holm and BH adjusted p over the family, and held / not held / reversed per the plan."""
    out = results.copy()
    tested = out["p"].notna()
    out.loc[tested, "p_holm"] = holm(out.loc[tested, "p"].to_numpy())
    out.loc[tested, "q_bh"] = benjamini_hochberg(out.loc[tested, "p"].to_numpy())
    sign = np.sign(out["estimate"] - out["null"])

    def verdict(row, s) -> str:
        if pd.isna(row["p"]):
            return "not run"
        if row["p_holm"] >= alpha:
            return "not held"
        if row["predicted"] == 0:
            return "held (two-sided, " + ("higher" if s > 0 else "lower") + " in anti-steerable)"
        return "held" if s == row["predicted"] else "reversed"

    out["verdict"] = [verdict(r, s) for (_, r), s in zip(out.iterrows(), sign)]
    return out


def assemble(study_dir: Path, out_dir: Path, tokenizer=None, data_dir=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(samples, per_dataset)``: decomposition + text features (all datasets) + activation features (where
    computed); writes ``decomposition.csv`` and ``text_features.csv`` into ``out_dir``."""
    decomposed = decompose(study_propensities(study_dir))
    check_study_slopes(study_dir, decomposed)
    text_file = out_dir / "text_features.csv"
    if text_file.exists():
        text = pd.read_csv(text_file)
    else:
        if tokenizer is None:
            from interp_steer.models import load_model

            cfg = json.loads((Path(study_dir) / "config.json").read_text(encoding="utf-8"))
            tokenizer = load_model(cfg["model"]).tokenizer
        text = text_features(study_dir, sorted(decomposed["dataset"].unique()), tokenizer, data_dir)
        text.to_csv(text_file, index=False)
    decomposed = add_token_counts(decomposed, text[["sample_id", "n_tokens_pos", "n_tokens_neg"]])
    decomposed.to_csv(out_dir / "decomposition.csv", index=False)
    samples = decomposed.merge(text.drop(columns=["n_tokens_pos", "n_tokens_neg"]), on=["dataset", "sample_id"],
                               validate="one_to_one")
    try:
        acts = load_features(out_dir)
    except DataFormatError:
        acts = pd.DataFrame(columns=["dataset", "sample_id"])
    dataset_cols = [c for c in acts.columns if c.startswith("ds_")]
    keep = ["dataset", "sample_id"] + [c for c in ACTIVATION_FEATURES if c in acts.columns]
    samples = samples.merge(acts[keep], on=["dataset", "sample_id"], how="left", validate="one_to_one")
    per_dataset = samples.groupby("dataset").agg(anti_fraction=("anti", "mean"), n=("anti", "size")).reset_index()
    if dataset_cols:
        ds = acts.groupby("dataset")[dataset_cols].first().rename(columns=lambda c: c[3:]).reset_index()
        per_dataset = per_dataset.merge(ds, on="dataset", how="left")
    for _, feature, _ in DATASET_HYPOTHESES:
        if feature not in per_dataset.columns:
            per_dataset[feature] = np.nan
    return samples, vector_norm_check(study_dir, per_dataset)


def run_tests(study_dir: Path, out_dir: Path, plan: Path, *, tokenizer=None, data_dir=None, n_boot: int = 2000,
              n_perm: int = 4000, seeds: range = range(20)) -> pd.DataFrame:
    """The whole stage 2 under the plan lock; writes the tables and ``report.md`` into ``out_dir``."""
    from interp_steer.analysis.battery_heldout import heldout_summary
    from interp_steer.analysis.battery_report import write_report

    study_dir, out_dir = Path(study_dir), Path(out_dir)
    digest = check_plan_lock(plan, out_dir)
    samples, per_dataset = assemble(study_dir, out_dir, tokenizer, data_dir)
    results = verdicts(pd.concat([sample_tests(samples, n_boot, n_perm), dataset_tests(per_dataset, n_boot)],
                                 ignore_index=True))
    results.to_csv(out_dir / "hypotheses.csv", index=False)
    per_dataset.to_csv(out_dir / "per_dataset.csv", index=False)
    shares = category_shares(samples, n_boot=n_boot)
    shares.to_csv(out_dir / "decomposition_shares.csv", index=False)
    with_acts = samples.dropna(subset=["projection_mean"]) if "projection_mean" in samples else samples.iloc[:0]
    text_only = [f for f in TEXT_FEATURES if samples[f].notna().all()]
    sets = {"text+table features (all datasets)": (samples, text_only),
            "baseline propensity only (all datasets)": (samples, ["baseline_propensity"])}
    if with_acts["dataset"].nunique() >= 4:
        sets["all features (activation prefix)"] = (with_acts, text_only + ACTIVATION_FEATURES)
        sets["baseline propensity only (activation prefix)"] = (with_acts, ["baseline_propensity"])
    heldout = pd.concat([heldout_summary(table, {name: feats}, seeds, n_boot) for name, (table, feats) in sets.items()],
                        ignore_index=True)
    heldout.to_csv(out_dir / "heldout.csv", index=False)
    pooled_base = auc(samples.groupby("dataset")["anti"].transform("mean").to_numpy(), samples["anti"].to_numpy())
    write_report(out_dir, results, shares, heldout, samples, per_dataset, digest=digest, plan=plan,
                 pooled_base_rate_auc=pooled_base, study_dir=study_dir)
    return results

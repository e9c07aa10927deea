"""The pre-registered anti-steerability battery (issue 26): per-dataset features, then tests under a plan lock.

Stage 1 (:func:`dataset_features`, resumable per dataset) needs the model; stage 2 (:mod:`battery_tests`) reads
only the feature tables and the study's unit tables. The plan file's sha256 is stored with the results and a run
with an edited plan is refused (:func:`check_plan_lock`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from interp_steer.errors import ConfigError, DataFormatError

LOCK_FILE = "plan_lock.json"
TOP_K = 100


def plan_sha256(plan: str | Path) -> str:
    """sha256 of the plan file's bytes (``ConfigError`` if it does not exist)."""
    path = Path(plan)
    if not path.is_file():
        raise ConfigError(f"plan file {path} does not exist")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_plan_lock(plan: str | Path, out_dir: str | Path, record: bool = True) -> str:
    """Refuse (one-line ``ConfigError``) when ``out_dir`` holds results of a plan whose hash differs from
    ``plan``'s; otherwise return the hash, recording it first if ``record`` (the tests stage records, the feature
    stage, which computes no association, only checks)."""
    digest, lock = plan_sha256(plan), Path(out_dir) / LOCK_FILE
    if lock.exists():
        recorded = json.loads(lock.read_text(encoding="utf-8"))
        if recorded.get("plan_sha256") != digest:
            raise ConfigError(f"{plan} was edited after results exist in {out_dir} (sha256 {digest[:12]} ≠ recorded "
                              f"{str(recorded.get('plan_sha256'))[:12]}); write a new plan and a new output directory")
        return digest
    if not record:
        return digest
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"plan": Path(plan).name, "plan_sha256": digest}, indent=2) + "\n",
                    encoding="utf-8")  # the file name only: the lock is checked by hash, not by a machine's path
    return digest


def study_split(spec: str, n_train: int, n_test: int, test_fraction: float, seed: int, data_dir=None):
    """``(all_pairs, train[:n_train], test[:n_test])`` exactly as the steerability study split ``spec``."""
    import warnings

    from interp_steer.data import DataSplit, load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = load_dataset(spec, data_dir=data_dir)
    return (pairs, *DataSplit(test_fraction, seed, n_train, n_test).split(pairs))


def dataset_features(model, spec: str, layer: int, *, n_train: int, n_test: int, test_fraction: float, seed: int,
                     data_dir=None, top_k: int = TOP_K):
    """Per-sample features of ``spec``'s test samples, its dataset-level row, and the CAA direction.

    Returns ``(samples, dataset_row, direction)``; definitions as in the pre-registration.
    """
    import torch

    from interp_steer.analysis.battery_features import (
        braun_dataset_features,
        completion_activations,
        has_negation,
        lexical_scores,
        logit_lens_top,
        projection_features,
        token_overlap,
    )

    pairs, train, test = study_split(spec, n_train, n_test, test_fraction, seed, data_dir)
    hook = f"blocks.{layer}.hook_resid_post"
    tr = completion_activations(model, train, hook)
    te = completion_activations(model, test, hook)
    direction = (tr["pos_mean"] - tr["neg_mean"]).mean(0)  # CAA mean difference (completion_mean read position)
    braun = braun_dataset_features(tr["pos_mean"], tr["neg_mean"], direction)
    lex_pos, lex_neg = lexical_scores([p.positive for p in pairs], [p.negative for p in pairs])
    index = {p.id: i for i, p in enumerate(pairs)}
    rows = [index[p.id] for p in test]
    top = logit_lens_top(model, direction, top_k)
    frame = pd.DataFrame({"dataset": spec, "sample_id": [p.id for p in test]})
    frame["lexical_margin"] = lex_pos[rows] - lex_neg[rows]
    frame["logit_lens_overlap_margin"] = [token_overlap(n, top) - token_overlap(q, top)
                                          for q, n in zip(te["pos_ids"], te["neg_ids"])]
    frame["negation_matching"] = [float(has_negation(p.positive)) for p in test]
    frame["negation_nonmatching"] = [float(has_negation(p.negative)) for p in test]
    frame["label_confidence_min"] = [_min_confidence(p) for p in test]
    frame["n_tokens_pos"], frame["n_tokens_neg"] = te["n_tokens_pos"], te["n_tokens_neg"]
    frame["length_difference"] = frame["n_tokens_neg"] - frame["n_tokens_pos"]
    frame["length_total"] = frame["n_tokens_neg"] + frame["n_tokens_pos"]
    for where in ("mean", "last"):
        proj, cos = projection_features(te[f"pos_{where}"] - te[f"neg_{where}"], direction)
        frame[f"projection_{where}"], frame[f"cosine_{where}"] = proj, cos
        frame[f"separation_{where}"] = proj / braun["train_projection_sd"]
    row = dict(dataset=spec, vector_norm=float(torch.linalg.norm(direction)), n_train=len(train), **braun)
    return frame, row, direction


def _min_confidence(pair) -> float:
    values = [pair.meta.get("label_confidence"), pair.meta.get("negative_label_confidence")]
    return float(min(values)) if all(v is not None for v in values) else float("nan")


def free_text_specs(study_dir: Path) -> list[str]:
    """The study's free-text dataset specs, in its unit order (``ConfigError`` without a ``config.json``)."""
    config = Path(study_dir) / "config.json"
    if not config.is_file():
        raise ConfigError(f"{config} does not exist: is {study_dir} a study directory?")
    datasets = json.loads(config.read_text(encoding="utf-8"))["datasets"]
    return [d for d in datasets if d.endswith("@free_text")]


def compute_features(model, study_dir: Path, out_dir: Path, vectors_dir: Path, *, data_dir=None,
                     limit: int | None = None, echo=print) -> None:
    """Stage 1: features of each free-text unit that has a finished study table, one file per dataset under
    ``out_dir/features`` (existing files are kept, so the stage resumes); the CAA directions go to
    ``vectors_dir/<key>.pt`` (outside the repository)."""
    import torch

    from interp_steer.config.keys import dataset_stem

    steer_config = Path(study_dir) / "steerability" / "config.json"
    if not steer_config.is_file():
        raise ConfigError(f"{steer_config} does not exist: the study has no steerability stage yet")
    cfg = json.loads(steer_config.read_text(encoding="utf-8"))
    layer = int(cfg["layer"])
    (out_dir / "features").mkdir(parents=True, exist_ok=True)
    vectors_dir.mkdir(parents=True, exist_ok=True)
    done = 0
    for spec in free_text_specs(study_dir):
        key = dataset_stem(spec)
        target = out_dir / "features" / f"{key}.csv"
        if not (Path(study_dir) / "steerability" / "units" / f"{key}.per_sample.csv").is_file():
            continue
        if not target.exists():
            samples, row, direction = dataset_features(
                model, spec, layer, n_train=cfg["n_train"], n_test=cfg["n_test"],
                test_fraction=cfg["test_fraction"], seed=cfg["seed"], data_dir=data_dir)
            torch.save(direction, vectors_dir / f"{key}.pt")
            samples.assign(**{f"ds_{k}": v for k, v in row.items() if k != "dataset"}).to_csv(target, index=False)
            echo(f"features {spec}: norm {row['vector_norm']:.5f}")
        done += 1
        if limit is not None and done >= limit:
            break


def load_features(out_dir: Path) -> pd.DataFrame:
    """Every per-dataset feature file of ``out_dir/features`` (``DataFormatError`` if none)."""
    files = sorted((Path(out_dir) / "features").glob("*.csv"))
    if not files:
        raise DataFormatError(f"{out_dir}/features holds no feature files; run the features stage first")
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)



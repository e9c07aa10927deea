"""Rebuild a finished study's ``report.md``, ``tables/`` and ``figures/`` from its files, without a forward pass:
the config, the unit files of every stage, and the free-text completion lengths (token counts of the study's test
pairs, computed once with the model's tokenizer and kept in ``tables/completion_lengths.csv``).
``interp-steer study tan2024 --report-only --out DIR``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.runs.files import read_table, write_table_atomic
from interp_steer.runs.study_config import StudyConfig, choose_layer, framing_of, layer_profile

LENGTHS_TABLE = "tables/completion_lengths.csv"


def study_completion_lengths(out_dir: str | Path, config: StudyConfig, *, tokenizer=None,
                             data_dir: str | Path | None = None) -> pd.DataFrame:
    """Token counts of the positive / negative completion of every free-text test pair the steerability stage
    scores (the same split and the first ``n_test`` test pairs, so the ``sample_id`` values match the unit files);
    read from ``tables/completion_lengths.csv`` when present, else computed with ``tokenizer`` (default: the study
    model's) and saved there."""
    from interp_steer.runs.registry_pairs import RegistryPairs
    from interp_steer.stats import completion_lengths

    out_dir = Path(out_dir)
    path = out_dir / LENGTHS_TABLE
    if path.exists():
        return read_table(path)
    specs = [s for s in config.datasets if framing_of(s) == "free_text"]
    if not specs:
        return pd.DataFrame(columns=["dataset", "sample_id", "n_pos_tokens", "n_neg_tokens"])
    if tokenizer is None:
        from interp_steer.runs.executors import cached_model

        tokenizer = cached_model(config.model, config.device).tokenizer
    source = RegistryPairs(None, config.test_fraction, config.seed, config.n_train, config.n_test,
                           None if data_dir is None else str(data_dir))
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the xrisk loaders warn about skipped multi-choice rows
        for spec in specs:
            frames.append(completion_lengths(tokenizer, source(spec)[1], dataset=spec))
    lengths = pd.concat(frames, ignore_index=True)
    write_table_atomic(lengths, path)
    return lengths


def load_study_tables(out_dir: str | Path, data_dir: str | Path | None = None) -> dict[str, Any]:
    """The finished stages of a study directory: config, scan config and profile, layer choice, steerability config
    and tables, the ID/OOD per-sample table. A ConfigError naming the missing file if a stage is not finished."""
    from interp_steer.runs.id_ood import IdOodConfig, IdOodJob
    from interp_steer.runs.scan import ScanConfig, combine_scan
    from interp_steer.runs.steerability import SteerabilityConfig, combine_steerability

    out_dir = Path(out_dir)
    for rel in ("config.json", "scan/config.json", "steerability/config.json", "id_ood/config.json"):
        if not (out_dir / rel).exists():
            raise ConfigError(f"{out_dir / rel}: missing; is {out_dir} a finished `study tan2024` directory?")
    config = StudyConfig.read(out_dir / "config.json")
    scan_config = ScanConfig.read(out_dir / "scan" / "config.json")
    profile = layer_profile(combine_scan(out_dir / "scan", scan_config)["per_sample"], n_boot=config.n_boot,
                            seed=config.seed)
    choice = choose_layer(profile, config.layer_framing)
    saved = out_dir / "layer_choice.json"
    if saved.exists() and int(json.loads(saved.read_text(encoding="utf-8"))["layer"]) != choice["layer"]:
        raise ConfigError(f"{saved}: layer differs from the scan's argmax layer {choice['layer']}; rerun the study")
    steer_config = SteerabilityConfig.read(out_dir / "steerability" / "config.json")
    id_config = IdOodConfig.read(out_dir / "id_ood" / "config.json")
    id_tables = IdOodJob(id_config, None if data_dir is None else str(data_dir)).combine(out_dir / "id_ood")
    return {"config": config, "scan_config": scan_config, "profile": profile, "choice": choice,
            "steer_config": steer_config, "steer_tables": combine_steerability(out_dir / "steerability", steer_config),
            "id_per_sample": id_tables["per_sample"]}


def rebuild_study_report(out_dir: str | Path, *, data_dir: str | Path | None = None, tokenizer=None):
    """Rewrite ``tables/``, ``figures/`` and ``report.md`` of a finished study from its files (no forward pass;
    the tokenizer is loaded only if ``tables/completion_lengths.csv`` is missing). Returns ``(headline, figures)``."""
    from interp_steer.runs.study_report import write_study_report

    out_dir = Path(out_dir)
    t = load_study_tables(out_dir, data_dir)
    lengths = study_completion_lengths(out_dir, t["config"], tokenizer=tokenizer, data_dir=data_dir)
    return write_study_report(out_dir, t["config"], t["scan_config"], t["steer_config"], t["profile"], t["choice"],
                              t["steer_tables"], t["id_per_sample"], lengths)

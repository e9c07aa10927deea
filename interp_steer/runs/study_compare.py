"""Cross-model study: join finished ``study tan2024`` directories (``interp-steer study compare DIR_A DIR_B … --out
DIR``) and ask whether steerability is a property of the dataset (Tan et al. 2024): per-dataset mean slope and
anti-steerable fraction of each model side by side (summed and per token), Spearman and Pearson over datasets with
dataset-bootstrap 95% CIs (overall, per framing, per source), the datasets where the models disagree most, and the
layer profiles on one relative-depth axis. The report is written by :mod:`interp_steer.runs.study_compare_report`.

The join refuses, in one line and before writing anything, studies whose units or datasets differ: other
multipliers, other propensity units in the headline table, a missing per-token table, or other dataset sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from interp_steer.errors import ConfigError
from interp_steer.runs.study_config import StudyConfig
from interp_steer.viz.compare_plots import column

MEASURES = ("mean_slope", "anti_steerable_fraction")
VARIANTS = ("summed", "per_token")
SOURCES = ("all", "persona", "xrisk")


@dataclass
class StudySide:
    """One finished study: its label, directory, config, dataset-level interval tables and layer profile."""

    label: str
    out_dir: Path
    config: StudyConfig
    cis: pd.DataFrame
    token_cis: pd.DataFrame
    profile: pd.DataFrame
    n_layers: int
    layer: int
    units: dict[tuple[str, str], str]
    does_ab_task: bool | None = None
    """The study's A/B-task verdict (:func:`~interp_steer.runs.study_report_ab.ab_task_verdict`; None: not tested)."""


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError(f"{path}: missing; run or rebuild the study first (`interp-steer study tan2024 "
                          f"--report-only --out {path.parent.parent}`)")
    return pd.read_csv(path)


def load_side(out_dir: str | Path, label: str | None = None) -> StudySide:
    """Read a finished study directory (its ``config.json`` and ``tables/``)."""
    import json

    from interp_steer.runs.scan import ScanConfig
    from interp_steer.runs.study_report_ab import ab_task_verdict

    out_dir = Path(out_dir)
    if not (out_dir / "config.json").exists():
        raise ConfigError(f"{out_dir}: no config.json; is it a `study tan2024` directory?")
    config = StudyConfig.read(out_dir / "config.json")
    cis = _read(out_dir / "tables" / "steerability_cis.csv")
    token_path = out_dir / "tables" / "steerability_cis_per_token.csv"
    token = pd.read_csv(token_path) if token_path.exists() else pd.DataFrame()
    profile = _read(out_dir / "tables" / "layer_profile.csv")
    headline = _read(out_dir / "tables" / "headline.csv")
    units = {(str(r.group), str(r.statistic)): str(r.units) for r in headline.itertuples()
             if r.section == "steerability"}
    scan_layers = ScanConfig.read(out_dir / "scan" / "config.json").layers
    n_layers = len(scan_layers) if not config.scan_layers else int(max(scan_layers)) + 1
    layer = int(json.loads((out_dir / "layer_choice.json").read_text(encoding="utf-8"))["layer"])
    return StudySide(label or config.model, out_dir, config, cis[cis["level"] == "dataset"],
                     token[token["level"] == "dataset"] if not token.empty else token, profile, n_layers, layer, units,
                     ab_task_verdict(headline))


def unique_labels(sides: list[StudySide]) -> None:
    """Make the side labels distinct (the same model twice gets its directory name appended)."""
    seen: dict[str, int] = {}
    for side in sides:
        seen[side.label] = seen.get(side.label, 0) + 1
    for i, side in enumerate(sides):
        if seen[side.label] > 1:
            side.label = f"{side.label} ({side.out_dir.name}#{i + 1})"


def check_compatible(sides: list[StudySide]) -> None:
    """One-line ConfigError unless every study uses the same units (multipliers, headline units, per-token table)
    and the same datasets per framing as the first."""
    if len(sides) < 2:
        raise ConfigError(f"study compare needs at least 2 study directories, got {len(sides)}")
    ref = sides[0]
    for side in sides[1:]:
        where = f"{ref.out_dir} vs {side.out_dir}"
        if ref.config.multipliers != side.config.multipliers:
            raise ConfigError(f"study compare: mismatched units ({where}): multipliers {ref.config.multipliers} vs "
                              f"{side.config.multipliers}, so slopes are per different multiplier grids")
        for key in sorted(set(ref.units) & set(side.units)):
            if ref.units[key] != side.units[key]:
                raise ConfigError(f"study compare: mismatched units ({where}): {key[0]} {key[1]} in "
                                  f"{ref.units[key]!r} vs {side.units[key]!r}")
        if ref.token_cis.empty != side.token_cis.empty:
            missing = ref if ref.token_cis.empty else side
            raise ConfigError(f"study compare: mismatched units ({where}): {missing.out_dir} has no per-token table "
                              "(tables/steerability_cis_per_token.csv); rebuild it with `interp-steer study tan2024 "
                              f"--report-only --out {missing.out_dir}`")
        for framing in sorted(set(ref.cis["framing"]) | set(side.cis["framing"])):
            a = set(ref.cis.loc[ref.cis["framing"] == framing, "dataset"])
            b = set(side.cis.loc[side.cis["framing"] == framing, "dataset"])
            if a != b:
                example = sorted(a ^ b)[0]
                raise ConfigError(f"study compare: mismatched datasets ({where}): {framing} has {len(a)} vs {len(b)} "
                                  f"datasets, {len(a & b)} in common (e.g. {example!r} is in only one)")


def _wide(cis: pd.DataFrame, label: str, variant: str) -> pd.DataFrame:
    rows = cis[cis["statistic"].isin(MEASURES)]
    out = rows.pivot_table(index=["framing", "source", "dataset"], columns="statistic",
                           values=["estimate", "ci_low", "ci_high"])
    out.columns = [f"{stat}|{variant}|{label}|{part}" for part, stat in out.columns]
    return out


def join_datasets(sides: list[StudySide]) -> pd.DataFrame:
    """One row per (framing, source, dataset); columns ``<measure>|<variant>|<label>|<estimate|ci_low|ci_high>``
    for every side (``variant``: ``summed``, and ``per_token`` for free-text datasets)."""
    frames = [_wide(s.cis, s.label, "summed") for s in sides]
    frames += [_wide(s.token_cis, s.label, "per_token") for s in sides if not s.token_cis.empty]
    return pd.concat(frames, axis=1).reset_index()


def model_correlations(joined: pd.DataFrame, a: str, b: str, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Spearman and Pearson over datasets of model ``a``'s against model ``b``'s per-dataset value, per framing,
    source (all / persona / xrisk), measure and variant, with an i.i.d. bootstrap over datasets (95% CI). Tidy:
    ``framing, source, measure, variant, model_a, model_b`` + :data:`RESULT_COLUMNS` (n_samples = datasets)."""
    from interp_steer.evaluation import correlation_ci

    rows = []
    for framing in sorted(joined["framing"].unique()):
        for source in SOURCES:
            part = joined[joined["framing"] == framing]
            part = part if source == "all" else part[part["source"] == source]
            for measure in MEASURES:
                for variant in VARIANTS:
                    x_col, y_col = column(measure, variant, a), column(measure, variant, b)
                    if x_col not in part or y_col not in part:
                        continue
                    points = part[[x_col, y_col]].dropna()
                    if len(points) < 4 or points[x_col].nunique() < 2 or points[y_col].nunique() < 2:
                        continue
                    for method in ("spearman", "pearson"):
                        res = correlation_ci(points[x_col], points[y_col], method=method, n_boot=n_boot, seed=seed)
                        rows.append(res.to_frame(framing=framing, source=source, measure=measure, variant=variant,
                                                 model_a=a, model_b=b))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def disagreements(joined: pd.DataFrame, a: str, b: str, framing: str, k: int = 5,
                  variant: str = "summed") -> pd.DataFrame:
    """The ``k`` datasets of ``framing`` whose mean-slope percentile rank differs most between the two models."""
    part = joined[joined["framing"] == framing].copy()
    x, y = column("mean_slope", variant, a), column("mean_slope", variant, b)
    if x not in part or y not in part:
        return pd.DataFrame()
    part = part.dropna(subset=[x, y])
    part["rank_a"] = part[x].rank(pct=True)
    part["rank_b"] = part[y].rank(pct=True)
    part["rank_gap"] = (part["rank_a"] - part["rank_b"]).abs()
    return part.sort_values(["rank_gap", "dataset"], ascending=[False, True]).head(k).reset_index(drop=True)


def sample_text(spec: str, config: StudyConfig, data_dir: str | Path | None, width: int = 160) -> str:
    """The first scored test pair of ``spec``: prompt and the two completions, shortened, for the report."""
    import warnings

    from interp_steer.runs.registry_pairs import RegistryPairs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test = RegistryPairs(None, config.test_fraction, config.seed, config.n_train, 1,
                             None if data_dir is None else str(data_dir))(spec)[1]
    if not test:
        return "(no test pair)"
    pair = test[0]

    def clip(text: str) -> str:
        text = " ".join(str(text).split()).replace("|", "/")
        return text if len(text) <= width else text[: width - 1] + "…"

    return f"prompt: “{clip(pair.prompt)}”; positive: “{clip(pair.positive)}”; negative: “{clip(pair.negative)}”"


def depth_profiles(sides: list[StudySide]) -> pd.DataFrame:
    """The across-dataset layer profiles of every side with ``relative_depth`` = layer / n_layers and ``model``."""
    frames = []
    for side in sides:
        rows = side.profile[side.profile["level"] == "across_datasets"] if "level" in side.profile else side.profile
        frames.append(rows.assign(model=side.label, relative_depth=rows["layer"] / side.n_layers,
                                  chosen_depth=side.layer / side.n_layers))
    return pd.concat(frames, ignore_index=True)


__all__ = ["StudySide", "check_compatible", "column", "depth_profiles", "disagreements", "join_datasets",
           "load_side", "model_correlations", "sample_text"]

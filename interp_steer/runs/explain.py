"""The ``explain`` job: why are some samples anti-steerable? Breakdown, patching, direct effects, views → report.md.

On the runner as one work unit (the analysis is a chain: the patched samples are picked from the fitted slopes),
which returns every file (CSV tables, PNG figures, two HTML views, ``summary.json``, ``report.md`` last) for the
driver to write atomically beside ``config.json``; a rerun with the same settings reuses a finished report.
Everything here calls library functions (:mod:`interp_steer.analysis`, :mod:`interp_steer.viz`); the CLI
(:mod:`interp_steer.cli.commands_explain`) only parses options.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from interp_steer.runs.analysis_configs import ExplainConfig
from interp_steer.runs.runner import Job, UnitFiles, preflight, run_job


@dataclass(frozen=True)
class ExplainUnit:
    """The whole analysis of one vector on one dataset."""

    key: str = "report"


def heldout_disjointness(provenance, dataset: str, test_fraction: float, seed: int) -> tuple[bool | None, str]:
    """Whether the held-out samples of ``DataSplit(test_fraction, seed)`` are disjoint from the
    vector's training pairs, read from its provenance: ``(True | False | None (unknown), one sentence)``.
    ``dataset``: the pairs' own data set name (framing included, e.g. ``persona:narcissism@free_text``).

    Disjoint when the vector came from another data set (not the same statements in another framing), or from the
    train part of the same split (``extract --holdout``, which records ``extra.split``); otherwise its training pairs
    may include held-out samples.
    """
    split = provenance.extra.get("split") if provenance.dataset == dataset else None
    hint = f"extract with `--holdout {test_fraction:g} --seed {seed}` to make them disjoint"
    if provenance.dataset and provenance.dataset.split("@")[0] != dataset.split("@")[0]:
        return True, f"the vector was extracted from `{provenance.dataset}`, not from `{dataset}`"
    if provenance.dataset and provenance.dataset != dataset:  # the same statements in another framing
        return None, (f"**caution**: the vector was extracted from `{provenance.dataset}`, the same statements in "
                      f"another framing, so some held-out samples may share a statement with its training pairs; "
                      f"{hint} from `{dataset}`")
    if split and split.get("part") == "train" and float(split.get("test_fraction", -1)) == float(test_fraction) \
            and int(split.get("seed", -1)) == int(seed):
        return True, (f"the vector was extracted from the train part of the same split (test fraction "
                      f"{test_fraction:g}, seed {seed}), so the held-out samples are disjoint from its training pairs")
    if split:
        return False, (f"**caution**: the vector's train split (test fraction {split.get('test_fraction')}, seed "
                       f"{split.get('seed')}) differs from this held-out split, so some held-out samples may be "
                       f"among its training pairs; {hint}")
    return None, (f"**caution**: the vector's provenance records no train/test split of `{dataset}`, so some of the "
                  f"held-out samples may be among its {provenance.n_pairs} training pairs; {hint}")


class ExplainJob(Job):
    """``explain`` as a one-unit runner job (see the module docs)."""

    config: ExplainConfig

    def __init__(self, config: ExplainConfig) -> None:
        self.config = config

    def units(self) -> list[ExplainUnit]:
        return [ExplainUnit()]

    def unit_files(self, unit: ExplainUnit) -> list[str]:
        return ["report.md"]

    def compute(self, unit: ExplainUnit, model) -> UnitFiles:
        return explain_files(self.config, model)

    def combine(self, out_dir: Path) -> dict:
        import pandas as pd

        return {"sample_features": pd.read_csv(out_dir / "sample_features.csv"),
                "patching": pd.read_csv(out_dir / "patching.csv")}


def run_explain(config: ExplainConfig, out_dir: Path, echo: Callable[[str], None] = print, *, executor=None) -> dict:
    """Run the analysis and write ``report.md``, CSV tables, PNG figures and two HTML views into ``out_dir``;
    returns ``{"groups", "steerable", "anti", "view_layer"}`` (also in ``summary.json``)."""
    from interp_steer.models import load_model
    from interp_steer.runs.files import file_sha1

    if not config.vector_sha1 and Path(config.vector).exists():
        config.vector_sha1 = file_sha1(config.vector)
    out_dir = preflight(config, out_dir)
    model = load_model(config.model, device=config.device) if executor is None else None
    report = run_job(ExplainJob(config), out_dir, model=model, executor=executor, progress=False)
    report.raise_if_failed()
    summary = json.loads((out_dir / "summary.json").read_text())
    for line in summary.pop("log"):
        echo(line)
    echo(f"wrote {out_dir / 'report.md'}")
    return summary


@torch.no_grad()
def explain_files(config: ExplainConfig, model) -> UnitFiles:
    """The analysis itself: every output file as ``(name, payload)``, ``report.md`` last."""
    import pandas as pd

    from interp_steer.analysis.breakdown import (
        classify_steerability,
        compare_groups,
        sae_feature_differences,
        sample_features,
    )
    from interp_steer.analysis.direct_effect import direct_effects, logit_lens
    from interp_steer.analysis.patching import compare_samples
    from interp_steer.data import DataSplit, load_dataset
    from interp_steer.evaluation import compute_propensities, steerability
    from interp_steer.report.explain import explain_report
    from interp_steer.report.figures import figure_png
    from interp_steer.steering import SteeringVector
    from interp_steer.steering.hook_names import layer_of
    from interp_steer.viz.patching_plots import plot_logit_lens, plot_patching

    started, log = time.perf_counter(), list[str]()
    echo = log.append
    vector = SteeringVector.load(config.vector).select(config.layer)
    patch_multiplier = float(config.patch_multiplier or 0.0)  # set by ExplainConfig.__post_init__
    vector.check_fits(model)
    layer = layer_of(vector.hook_names[0])
    pairs = load_dataset(config.dataset, data_dir=config.data_dir, framing=config.framing)
    test = DataSplit(config.test_fraction, config.seed, n_test=config.n).test(pairs)
    echo(f"{config.dataset}: {len(test)} held-out samples; vector {vector.hook_names[0]} (norm {float(vector.directions[vector.hook_names[0]].norm()):.2f})")
    disjoint, disjoint_note = heldout_disjointness(vector.provenance, ",".join(sorted({p.dataset for p in pairs})),
                                                         config.test_fraction, config.seed)
    if not disjoint:
        echo(disjoint_note.replace("**", ""))

    props = compute_propensities(model, test, vector, config.multipliers)
    per_sample = classify_steerability(steerability(props), eps=config.eps)
    eps = float(per_sample["eps"].iloc[0])
    features = sample_features(model, vector, test, per_sample, props)
    comparison = compare_groups(features)
    sae_table = None
    if config.sae:
        from interp_steer.sae.loading import check_sae_fits, load_sae

        sae = load_sae(config.sae, device=config.device)
        sae_hook = check_sae_fits(sae, model)
        sae_table = sae_feature_differences(model, sae, test, list(features["group"].astype(str)), hook_name=sae_hook)
    echo(f"groups: {comparison.attrs['group_sizes']} (eps {eps:.3g})")

    direct = direct_effects(model, vector, test, multiplier=patch_multiplier).merge(
        features[["sample_id", "slope", "group"]], on="sample_id")
    by_id = {p.id: p for p in test}
    most = features.sort_values("slope")
    steer_id, anti_id = most["sample_id"].iloc[-1], most["sample_id"].iloc[0]
    echo(f"patching {steer_id} (slope {most['slope'].iloc[-1]:+.3f}) and {anti_id} (slope {most['slope'].iloc[0]:+.3f}) …")
    patching = compare_samples(model, vector, by_id[steer_id], by_id[anti_id], multiplier=patch_multiplier)
    lens = pd.concat([logit_lens(model, vector, by_id[i], multiplier=patch_multiplier).assign(role=r)
                      for i, r in ((steer_id, "steerable"), (anti_id, "anti-steerable"))], ignore_index=True)

    files: UnitFiles = [("propensity.csv", props), ("sample_features.csv", features), ("direct_effect.csv", direct),
                        ("patching.csv", patching), ("logit_lens.csv", lens)]
    title = f"share of the steering effect (×{config.patch_multiplier:g}, vector at layer {layer})"
    files += [("patching.png", figure_png(plot_patching(patching, title=title))),
              ("patching_downstream.png", figure_png(plot_patching(patching[patching["layer"] > layer],
                                                             title=title + ", layers after the vector"))),
              ("logit_lens.png", figure_png(plot_logit_lens(lens, title="logit lens at the answer position")))]

    view_layer, html_files, pages = _views(model, vector, by_id, {"steerable": steer_id, "anti-steerable": anti_id},
                                           patching, layer, patch_multiplier)
    files += pages

    lines = explain_report(config, vector, len(test), time.perf_counter() - started, disjoint_note, comparison,
                           sae_table, eps, {"direct": direct, "patching": patching, "features": features},
                           layer=layer, chosen={"steerable": steer_id, "anti-steerable": anti_id},
                           view_layer=view_layer, html_files=html_files)
    summary = {"groups": {str(g): int(c) for g, c in comparison.attrs["group_sizes"].items()},
               "steerable": str(steer_id), "anti": str(anti_id), "view_layer": int(view_layer), "log": log}
    return [*files, ("summary.json", summary), ("report.md", "\n".join(lines))]


def _views(model, vector, by_id: dict, chosen: dict, patching, layer: int, multiplier: float) -> tuple[int, dict, UnitFiles]:
    """``(view layer, {role: file name}, files)``: attention at the layer whose heads carry the most share and the
    projection view, one offline HTML page per chosen sample."""
    from interp_steer.analysis.view_data import attention_views, projection_view
    from interp_steer.viz.views import draw_views, standalone_page

    heads = patching[patching["component"] == "head"]
    view_layer = int(heads.groupby("layer")["share"].apply(lambda s: s.abs().sum()).idxmax()) if not heads.empty else layer
    html_files, files = {}, []
    for role, sample_id in chosen.items():
        data = attention_views(model, vector, by_id[sample_id], view_layer, multiplier=multiplier)
        data.append(projection_view(model, vector, by_id[sample_id], sorted({layer, model.cfg.n_layers - 1}),
                                    multiplier=multiplier))
        views = draw_views(data)
        name = f"views_{role}.html"
        files.append((name, standalone_page(f"{role} sample {sample_id}", views)))
        html_files[role] = name
    return view_layer, html_files, files

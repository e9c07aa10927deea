"""The ``compare`` job: CAA vs SAE-targeted (SAE-TS) vs SAE decoder-direction vs random vectors → report.md.

Builds the vectors from one dataset at one layer (all rescaled to the CAA vector's norm), runs
:func:`interp_steer.analysis.sae_comparison.compare_vectors` and writes ``report.md``, PNG plots, CSV tables,
the vectors and ``config.json`` into the output folder. The CLI (:mod:`interp_steer.cli.commands_compare`)
only parses options.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from interp_steer.errors import ConfigError


@dataclass
class CompareConfig:
    """Options of one comparison run; saved as ``config.json`` beside the report."""

    dataset: str
    layer: int = 12
    sae: str = "smollm2-135m-l12"
    targets: list[int] | None = None  # default: top ``n_targets`` features by decoder cosine with the CAA vector
    n_targets: int = 1
    n_decoder_baselines: int = 1
    n_train: int = 60
    n_test: int = 30
    n_texts: int = 40
    max_text_tokens: int = 32
    n_probe: int = 128
    ridge: float = 1e-2  # ridge of the SAE-TS effect-model fit
    multipliers: list[float] = field(default_factory=lambda: [-2.0, 0.0, 2.0])
    n_generations: int = 2
    max_new_tokens: int = 24
    model: str = "smollm2-135m"
    framing: str | None = None
    seed: int = 0
    data_dir: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.n_train < 2 or self.n_test < 2:
            raise ConfigError(f"--n-train {self.n_train} / --n-test {self.n_test}: need at least 2 pairs each")
        if self.n_probe < 8:
            raise ConfigError(f"--n-probe {self.n_probe}: need at least 8 probe vectors for the effect model")
        if self.ridge < 0:
            raise ConfigError(f"--ridge {self.ridge}: must be ≥ 0")
        if self.n_texts < 1:
            raise ConfigError(f"--n-texts {self.n_texts}: need at least one fixed text")
        if not any(m > 0 for m in self.multipliers) or len(set(self.multipliers)) < 2:
            raise ConfigError(f"--multipliers {self.multipliers}: need ≥ 2 distinct values, one of them positive")
        if self.targets is not None and not self.targets:
            raise ConfigError("--targets: give at least one feature id or leave it out")
        if self.n_targets < 1:
            raise ConfigError(f"--n-targets {self.n_targets}: must be ≥ 1")


def fixed_texts(tokenizer, config: CompareConfig, fallback_pairs: Sequence) -> list[str]:
    """Short corpus texts (6..max_text_tokens tokens) for the feature effects; rendered pairs if no data root."""
    from interp_steer.data import render_prompt
    from interp_steer.errors import DataFormatError
    from interp_steer.sae.corpus import build_corpus

    try:
        corpus = build_corpus(tokenizer, data_root=Path(config.data_dir) if config.data_dir else None, seed=config.seed)
    except DataFormatError:
        corpus = [render_prompt(tokenizer, p) + side for p in fallback_pairs for side in (p.positive, p.negative)]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in corpus]
    short = [t for t, n in zip(corpus, lengths) if 6 <= n <= config.max_text_tokens]
    return (short or corpus)[:config.n_texts]


def _summary_line(result, top: float) -> str:
    """One sentence: SAE-TS vs CAA on steerability and on target / off-target feature effects (numbers as they are)."""
    steer = result.steerability.set_index("vector")
    effects = result.feature_effects[result.feature_effects.multiplier == top].set_index("vector")
    if not {"caa", "sae_ts"} <= set(steer.index):
        return ""
    ratio = steer.loc["sae_ts", "mean_slope"] / steer.loc["caa", "mean_slope"] if steer.loc["caa", "mean_slope"] else float("nan")
    return (f"**Summary**: mean slope SAE-TS {steer.loc['sae_ts', 'mean_slope']:.3f} vs CAA "
            f"{steer.loc['caa', 'mean_slope']:.3f} ({ratio:.2f}× CAA); anti-steerable fraction SAE-TS "
            f"{steer.loc['sae_ts', 'anti_steerable_fraction']:.2f} vs CAA {steer.loc['caa', 'anti_steerable_fraction']:.2f}; "
            f"at ×{top:g} target increase SAE-TS {effects.loc['sae_ts', 'target_increase']:.3f} vs CAA "
            f"{effects.loc['caa', 'target_increase']:.3f}, off-target L2 SAE-TS {effects.loc['sae_ts', 'off_target_l2']:.3f} "
            f"vs CAA {effects.loc['caa', 'off_target_l2']:.3f}.")


def _md_sections(config: CompareConfig, result, info: dict) -> list[str]:
    from interp_steer.analysis.markdown_tables import markdown_table

    top = max(m for m in config.multipliers if m > 0)
    effects = result.feature_effects[result.feature_effects.multiplier == top].drop(columns=["multiplier"])
    steer = result.steerability[["vector", "n_samples", "mean_slope", "median_slope", "std_slope",
                                 "anti_steerable_fraction", "sign_flip_fraction", "mean_r2"]]
    cos = result.cosine.pivot(index="vector_a", columns="vector_b", values="cosine")
    order = list(dict.fromkeys(result.cosine["vector_a"]))
    cos = cos.loc[order, order].rename_axis(None, axis=1).reset_index().rename(columns={"vector_a": "vector"})
    gens = result.generations.copy()
    gens["completion"] = gens["completion"].str.replace("\n", " ").str.slice(0, 160)
    return [
        f"# SAE-targeted vs CAA steering — {config.dataset}, layer {config.layer}",
        "",
        f"Model `{config.model}`, SAE `{config.sae}` at `{result.hook_name}`; {info['n_train']} train / "
        f"{info['n_test']} test pairs; {info['n_texts']} fixed texts (≤ {config.max_text_tokens} tokens); "
        f"effect model from {config.n_probe} probe vectors, ridge {config.ridge:g} (R² train {info['r2_train']:.3f}, held-out "
        f"{info['r2_test']:.3f}); all vectors rescaled to the CAA norm {result.norm:.3f}; multipliers "
        f"{config.multipliers}. Runtime {info['seconds']:.0f} s.",
        "",
        f"Target features: {info['targets_text']}.",
        "",
        _summary_line(result, top),
        "",
        "## Steerability on the test pairs (equal norm)",
        "",
        "slope = least-squares propensity change per unit multiplier (free text: log-prob difference; A/B: "
        "logit difference); anti-steerable = share of samples with slope < 0.",
        "",
        markdown_table(steer),
        "",
        "![propensity](propensity_by_vector.png)",
        "",
        "![slopes](slopes_by_vector.png)",
        "",
        f"## SAE feature effects at ×{top:g} (norm {result.norm * top:.3f}) on the fixed texts",
        "",
        "target_increase = mean Δ activation over the target features; off-target = non-target features "
        "(mean |Δ| and L2 of Δ); specificity = target_increase / off_target_l2; target_decoder_cosine = mean "
        "cosine of the vector with the targets' decoder directions.",
        "",
        markdown_table(effects),
        "",
        "![feature effects](feature_effects.png)",
        "",
        "## Cosine similarity",
        "",
        markdown_table(cos),
        "",
        "![cosine](cosine.png)",
        "",
        "## Generation examples (greedy)",
        "",
        markdown_table(gens),
        "",
    ]


def run_compare(config: CompareConfig, out_dir: Path, echo: Callable[[str], None] = print) -> dict:
    """Build the vectors, compare them and write the report; returns a dict of headline numbers."""
    import torch

    from interp_steer.analysis.sae_comparison import compare_vectors
    from interp_steer.data import load_dataset, train_test_split
    from interp_steer.evaluation import random_like
    from interp_steer.methods.caa import extract_caa
    from interp_steer.methods.sae_targeted import build_sae_targeted_vector, decoder_direction_vector
    from interp_steer.models import load_model
    from interp_steer.sae import check_sae_fits, decoder_cosine_table, load_sae
    from interp_steer.sae.feature_effects import mean_feature_activations
    from interp_steer.steering import as_hook_name
    from interp_steer.viz.comparison_plots import (
        plot_cosine_heatmap, plot_feature_effects, plot_mean_propensity_by_vector, plot_slopes_by_vector,
    )
    from interp_steer.viz.plots import save_figure

    start = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    model = load_model(config.model, device=config.device)
    sae = load_sae(config.sae, device=config.device)
    hook = check_sae_fits(sae, model, as_hook_name(config.layer))
    pairs = load_dataset(config.dataset, data_dir=config.data_dir, framing=config.framing)
    if len(pairs) < 4:
        raise ConfigError(f"dataset {config.dataset!r} has {len(pairs)} pairs; need at least 4")
    fraction = config.n_test / (config.n_train + config.n_test)
    train, test = train_test_split(pairs, test_fraction=fraction, seed=config.seed)
    train, test = train[:config.n_train], test[:config.n_test]
    echo(f"{len(train)} train / {len(test)} test pairs of {config.dataset}")
    caa = extract_caa(model, train, [config.layer], progress=False)
    norm = float(caa[hook].norm())
    texts = fixed_texts(model.tokenizer, config, train)
    clean = mean_feature_activations(model, sae, texts, None, hook, max_tokens=config.max_text_tokens)[0]
    cosines = decoder_cosine_table(caa, sae, hook, top=sae.cfg.d_sae)
    if config.targets is None:
        targets = cosines.sort_values("cosine", ascending=False)["feature"].head(config.n_targets).tolist()
    else:
        targets = [int(t) for t in config.targets]
    cos_of = dict(zip(cosines["feature"], cosines["cosine"]))
    targets_text = ", ".join(f"{t} (decoder cos with CAA {cos_of[t]:+.3f}, clean mean act. {float(clean[t]):.3f})"
                             for t in targets) + (" — given" if config.targets else " — top by decoder cosine")
    echo(f"CAA norm {norm:.3f}; targets {targets_text}; fitting effect model on {len(texts)} texts")
    sae_ts, effect_model = build_sae_targeted_vector(
        model, sae, targets, texts, hook, scale=norm, norm=norm, n_random=config.n_probe // 2,
        n_decoder=config.n_probe - config.n_probe // 2, ridge=config.ridge, seed=config.seed)
    echo(f"effect model R² train {effect_model.r2_train:.3f} / held-out {effect_model.r2_test:.3f}")
    vectors = {"caa": caa, "sae_ts": sae_ts}
    for feature in targets[:config.n_decoder_baselines]:
        vectors[f"sae_decoder_f{feature}"] = decoder_direction_vector(sae, int(feature), hook, norm)
    vectors["random"] = random_like(caa, seed=config.seed)
    torch.manual_seed(config.seed)
    result = compare_vectors(model, sae, vectors, test, texts, targets, config.multipliers, norm=norm,
                             hook_name=hook, n_generations=config.n_generations,
                             max_new_tokens=config.max_new_tokens, max_tokens=config.max_text_tokens)
    for name, vector in vectors.items():
        vector.save(out_dir / "vectors" / f"{name}.safetensors")
    for name, table in result.tables().items():
        table.to_csv(out_dir / f"{name}.csv", index=False)
    save_figure(plot_cosine_heatmap(result.cosine), out_dir / "cosine.png")
    save_figure(plot_feature_effects(result.feature_effects), out_dir / "feature_effects.png")
    save_figure(plot_mean_propensity_by_vector(result.propensities), out_dir / "propensity_by_vector.png")
    save_figure(plot_slopes_by_vector(result.per_sample), out_dir / "slopes_by_vector.png")
    info = {"n_train": len(train), "n_test": len(test), "n_texts": len(texts), "r2_train": effect_model.r2_train,
            "r2_test": effect_model.r2_test, "targets_text": targets_text, "seconds": time.time() - start}
    (out_dir / "report.md").write_text("\n".join(_md_sections(config, result, info)))
    headline = {row.vector: {"mean_slope": row.mean_slope, "anti_steerable_fraction": row.anti_steerable_fraction}
                for row in result.steerability.itertuples()}
    echo(json.dumps(headline, indent=2))
    echo(f"wrote {out_dir / 'report.md'} ({info['seconds']:.0f} s)")
    return {"steerability": headline, "targets": targets, "norm": norm, **info}

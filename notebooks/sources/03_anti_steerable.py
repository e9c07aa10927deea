# %% [markdown]
# # 03 · Why is a sample anti-steerable? One sample through the battery
#
# Issue 26's pre-registered battery (`analyses/prereg/anti_steerable_battery.md`, results in
# `analyses/results/anti_steerable/battery/`) asked, over the 6,750 free-text samples of the Tan et al. (2024)
# study, which unsteered features go with *anti-steerable* samples (slope of the propensity on the multiplier < 0)
# and tested three interventions. This notebook walks **one** anti-steerable sample through the same steps:
#
# 1. **decomposition** — slope = s_pos − s_neg (the slopes of the matching and non-matching completions' log-probs);
# 2. **features** — where the sample sits among its dataset on the battery's features, next to the battery's verdicts;
# 3. **interventions** — (b) the vector projected off its top-100 logit-lens tokens (and a random control),
#    (a) the non-matching statement's negation removed;
# 4. **patching** — the steering removed from (or confined to) the non-matching completion's own token positions;
# 5. **views** — circuitsvis: the residual stream's projection on the vector per token, both statements.
#
# The case is chosen by a fixed rule on the **discovery (train) half** of the battery's seed-0 dataset split, so it
# lies outside the datasets the interventions were evaluated on. Tables are read from the committed results; the
# model steps run live on the embedded model.

# %% [markdown]
# **Model switch.** `smollm2-135m` (the committed battery). `gemma3-270m` needs its battery tables in
# `analyses/results/anti_steerable/battery_gemma` — pending: the Gemma study is still running (see the README of
# `analyses/results/anti_steerable/` for the command).

# %%
MODEL = "smollm2-135m"  # or "gemma3-270m"
STUDY_NAME, BATTERY_NAME = {"smollm2-135m": ("tan2024_full", "battery"),
                            "gemma3-270m": ("tan2024_gemma", "battery_gemma")}[MODEL]

# %%
import json
from pathlib import Path

import pandas as pd
import torch

import interp_steer
from interp_steer.analysis.battery import free_text_specs, study_split
from interp_steer.analysis.battery_heldout import dataset_halves
from interp_steer.config.keys import dataset_stem

torch.set_num_threads(1)
RESULTS = Path(interp_steer.__file__).resolve().parents[1] / "analyses" / "results"
STUDY, BATTERY = RESULTS / STUDY_NAME, RESULTS / "anti_steerable" / BATTERY_NAME
cfg = json.loads((STUDY / "steerability" / "config.json").read_text())
specs = free_text_specs(STUDY)
discovery, heldout = dataset_halves(specs, 0)
print(f"{len(specs)} free-text datasets: {len(discovery)} discovery, {len(heldout)} held out; layer {cfg['layer']}, "
      f"multipliers {cfg['multipliers']}")

# %% [markdown]
# ## 1 · Decomposition and the choice of the case
#
# Rule (fixed before looking at any sample): the first discovery-half dataset, in the study's unit order, that has
# activation features; in it, the anti-steerable sample of category *non-matching raised* (s_neg > 0, s_pos ≥ 0 —
# the commonest kind, 55% of anti-steerable samples) with the largest s_neg.

# %%
decomposition = pd.read_csv(BATTERY / "decomposition.csv")
shares = pd.read_csv(BATTERY / "decomposition_shares.csv")
featured = {p.stem for p in (BATTERY / "features").glob("*.csv")}
spec = next(s for s in specs if s in discovery and dataset_stem(s) in featured)
rows = decomposition[(decomposition["dataset"] == spec) & (decomposition["category"] == "non_matching_raised")]
case = rows.sort_values("s_neg", ascending=False).iloc[0]
print(spec, "→", case["sample_id"])
display(shares.round(3))
case[["slope", "s_pos", "s_pos_low", "s_pos_high", "s_neg", "s_neg_low", "s_neg_high", "s_pos_per_token",
      "s_neg_per_token", "baseline_propensity"]].astype(float).round(3).to_frame("value")

# %% [markdown]
# ## 2 · Features: where the sample sits in its dataset
#
# The battery's sample-level features, the sample's value and its percentile among the dataset's 50 test samples,
# next to the battery's within-dataset AUC for *anti-steerable* (95% dataset-bootstrap CI, Holm-adjusted p).

# %%
features = pd.read_csv(BATTERY / "features" / f"{dataset_stem(spec)}.csv").merge(
    decomposition[["sample_id", "baseline_propensity"]], on="sample_id")  # H8 comes from the study's table
hypotheses = pd.read_csv(BATTERY / "hypotheses.csv")
sample_level = hypotheses[hypotheses["level"] == "sample"]
own = features.set_index("sample_id").loc[case["sample_id"]]
percentile = features[sample_level["feature"]].rank(pct=True).set_index(features["sample_id"]).loc[case["sample_id"]]
view = sample_level[["id", "feature", "estimate", "low", "high", "p_holm", "verdict"]].copy()
view["sample_value"] = own[view["feature"]].to_numpy(dtype=float)
view["percentile_in_dataset"] = percentile[view["feature"]].to_numpy(dtype=float)
view.round(3)

# %% [markdown]
# ## 3 · Interventions on the model
#
# The CAA vector is re-extracted as in the battery (mean over the first 50 training pairs of the completion-mean
# residual difference at the steering layer); the re-measured slope of the sample must equal the study's.

# %%
from interp_steer.analysis.battery_features import completion_activations
from interp_steer.analysis.interventions import (
    project_off_logit_lens,
    project_off_random,
    remove_negation,
    steered_slopes,
)
from interp_steer.models import load_model

model = load_model(MODEL)
layer, multipliers = cfg["layer"], cfg["multipliers"]
_, train, test = study_split(spec, cfg["n_train"], cfg["n_test"], cfg["test_fraction"], cfg["seed"])
pair = {p.id: p for p in test}[case["sample_id"]]
acts = completion_activations(model, train, f"blocks.{layer}.hook_resid_post")
direction = (acts["pos_mean"] - acts["neg_mean"]).mean(0)
print("matching:    ", pair.positive, "\nnon-matching:", pair.negative)
variants = {"CAA vector": direction, "off top-100 logit-lens tokens": project_off_logit_lens(model, direction, 100),
            "off a random 100-dim subspace": project_off_random(direction, 100, seed=0)}
slopes = pd.concat([steered_slopes(model, [pair], d, layer, multipliers).assign(vector=name, norm=float(d.norm()))
                    for name, d in variants.items()])
edited = remove_negation(pair.negative)
if edited is not None:
    slopes = pd.concat([slopes, steered_slopes(model, [pair.with_(negative=edited)], direction, layer, multipliers)
                        .assign(vector="CAA vector, negation of the non-matching removed", norm=float(direction.norm()))])
print(f"study slope {case['slope']:.4f}; negation edit: {edited!r}")
slopes[["vector", "norm", "slope", "s_pos", "s_neg"]].round(3)

# %% [markdown]
# ## 4 · Patching the non-matching completion's positions
#
# Prefix-cached patching over the study's multipliers (`interp_steer.analysis.completion_patching`): the steering
# removed at the non-matching statement's own tokens (at the steering layer; at every layer from it on — then only
# the first token's prediction, read at the last prompt token, stays steered), the same for the matching statement
# (control), and the reverse: only the non-matching statement's tokens steered. Then the battery-level result of
# the same patches on held-out datasets (dataset-clustered 95% CIs).

# %%
from interp_steer.analysis.completion_patching import sample_patch_slopes, standard_patches
from interp_steer.steering import Provenance, SteeringVector

vector = SteeringVector({f"blocks.{layer}.hook_resid_post": direction}, Provenance(method="caa", layers=[layer]))
patched = sample_patch_slopes(model, vector, pair, standard_patches(layer), multipliers)
display(patched[["patch", "slope", "s_pos", "s_neg"]].round(3))
summary = BATTERY / "interventions" / "patching" / "summary.csv"
if summary.exists():
    columns = ["patch", "group", "n", "s_neg_before", "s_neg_after", "s_neg_removed", "s_neg_removed_low",
               "s_neg_removed_high", "sign_flipped", "sign_flipped_low", "sign_flipped_high"]
    display(pd.read_csv(summary)[columns].round(3))

# %% [markdown]
# ## 5 · Views: the vector's per-token projection on both statements
#
# Each token's residual stream at the steering layer and the last layer, projected on the unit vector, unsteered
# and steered (multiplier 1.5). The views are saved to `outputs/anti_steerable_views.html` and shown below in a frame
# (circuitsvis embeds its script in every view, ~1.3 MB, so the notebook links the page instead of inlining it).

# %%
from IPython.display import IFrame

from interp_steer.analysis.view_data import free_text_projection_view
from interp_steer.viz.views import draw_views, save_page

views = draw_views(free_text_projection_view(model, vector, pair, [layer, model.cfg.n_layers - 1], multiplier=1.5))
page = save_page("outputs/anti_steerable_views.html", f"anti-steerable sample {pair.id}", views)
print(page, page.stat().st_size // 1024, "KiB")
print("\n".join(heading for heading, _ in views))
IFrame(str(page), width="100%", height=520)

# %% [markdown]
# # 03 · Why are some samples anti-steerable?
#
# On free-text data the embedded model *does* steer, and still a sizeable minority of samples moves the wrong way.
# This notebook works through one case of the committed `why` reports (`analyses/results/anti_steerable/`): the
# built-in sentiment data with a CAA vector at layer 9. It (1) groups the held-out samples with a margin — a
# bootstrap CI of each sample's slope, (2) tests candidate explanations on a held-out half, (3) asks whether
# steerability can be predicted before steering, and (4) patches the steering effect on the prefix key/value
# cache. The tables are read from the committed report and recomputed here with the library; the patching and
# views run live on the embedded model.

# %%
from pathlib import Path

import pandas as pd
import torch

import interp_steer

torch.set_num_threads(1)
CASE = Path(interp_steer.__file__).resolve().parents[1] / "analyses" / "results" / "anti_steerable" / "sentiment_l9"
propensities = pd.read_csv(CASE / "propensity.csv", dtype={"sample_id": str})
features = pd.read_csv(CASE / "features.csv", dtype={"sample_id": str})
print(propensities["sample_id"].nunique(), "held-out samples,", sorted(propensities["multiplier"].unique()), "multipliers")

# %% [markdown]
# **Groups with a margin.** A sample is steerable if the 95% bootstrap CI of its slope (residual bootstrap) lies
# above 0, anti-steerable if below, insensitive otherwise. The sign alone counts more anti-steerable samples.

# %%
from interp_steer.analysis.slope_groups import group_sizes, slope_intervals

groups = slope_intervals(propensities, n_boot=1000, seed=0)
print(groups.attrs["rule"])
print(group_sizes(groups["group"]), "| negative slope by sign alone:", int((groups["slope"] < 0).sum()))
groups.sort_values("slope").head(5)

# %% [markdown]
# **Candidate factors on held-out samples.** The direction of each factor is read on a discovery half; its
# Spearman ρ with the slope and Cohen's d (steerable − anti-steerable) are measured on the other half, with
# bootstrap CIs. A factor *holds* if the held-out ρ CI excludes 0 on the predicted side.

# %%
from interp_steer.analysis.candidates import STEERED_FEATURES, UNSTEERED_FEATURES, discovery_split, heldout_factor_tests

table = features.set_index("sample_id").loc[groups["sample_id"]].reset_index()
labels, slope = groups["group"].astype(str).to_numpy(), groups["slope"].to_numpy()
discovery = discovery_split(labels, 0.5, seed=0)
tests = heldout_factor_tests(table, slope, labels, UNSTEERED_FEATURES + STEERED_FEATURES, discovery=discovery, n_boot=1000)
tests[["factor", "discovery_rho", "heldout_rho", "heldout_rho_low", "heldout_rho_high", "heldout_d", "held"]].round(2)

# %% [markdown]
# **SAE latents** (bundled layer-12 SAE, last prompt token) chosen on the discovery half and tested on the
# held-out half, with the tokens they fire on most — from the committed report.

# %%
pd.read_csv(CASE / "sae_features.csv")[["feature", "discovery_d", "heldout_d", "heldout_d_low", "heldout_d_high", "held"]].round(2)

# %% [markdown]
# **Predicting steerability before steering.** Out-of-fold (5-fold) logistic regression for *anti-steerable*
# (AUC) and ridge for the slope (R²) from unsteered features only, against the baseline propensity alone and a
# random score; `vs_baseline` is the paired difference with its CI.

# %%
from interp_steer.analysis.predictor import evaluate_predictors

predictor, _ = evaluate_predictors(table[UNSTEERED_FEATURES], slope, {
    "baseline propensity": ["baseline_propensity"], "unsteered features": UNSTEERED_FEATURES}, n_boot=1000)
predictor[["predictor", "metric", "value", "ci_low", "ci_high", "vs_baseline", "vs_ci_low", "vs_ci_high"]].round(3)

# %% [markdown]
# **Activation patching** of the most steerable and the most anti-steerable sample (committed report): the
# share of the steering effect each site carries when copied from the steered into the clean run. The dashed
# line separates the last prompt token (the only prompt position steering changes) from the completion.

# %%
from interp_steer.viz.anti_steerable_plots import plot_patching_side_by_side

patching = pd.read_csv(CASE / "patching.csv")
plot_patching_side_by_side(patching, title="share of the steering effect, sentiment @ layer 9");

# %% [markdown]
# **Live: prefix-cached patching.** The same CAA vector (40 training pairs), the anti-steerable sample, a few
# sites: the prompt prefix is computed once and each patched run recomputes only the suffix. Same numbers as
# full-sequence reruns, in a fraction of the time.

# %%
import json

from interp_steer.analysis.patching import PatchSite
from interp_steer.analysis.prefix_patching import patching_speedup
from interp_steer.data import load_dataset, train_test_split
from interp_steer.methods import extract_caa
from interp_steer.models import load_model

summary = json.loads((CASE / "summary.json").read_text())
model = load_model()
train, test = train_test_split(load_dataset("builtin:sentiment"), test_fraction=0.5, seed=0)
vector = extract_caa(model, train[:40], layers=[9], progress=False)
anti = {p.id: p for p in test}[summary["anti_sample"]]
start = summary["speedup"]["prefix_tokens"]
sites = [PatchSite(f"blocks.{layer}.{hook}", (int(start) + k,)) for layer in (12, 20) for hook in ("hook_attn_out", "hook_mlp_out") for k in range(3)]
patching_speedup(model, vector, anti, sites, multiplier=1.5)

# %% [markdown]
# **Views** (circuitsvis, offline HTML): attention from the first completion tokens with and without steering,
# and the residual stream's projection on the vector per token.

# %%
from interp_steer.viz.free_text_views import free_text_attention_views, free_text_projection_view
from interp_steer.viz.views import save_page

views = free_text_attention_views(model, vector, anti, summary["view_layer"], multiplier=1.5)
views += free_text_projection_view(model, vector, anti, [9, 29], multiplier=1.5)
page = save_page("outputs/anti_steerable_views.html", "anti-steerable sample", views)
print(page, page.stat().st_size // 1024, "KiB")

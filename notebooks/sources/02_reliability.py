# %% [markdown]
# # 02 · Reliability: propensity curves, per-sample steerability, spurious factors, a layer scan
#
# Tan et al. (2024) ask not only whether a steering vector moves the *average* behaviour, but how reliably it
# moves each sample. Here: the same like/dislike content in two framings on the embedded model: free text
# (log-prob of a positive vs a negative completion) and A/B answer letters.
#
# **Model switch:** `MODEL = "gemma3-270m"` runs it on Gemma 3 270M (base model, plain prompt layout); the steering layer is
# 12 of 30 on SmolLM2, 9 of 18 on Gemma 3 (its study's free-text scan peak); the scan's layers sit at the same
# relative depths on both.

# %%
import torch
torch.set_num_threads(1)
import pandas as pd
from interp_steer.models import load_model
from interp_steer.data import load_dataset, train_test_split
from interp_steer.methods import extract_caa
from interp_steer.evaluation import steerability, summarize_steerability, spurious_factor_variance, random_baseline
from interp_steer.evaluation.fast_engine import fast_propensities  # prefix-cached; same table as compute_propensities
from interp_steer.viz.plots import plot_propensity_curves, plot_steerability_distribution

MODEL = "smollm2-135m"  # or "gemma3-270m"
LAYER = {"smollm2-135m": 12, "gemma3-270m": 9}[MODEL]  # Gemma: its study's layer scan (tan2024_gemma/layer_choice.json)
model = load_model(MODEL)
MULTIPLIERS = [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]

# %%
tables = {}
for framing in ("free_text", "ab"):
    train, test = train_test_split(load_dataset("builtin:sentiment", framing=framing), test_fraction=0.2, seed=0)
    vector = extract_caa(model, train[:60], layers=[LAYER], progress=False)
    tables[framing] = fast_propensities(model, test[:24], vector, MULTIPLIERS, progress=False)
propensities = pd.concat(tables.values(), ignore_index=True)
per_sample = steerability(propensities)
summarize_steerability(per_sample, by=["dataset"])

# %% [markdown]
# Free text steers clearly (slopes of several nats per unit multiplier, almost no anti-steerable samples);
# the A/B letter propensity of this small model barely moves.

# %%
fig = plot_propensity_curves(tables["free_text"], title=f"free text, layer {LAYER}")
fig

# %%
plot_steerability_distribution(per_sample, title="per-sample steerability by framing")

# %% [markdown]
# **Spurious factors.** How much of the per-sample steerability variance in the A/B framing is explained by
# whether the positive answer is (A), and by whether it means "Yes"?

# %%
spurious_factor_variance(per_sample[per_sample["kind"] == "ab"])

# %% [markdown]
# **Random-vector baseline** with the same norm: a real direction should steer far more than a random one.

# %%
train, test = train_test_split(load_dataset("builtin:sentiment", framing="free_text"), test_fraction=0.2, seed=0)
vector = extract_caa(model, train[:60], layers=[LAYER], progress=False)
baseline = random_baseline(model, test[:12], vector, MULTIPLIERS, seeds=(0,), engine=fast_propensities, progress=False)
summarize_steerability(steerability(baseline), by=["vector"])

# %% [markdown]
# **A small layer scan** (free text, four layers at 10–70% depth, all in one fast-engine call): steerability grows
# with depth on SmolLM2.

# %%
from interp_steer.methods import collect_contrastive_activations, mean_difference
from interp_steer.steering import SteeringVector
layers = [round(depth * model.cfg.n_layers) for depth in (0.1, 0.3, 0.5, 0.7)]
directions = mean_difference(collect_contrastive_activations(model, train[:40], layers, progress=False))
vectors = {int(h.split(".")[1]): SteeringVector({h: d}) for h, d in directions.items()}
scan = fast_propensities(model, test[:12], vectors, MULTIPLIERS, progress=False)
summarize_steerability(steerability(scan), by=["layer"])[["layer", "mean_slope", "anti_steerable_fraction", "mean_r2"]]

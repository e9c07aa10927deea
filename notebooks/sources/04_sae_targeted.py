# %% [markdown]
# # 04 · SAE-targeted steering vs CAA
#
# SAE-TS (Chalnev, Siu & Conmy 2024): measure how steering directions change SAE feature activations, fit a
# linear effect model effect ≈ v·W + b, and solve for a vector that raises chosen target features while
# cancelling the generic effect b. Here with the bundled layer-12 SAE of the embedded model, at a small size.

# %%
import torch
torch.set_num_threads(1)
from interp_steer.models import load_model
from interp_steer.data import load_dataset, train_test_split
from interp_steer.methods import extract_caa
from interp_steer.methods.sae_targeted import build_sae_targeted_vector, decoder_direction_vector
from interp_steer.sae.loading import load_sae
from interp_steer.sae.projections import decoder_cosine_table
from interp_steer.sae.feature_effects import mean_feature_activations
from interp_steer.evaluation import steerability, summarize_steerability
from interp_steer.evaluation.fast_engine import fast_propensities
from interp_steer.steering import chat_prompt
import pandas as pd

model = load_model()
sae = load_sae("smollm2-135m-l12")
hook = "blocks.12.hook_resid_post"
train, test = train_test_split(load_dataset("builtin:sentiment", framing="free_text"), test_fraction=0.2, seed=0)
caa = extract_caa(model, train[:60], layers=[12], progress=False)
norm = caa.norms()[hook]
aligned = decoder_cosine_table(caa, sae, top=5)
aligned

# %% [markdown]
# Fit the effect model on random and decoder probe directions over a few fixed texts, then build the SAE-TS
# vector for the feature most aligned with CAA, and the plain decoder direction of that feature, at CAA's norm.

# %%
texts = [chat_prompt(model, p.prompt) + p.positive for p in train[60:76]]
target = int(aligned.loc[aligned["cosine"].idxmax(), "feature"])
sae_ts, effect_model = build_sae_targeted_vector(model, sae, [target], texts, scale=norm, n_random=24, n_decoder=24)
decoder = decoder_direction_vector(sae, target, hook, norm)
print("target feature", target, "effect-model R² train/test:", round(effect_model.r2_train, 3), round(effect_model.r2_test, 3))
print("cosines:", {"sae_ts·caa": round(sae_ts.cosine(caa)[hook], 3), "decoder·caa": round(decoder.cosine(caa)[hook], 3)})

# %% [markdown]
# Target-feature increase and off-target change on the same texts, and steerability on held-out pairs.

# %%
vectors = {"caa": caa, "sae_ts": sae_ts, "decoder": decoder}
stack = torch.stack([v[hook] for v in vectors.values()])
base = mean_feature_activations(model, sae, texts[:8], None, hook)
steered = mean_feature_activations(model, sae, texts[:8], stack, hook)
delta = steered - base
rows = []
for i, name in enumerate(vectors):
    off = torch.cat([delta[i, :target], delta[i, target + 1:]])
    table = fast_propensities(model, test[:12], vectors[name], [-1, 0, 1], progress=False)
    summary = summarize_steerability(steerability(table), by=["hook_name"]).iloc[0]
    rows.append({"vector": name, "target_increase": float(delta[i, target]), "off_target_mean_abs": float(off.abs().mean()),
                 "mean_slope": summary["mean_slope"], "anti_steerable_fraction": summary["anti_steerable_fraction"]})
pd.DataFrame(rows)

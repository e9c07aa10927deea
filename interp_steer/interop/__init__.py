"""Use a vector elsewhere: llama.cpp control vectors, Hugging Face modules, the peers' formats, reproducibility bundles.

* :mod:`~interp_steer.interop.gguf_vectors`: :func:`to_gguf` / :func:`from_gguf`, the control-vector files that
  llama.cpp's ``--control-vector`` reads (and repeng writes);
* :mod:`~interp_steer.interop.hf`: :func:`hf_steer`, the same steering on the Hugging Face ``transformers`` model
  of the same weights, through forward hooks on its decoder layers, with the position rules of
  :func:`interp_steer.steering.steer` (the same code);
* :mod:`~interp_steer.interop.peers`: the layer → tensor dicts of steering-vectors and repeng's ``ControlVector``,
  as plain dicts, without importing either package;
* :mod:`~interp_steer.interop.bundle`: a directory with a vector, its provenance, the config that produced it, a
  hash of the training rows and the package and model versions, and its re-extraction check.

Every mapping between another tool's layer numbers and TransformerLens hook names is written out in the
docstring of the function that does it. Layering: the first three modules use only :mod:`interp_steer.steering`;
the bundle module also uses data, models and methods (it re-extracts); nothing here imports the CLI.
"""

from interp_steer.interop.gguf_vectors import control_vector_buffer, from_gguf, gguf_layer_of, hook_of_gguf_layer, to_gguf
from interp_steer.interop.hf import HF_SITES, hf_module_path, hf_steer
from interp_steer.interop.peers import from_repeng, from_steering_vectors, to_repeng, to_steering_vectors

__all__ = [
    "HF_SITES", "control_vector_buffer", "from_gguf", "from_repeng", "from_steering_vectors", "gguf_layer_of",
    "hf_module_path", "hf_steer", "hook_of_gguf_layer", "to_gguf", "to_repeng", "to_steering_vectors",
]

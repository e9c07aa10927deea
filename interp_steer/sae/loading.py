"""Load sae-lens SAEs (local sae-lens directory, the bundled pretrained SAE, or a sae-lens release) and check fit.

A sae-lens directory holds ``cfg.json`` + ``sae_weights.safetensors`` (what ``SAE.save_model`` and the
training runner write). ``check_sae_fits`` turns shape and hook mismatches into one-line package errors.
"""

from __future__ import annotations

from pathlib import Path

from interp_steer.errors import ConfigError, ModelLoadError, SteeringVectorError

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
SAE_CFG_FILE = "cfg.json"
SAE_WEIGHTS_FILE = "sae_weights.safetensors"


def bundled_sae_names() -> list[str]:
    """Names of the SAEs shipped with the package under ``interp_steer/sae/pretrained/``."""
    if not PRETRAINED_DIR.exists():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / SAE_CFG_FILE).exists())


def load_sae(spec: str | Path, device: str = "cpu", sae_id: str | None = None):
    """Load an inference SAE.

    ``spec``: a directory in sae-lens format, the name of a bundled SAE (e.g. ``"smollm2-135m-l12"``),
    or, with ``sae_id``, a sae-lens pretrained release name (needs network access or the HF cache).
    """
    from sae_lens import SAE

    if sae_id is not None:
        try:
            return SAE.from_pretrained(release=str(spec), sae_id=sae_id, device=device)
        except Exception as exc:  # network / unknown release: one clean line
            raise ModelLoadError(f"sae-lens release {spec!r} / sae_id {sae_id!r} could not be loaded: {exc}") from None
    path = Path(spec)
    if not path.exists() and str(spec) in bundled_sae_names():
        path = PRETRAINED_DIR / str(spec)
    if not path.is_dir():
        known = ", ".join(bundled_sae_names()) or "none"
        raise ModelLoadError(
            f"SAE {str(spec)!r} is neither a directory nor a bundled SAE (bundled: {known}); "
            "pass a sae-lens directory or a release name with --sae-id"
        )
    for needed in (SAE_CFG_FILE, SAE_WEIGHTS_FILE):
        if not (path / needed).exists():
            raise ModelLoadError(f"SAE directory {path} lacks {needed}; expected sae-lens format (cfg.json + weights)")
    return SAE.load_from_disk(str(path), device=device)


def sae_hook_name(sae) -> str:
    """The hook name the SAE was trained on (from its metadata); ConfigError if it records none."""
    name = getattr(sae.cfg.metadata, "hook_name", None)
    if not name:
        raise ConfigError("SAE config has no metadata.hook_name; pass hook_name explicitly")
    return str(name)


def check_sae_fits(sae, model, hook_name: str | None = None) -> str:
    """Check that ``sae`` reads ``model`` at ``hook_name``; return the hook name in use.

    Raises ``ConfigError`` for a hook the model lacks or that differs from the SAE's own hook, and
    ``SteeringVectorError`` when the SAE's input width differs from the model's d_model.
    """
    recorded = getattr(sae.cfg.metadata, "hook_name", None)
    name = hook_name or recorded
    if not name:
        raise ConfigError("hook_name: the SAE records no hook name; pass one, e.g. 'blocks.12.hook_resid_post'")
    if name not in model.hook_dict:
        raise ConfigError(f"hook_name {name!r} is not a hook of the model (e.g. 'blocks.0.hook_resid_post')")
    if recorded and name != recorded:
        raise ConfigError(f"hook_name {name!r} differs from the SAE's training hook {recorded!r}; use the SAE's hook")
    if sae.cfg.d_in != model.cfg.d_model:
        raise SteeringVectorError(
            f"SAE d_in {sae.cfg.d_in} does not match the model's d_model {model.cfg.d_model} at {name!r}; "
            "use an SAE trained on this model"
        )
    return str(name)

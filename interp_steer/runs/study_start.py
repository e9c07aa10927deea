"""The start of a study run: every check that needs no model, then the model's, then ``config.json``.

:func:`check_study_start` runs before a model loads (the CLI calls it first): ``--out`` usable and not locked by
another run, every data set present (an empty or wrong ``--data-dir`` is named), and the resume guard on every
field but ``scan_layers``. :func:`prepare_study` (inside :func:`~interp_steer.runs.study.run_study`, under the
directory's lock) then loads the model, checks ``--scan-layers`` against its layers, compares the now valid
config with the directory's, and only then writes ``config.json``, so a rejected start leaves nothing that would
refuse the corrected command.
"""

from __future__ import annotations

from pathlib import Path

from interp_steer.errors import ConfigError
from interp_steer.runs.files import write_text_atomic
from interp_steer.runs.study_config import StudyConfig


def study_datasets(config: StudyConfig) -> list[str]:
    """Every dataset spec the study loads (scan, steerability and ID/OOD sets)."""
    suffix = "" if config.id_ood_framing == "ab" else f"@{config.id_ood_framing}"
    return list(dict.fromkeys(config.scan_datasets + config.datasets
                              + [f"persona:{name}{suffix}" for name in config.id_ood_datasets]))


def check_study_start(config: StudyConfig, out_dir: str | Path, data_dir: str | Path | None = None) -> Path:
    """What the study can check before loading a model: ``--out`` usable and not in use, every data set present
    (naming the data directory), and a directory written with other settings refused (all fields but
    ``scan_layers``, which is compared once the model has shown it is valid). Writes nothing but the directory."""
    from interp_steer.data.registry import check_datasets
    from interp_steer.runs.files import check_out_dir
    from interp_steer.runs.lock import check_not_locked

    out_dir = check_out_dir(out_dir)
    check_not_locked(out_dir)
    check_datasets(study_datasets(config), data_dir)
    config_path = out_dir / "config.json"
    if config_path.exists():
        old = StudyConfig.read(config_path)
        old.scan_layers = config.scan_layers
        config.check_resumable(old, out_dir)
    return out_dir


def prepare_study(config: StudyConfig, out_dir: Path, *, data_dir=None, model=None, executor=None):
    """Checks, then ``config.json``: data sets, the model's layers (``--scan-layers``), then the resume guard on
    the now valid config; only then is ``config.json`` written. Returns ``(model or None, scan layers)``."""
    from interp_steer.runs.executors import cached_model
    from interp_steer.runs.files import clean_stale_temporaries

    check_study_start(config, out_dir, data_dir)
    local = executor is None or getattr(executor, "name", "local") == "local"
    if model is None and (local or not config.scan_layers):
        model = cached_model(config.model, config.device)
    n_layers = int(model.cfg.n_layers) if model is not None else None
    layers = config.scan_layers or list(range(n_layers or 0))
    if n_layers is not None and max(layers) >= n_layers:
        raise ConfigError(f"--scan-layers {','.join(map(str, layers))}: out of range for {config.model!r}, which "
                          f"has {n_layers} layers (0-{n_layers - 1})")
    config_path = out_dir / "config.json"
    if config_path.exists():
        config.check_resumable(StudyConfig.read(config_path), out_dir)
    write_text_atomic(config.to_json(), config_path)
    clean_stale_temporaries(out_dir)  # (under the study's lock: only a killed run's)
    return (model if local else None), layers

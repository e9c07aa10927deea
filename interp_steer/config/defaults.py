"""Defaults shared by several configs, each written once: the multiplier grids, the device, the bundled SAE.

A config field takes its default from here (:func:`~interp_steer.config.fields.multipliers_field`), the command
line takes it from the field (:func:`interp_steer.cli.config_options.config_option`), so the library and the CLI
run the same experiment by default.
"""

from __future__ import annotations

from interp_steer.models.embedded import DEFAULT_MODEL

__all__ = ["COARSE_MULTIPLIERS", "COMPARE_MULTIPLIERS", "DEFAULT_DEVICE", "DEFAULT_MODEL", "DEFAULT_SAE",
           "HALF_STEP_MULTIPLIERS", "TAN_MULTIPLIERS", "TUNE_MULTIPLIERS", "UNIT_MULTIPLIERS"]

TAN_MULTIPLIERS = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
"""The seven multipliers of Tan et al. (2024): scan, steerability study and ``evaluate``."""
COARSE_MULTIPLIERS = (-1.5, 0.0, 1.5)
"""Three points of the same range: the study's layer scan and the ID/OOD grid."""
HALF_STEP_MULTIPLIERS = (-1.5, -0.75, 0.0, 0.75, 1.5)
"""Five points of the same range: ``why``, the method study and BiPO vs CAA."""
UNIT_MULTIPLIERS = (-2.0, -1.0, 0.0, 1.0, 2.0)
"""Integer steps of a unit-norm-scaled vector: ``demo`` and ``explain``."""
COMPARE_MULTIPLIERS = (-2.0, 0.0, 2.0)
"""``compare``: ± twice the CAA norm and the unsteered model."""
TUNE_MULTIPLIERS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
"""``tune``: non-negative strengths on a roughly doubling grid, 0 first (the unsteered reference)."""

DEFAULT_DEVICE = "cpu"
DEFAULT_SAE = "smollm2-135m-l12"
"""The bundled SAE (layer 12 of the embedded model) the comparison and ``why`` use unless told otherwise."""

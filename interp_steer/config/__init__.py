"""Configuration: the one base class (:class:`Config`, :class:`JobConfig`), the field helpers that make a field a
command-line option, the validation helpers that name the option, the one comma-list parser and the shared defaults.

This package imports neither torch nor pandas nor any job (``runs/``) or evaluation module: every layer may use it
and the CLI stays fast to import. The job configs live beside their jobs (``runs/job_configs.py``,
``runs/analysis_configs.py``, …), the extraction-method configs beside their methods.
"""

from __future__ import annotations

from interp_steer.config.base import Config, JobConfig
from interp_steer.config.checks import (
    check_field_types,
    require_choice,
    require_fraction,
    require_int,
    require_multipliers,
    require_number,
)
from interp_steer.config.defaults import (
    COARSE_MULTIPLIERS,
    COMPARE_MULTIPLIERS,
    DEFAULT_DEVICE,
    DEFAULT_SAE,
    HALF_STEP_MULTIPLIERS,
    TAN_MULTIPLIERS,
    TUNE_MULTIPLIERS,
    UNIT_MULTIPLIERS,
)
from interp_steer.config.fields import (
    DATA_DIR_HELP,
    DEVICE_HELP,
    MODEL_HELP,
    add_config_argument,
    config_default,
    config_field,
    config_help,
    data_dir_field,
    device_field,
    model_field,
    multipliers_field,
    option_field,
)
from interp_steer.config.lists import (
    check_layer_list,
    number_list_text,
    parse_float_list,
    parse_layers,
    parse_number_list,
)

__all__ = [
    "COARSE_MULTIPLIERS", "COMPARE_MULTIPLIERS", "DATA_DIR_HELP", "DEFAULT_DEVICE", "DEVICE_HELP", "MODEL_HELP", "DEFAULT_SAE", "HALF_STEP_MULTIPLIERS",
    "TAN_MULTIPLIERS", "TUNE_MULTIPLIERS", "UNIT_MULTIPLIERS", "Config", "JobConfig", "add_config_argument",
    "check_field_types", "check_layer_list", "config_default", "config_field", "config_help", "data_dir_field", "device_field",
    "model_field", "multipliers_field", "number_list_text", "option_field", "parse_float_list", "parse_layers",
    "parse_number_list", "require_choice", "require_fraction", "require_int", "require_multipliers",
    "require_number",
]

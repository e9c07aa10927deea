"""Exception hierarchy: every error the package raises on bad input derives from InterpSteerError.

Messages name the file, line, argument or hook point at fault and say what would fix it, so the
CLI can print them as one line without a traceback.
"""

from __future__ import annotations


class InterpSteerError(Exception):
    """Base class of all interp-steer errors caused by bad input or configuration."""


class ModelLoadError(InterpSteerError):
    """A model spec could not be resolved or loaded (unknown name, missing file, unsupported architecture)."""


class DataFormatError(InterpSteerError):
    """A data file is missing, malformed, or a row does not have the expected fields."""


class SteeringVectorError(InterpSteerError):
    """A steering vector does not fit the model it is applied to, or a vector file is invalid."""


class ConfigError(InterpSteerError):
    """A configuration value or function argument is out of its valid range."""

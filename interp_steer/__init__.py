"""interp-steer: steering-vector extraction, application and reliability analysis on TransformerLens."""

from __future__ import annotations

__version__ = "0.1.0"

from interp_steer.errors import (  # noqa: E402
    ConfigError,
    DataFormatError,
    InterpSteerError,
    ModelLoadError,
    SteeringVectorError,
)

__all__ = [
    "__version__",
    "ConfigError",
    "DataFormatError",
    "InterpSteerError",
    "ModelLoadError",
    "SteeringVectorError",
]

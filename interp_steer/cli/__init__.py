"""The ``interp-steer`` command line: thin typer wrappers around the library functions.

Each sub-command lives in its own module and registers itself on ``app``. Errors derived from
``InterpSteerError`` are printed as one line ``error: …`` with exit code 2 (no traceback), both from the
``interp-steer`` entry point and from ``typer.testing.CliRunner``; usage errors (an unknown option, a missing
required option, a value of the wrong type) are typer's usual short usage message, also exit code 2.
"""

from __future__ import annotations

# sub-command modules register themselves on import
from interp_steer.cli import (  # noqa: E402
    commands_compare,  # noqa: F401
    commands_core,  # noqa: F401
    commands_eval,  # noqa: F401
    commands_explain,  # noqa: F401
    commands_interop,  # noqa: F401
    commands_sae,  # noqa: F401
    commands_study,  # noqa: F401
    commands_tune,  # noqa: F401
)
from interp_steer.cli.app import app


def main() -> None:
    """Entry point (``interp-steer``): typer's standalone mode, which prints usage errors as a short message and
    exits with their code (2); package errors are turned into one line by the app's command group (:mod:`interp_steer.cli.app`)."""
    app()


__all__ = ["app", "main"]

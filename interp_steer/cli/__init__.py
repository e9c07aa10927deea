"""The ``interp-steer`` command line: thin typer wrappers around the library functions.

Each sub-command lives in its own module and registers itself on ``app``; errors derived from
``InterpSteerError`` are printed as one line (exit code 2) instead of a traceback.
"""

from __future__ import annotations

import sys

import typer

from interp_steer.errors import InterpSteerError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Steering vectors on TransformerLens models.")

# sub-command modules register themselves on import
from interp_steer.cli import commands_core  # noqa: E402,F401
from interp_steer.cli import commands_sae  # noqa: E402,F401
from interp_steer.cli import commands_eval  # noqa: E402,F401
from interp_steer.cli import commands_explain  # noqa: E402,F401
from interp_steer.cli import commands_compare  # noqa: E402,F401


def main() -> None:
    """Entry point: run the typer app, turning package errors into one clean line."""
    try:
        app(standalone_mode=False)
    except InterpSteerError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise

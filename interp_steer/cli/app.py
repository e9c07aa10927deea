"""The typer application of the ``interp-steer`` command line (the command modules register on ``app``; kept apart
from the package ``__init__`` so that those modules do not import the package that imports them)."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from interp_steer.errors import InterpSteerError


class _OneLineErrors(TyperGroup):
    """The app's command group: a package error raised by a sub-command becomes one line on stderr and exit 2."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except InterpSteerError as exc:
            message = " ".join(str(exc).split())  # one line even if a message carries a newline
            typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None


app = typer.Typer(cls=_OneLineErrors, add_completion=False, no_args_is_help=True,
                  help="Steering vectors on TransformerLens models.")

"""The Typer app class every edgeseg command is registered on: errors become exit codes here.

Mapping inside the app (not around it in ``main``) means ``CliRunner`` tests see the same exit
codes and messages a shell does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

from edgeseg.errors import DependencyError, EdgesegError, user_error

# A device installed with edgeseg[bench] has no torch: only `bench` and `recipe` work there.
TRAINING_STACK = {"torch", "torchvision", "nncf", "torch_pruning", "onnx", "onnxslim", "timm", "matplotlib"}


def exits_with_code(command: Callable) -> Callable:
    """Run ``command``; a user error prints one red line on stderr and exits with its code.

    Usage errors (exit 2) and --help are click's; everything edgeseg raises for a person to fix
    is an EdgesegError and never shows a traceback.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgesegError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(exc.exit_code) from None
        except ModuleNotFoundError as exc:
            if exc.name not in TRAINING_STACK:
                raise
            message = (
                f'this command needs the training stack ({exc.name} is not installed): pip install "edgeseg[train]"'
            )
            typer.secho(f"error: {message}", fg="red", err=True)
            raise typer.Exit(DependencyError.exit_code) from None
        except Exception as exc:  # a file-system failure anywhere: one line naming the file
            error = user_error(exc)
            if error is None:
                raise
            typer.secho(f"error: {error}", fg="red", err=True)
            raise typer.Exit(error.exit_code) from None

    return run


class App(typer.Typer):
    """``typer.Typer`` whose commands map edgeseg's errors to their documented exit codes."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(function: Callable) -> Callable:
            register(exits_with_code(function))
            return function

        return decorator

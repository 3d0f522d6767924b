"""The ``livedance`` command line (typer).

Each subsystem keeps its commands in its own module here (``eval_cmd``, ``beats_cmd``, ...). Those
modules import heavy libraries (torch, aubio) inside the command functions only, so ``--help`` stays
fast. Errors that bad input causes are :class:`livedance.errors.LivedanceError`; :func:`main` prints
them as one red line, without a traceback, and exits with status 2.
"""

from __future__ import annotations

import sys

import typer

from livedance import __version__
from livedance.errors import LivedanceError

app = typer.Typer(
    name="livedance",
    help=(
        "livedance: a real-time music-to-dance performer. It listens to music (microphone, line in, "
        "JACK or a file), dances an avatar to it, and streams the poses over OSC/VMC to Unity, "
        "Unreal Live Link, VSeeFace, Warudo and VJ tools."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"livedance {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """livedance: music in, dancing avatar out."""


# Register the subsystems' commands (each module adds its own to `app`).
from livedance.cli import _registry  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn :class:`LivedanceError` into a one-line message and exit status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except LivedanceError as err:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as ex:
        return ex.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # click usage errors and aborts
        import click

        if isinstance(err, click.ClickException):
            err.show()
            return err.exit_code
        if isinstance(err, click.exceptions.Abort):
            return 130
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

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

#: ``--data-root`` help shared by every command that reads dances (trainers, eval, priors).
DATA_ROOT_HELP = (
    "Folder holding dance-tang2018/ (default: $LIVEDANCE_DATA or ../shared/data), or an AIST++ folder (motions/, "
    "splits/, ignore_list.txt, music/): then the splits are AIST++'s crossmodal ones (docs/data.md)."
)

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
    """Run the CLI and return its exit status.

    Usage errors, ``--help`` and Ctrl-C are handled by typer's standalone mode. A
    :class:`LivedanceError` (bad input: a missing file, a bad port, corrupt weights) is printed as one
    red line without a traceback, with exit status 2.
    """
    try:
        app(args=argv, standalone_mode=True)
    except LivedanceError as err:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        return 2
    except SystemExit as ex:
        if ex.code is None:
            return 0
        return ex.code if isinstance(ex.code, int) else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The typer app, the console-script entry point and how failures are reported.

Every command reports a bad input as one line per error on stderr (``graphnet: error: <file>:<line>:
<path>: <what> (<how to fix>)``) and exits 1; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import sys
import traceback

import typer

from .. import __version__
from ..errors import GraphnetError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Declare, train and ship neural networks on plain numpy.",
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"graphnet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _state["debug"] = debug


def main() -> None:
    """Console-script entry point. Every failure is one line on stderr: a GraphnetError exits 1,
    a command-line usage error exits 2, Ctrl-C exits 130; ``--debug`` adds the traceback."""
    try:
        code = app(standalone_mode=False)
    except GraphnetError as error:
        for index, each in enumerate(error.all()):
            _report(f"error: {each}", traceback_too=index == 0)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        _report("interrupted")
        sys.exit(130)
    except Exception as error:
        if _is_usage_error(error):
            command = getattr(getattr(error, "ctx", None), "command_path", "graphnet")
            if error.format_message():  # empty when the help was shown for a bare `graphnet`
                _report(f"error: {error.format_message()} (see '{command} --help')")
            sys.exit(error.exit_code)
        _report(f"internal error: {type(error).__name__}: {error} (rerun with --debug for the traceback)")
        sys.exit(2)
    sys.exit(code or 0)


def _report(message: str, traceback_too: bool = True) -> None:
    if _state["debug"] and traceback_too:
        traceback.print_exc()
    typer.echo(f"graphnet: {message}", err=True)


def _is_usage_error(error: Exception) -> bool:
    # typer bundles its own copy of click; recognise click's exceptions by what they offer.
    return hasattr(error, "format_message") and isinstance(getattr(error, "exit_code", None), int)

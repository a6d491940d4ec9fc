"""The typer app, the console-script entry point, how help is shown and how failures are reported.

Every command reports a bad input as one line per error on stderr (``graphnet: error: <file>:<line>:
<path>: <what> (<how to fix>)``) and exits 1; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Callable

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from ..errors import GraphnetError  # light: the standard library only (no numpy, no pydantic)

HELP_SETTINGS = {"help_option_names": ["-h", "--help"]}


# ----------------------------------------------------------------------------------------------
# Help without Python type names
# ----------------------------------------------------------------------------------------------
# typer writes each parameter's Python type next to it (`--debug <bool>`, `--set <list[str]>`) and
# a required argument as `{spec}` in the usage line, and has no setting to turn that off. An
# option shows its `metavar=` instead of its type, so every option that takes a value declares
# one (`--set PATH=VALUE`, `--data-dir DIR|FILE.npz`); the classes below do the rest: a flag
# shows nothing (it takes no value), and an argument shows its metavar (`SPEC`) in the usage line
# and in the Arguments panel. tests/test_cli.py checks every command's help for type names.
#
# File parameters are declared `readable=False`: otherwise typer itself refuses an unreadable
# file as a usage error (exit 2, "Invalid value for 'SPEC'"); the spec and model-file loaders
# report it as the same typed, file-named error as every other bad file (exit 1).


class _Argument(TyperArgument):
    """A positional argument shown by its metavar alone: ``SPEC`` in the usage line (``[SPEC]``
    when optional) and no type column next to it (the metavar says what to give)."""

    def display_type_rich(self, ctx: Any) -> None:
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name.upper()
        return name if self.required else f"[{name}]"


def _plain_help(params: list) -> None:
    """Show flags without a type and arguments by their metavar (see above)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
        elif isinstance(param, TyperArgument) and type(param) is TyperArgument:
            param.__class__ = _Argument  # same fields; only how it is displayed changes


class _PlainHelp:
    """Mixed into typer's command and group classes: flags without a type, arguments by their
    metavar, ``-h`` and ``--help`` without a type either.

    The help option also defaults to False instead of typer's None: typer coerces every
    parameter value that is not already a bool through pydantic, and the group's help option,
    left out, is None in ``graphnet COMMAND --help``; with False, showing a command's help
    imports no pydantic (start-up time; bench/cli_startup.py checks it). The help callback
    reads both as "not asked for"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # made on first use, so patched here
        if option is not None:
            option.metavar = ""
            option.default = False
        return option


class Command(_PlainHelp, TyperCommand):
    """Every graphnet command (registered with ``@command``)."""


class Group(_PlainHelp, TyperGroup):
    """The ``graphnet`` group itself."""


def examples(*lines: str) -> str:
    """A command's epilog: its examples, one per line (escaped: help text is rich markup, and
    a `[...]` in a command line would be taken for a style)."""
    return "Examples:\n" + "\n".join(f"  {escape(line)}" for line in lines)


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=HELP_SETTINGS,
    help="Declare, train and ship neural networks on plain numpy.\n\n"
    "`graphnet COMMAND -h` shows a command's options and examples.",
    epilog=examples("graphnet validate specs/mnist-mlp.yaml", "graphnet run specs/fashion-mlp.yaml"),
)
_state = {"debug": False}


def command(name: str | None = None, *, help: str | None = None, epilog: str | None = None) -> Callable:
    """``@command()``: register a graphnet command: ``app.command`` with the Command class and
    ``-h``; ``help`` replaces the docstring, ``epilog`` holds the examples (``examples()``).
    Every command is registered this way (the help test checks each one)."""
    return app.command(name, cls=Command, context_settings=HELP_SETTINGS, help=help, epilog=epilog)


def _version(value: bool) -> None:
    if value:
        from .. import __version__  # looked up only here: importlib.metadata is slow to import

        typer.echo(f"graphnet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors (give it before the command)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    no_plugins: bool = typer.Option(
        False, "--no-plugins",
        help="Load graphnet's built-in ops only, as GRAPHNET_DISABLE_PLUGINS=1 does (give it before the command).",
    ),
) -> None:
    _state["debug"] = debug
    if no_plugins:
        from ..registry import disable_plugins

        disable_plugins()


def main() -> None:
    """Console-script entry point. Every failure is one line on stderr: a GraphnetError exits 1
    (one line per error it carries), a command-line usage error exits 2, Ctrl-C exits 130;
    ``--debug`` adds the traceback. "internal error" is kept for what can only be a bug in
    graphnet: any other exception."""
    try:
        code = app(standalone_mode=False)
    except GraphnetError as error:
        for index, each in enumerate(error.all()):
            _report(f"error: {each}", traceback_too=index == 0)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        _report("interrupted")
        sys.exit(130)
    except MemoryError as error:
        _report(f"error: out of memory{f': {error}' if str(error) else ''} (a smaller model, "
                "batch_size or dataset needs less; `graphnet validate` shows the parameter count)")
        sys.exit(1)
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

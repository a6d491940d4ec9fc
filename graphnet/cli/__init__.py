"""The ``graphnet`` command line: thin typer commands that parse, call the library, print.

``app.py`` holds the app, how help is shown (``-h``; no Python type names; examples) and the
error reporting; each other module registers one group of commands on it with ``@command``:
``spec`` (validate, schema, ops, gradcheck), ``train`` (run, eval), ``show`` (inspect, plot),
``convert`` and ``predict``; ``files`` reads and writes the files they take besides specs and
model files. Importing this package imports no op, nor numpy or pydantic: each command imports
the library inside its body, so ``graphnet --help``, ``--version`` and ``graphnet COMMAND --help``
cost little more than typer itself (tests/test_startup.py, bench/cli_startup.py).
"""

from __future__ import annotations

# registers the commands, in the order `graphnet --help` lists them
from . import spec, train, show, predict, convert, sweep  # noqa: F401, I001
from .app import app, main

__all__ = ["app", "main"]

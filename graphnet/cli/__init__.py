"""The ``graphnet`` command line: thin typer commands that parse, call the library, print.

``app.py`` holds the app and the error reporting; each other module registers one group of
commands on it. Importing this package imports no op: ops load when a command needs them.
"""

from __future__ import annotations

from . import spec, train  # noqa: F401  (registers the commands)
from .app import app, main

__all__ = ["app", "main"]

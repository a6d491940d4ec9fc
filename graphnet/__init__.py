"""graphnet: declare, train and ship neural networks on plain numpy.

Read it top-down: ``spec`` (the YAML/JSON format) -> ``graph`` (checks and shapes) -> ``executor``
(forward and backward) -> ``op``/``registry``/``ops`` (what runs) -> ``train`` (data, optimizers,
the loop) -> ``modelfile`` (msgpack files) -> ``cli``.

The names below are imported on first use (PEP 562), not with the package: ``import graphnet``
costs nothing, so ``graphnet --help`` and ``graphnet --version`` start without numpy or pydantic,
while ``from graphnet import Model`` and ``graphnet.Model`` work as with eager imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module (of this package) that defines it
_EXPORTS = {
    "GraphnetError": "errors",
    "Model": "model",
    "Spec": "spec",
    "build_graph": "graph",
    "load_spec": "spec",
    "parse_spec": "spec",
    "register_op": "registry",
}

__all__ = [
    "GraphnetError", "Model", "Spec", "build_graph", "load_spec", "parse_spec", "register_op", "__version__",
]

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .errors import GraphnetError
    from .graph import build_graph
    from .model import Model
    from .registry import register_op
    from .spec import Spec, load_spec, parse_spec

    __version__: str


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it (later lookups do not come back here)."""
    if name == "__version__":
        value: Any = _installed_version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _installed_version() -> str:
    """pyproject.toml's version, once installed. importlib.metadata costs tens of milliseconds
    to import, which is why the version is looked up only when asked for."""
    import importlib.metadata

    try:
        return importlib.metadata.version("graphnet")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"

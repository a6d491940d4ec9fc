"""graphnet: declare, train and ship neural networks on plain numpy.

Read it top-down: ``spec`` (the YAML/JSON format) -> ``graph`` (checks and shapes) -> ``executor``
(forward and backward) -> ``op``/``registry``/``ops`` (what runs) -> ``train`` (data, optimizers,
the loop) -> ``modelfile`` (msgpack files) -> ``cli``.
"""

from __future__ import annotations

import importlib.metadata

try:
    __version__ = importlib.metadata.version("graphnet")  # pyproject.toml's, once installed
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from .errors import GraphnetError
from .graph import build_graph
from .model import Model
from .registry import register_op
from .spec import Spec, load_spec, parse_spec

__all__ = [
    "GraphnetError", "Model", "Spec", "build_graph", "load_spec", "parse_spec", "register_op", "__version__",
]

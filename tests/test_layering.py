"""The package reads top-down: spec -> graph -> executor -> model -> training -> model files -> CLI,
and no module imports one of a higher layer. Optional heavy dependencies (onnx, matplotlib, Ray,
Pillow) live at the edge, in the one module that needs each; nothing imports torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "graphnet"

# Each part of the package (a module or a subpackage of graphnet) and its layer: a part may
# import only parts of lower layers.
LAYERS = [
    ["errors"],
    ["atomic", "allocator", "spec", "op", "labels", "images"],
    ["registry", "ops"],
    ["graph"],
    ["executor"],
    ["model"],
    ["gradcheck", "schema"],
    ["train"],
    ["modelfile"],
    ["export", "plot", "sweep"],
    ["cli"],
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}

# optional dependency -> the parts allowed to import it (lazily, inside functions)
EDGE = {
    "onnx": {"export"},
    "onnxruntime": set(),
    "matplotlib": {"plot"},
    "ray": {"sweep"},
    "PIL": {"images"},
    "torch": set(),
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__init__" else "graphnet"


def _imports(path: Path, root: Path = PACKAGE) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the file (``root`` is the graphnet folder)."""
    relative = path.relative_to(root.parent).with_suffix("")
    package = list(relative.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    found.append((".".join(base + [node.module]), node.lineno))
                else:  # from . import a, b
                    found += [(".".join(base + [alias.name]), node.lineno) for alias in node.names]
            else:
                found.append((node.module or "", node.lineno))
    return found


def violations(path: Path, root: Path = PACKAGE) -> list[str]:
    """What in ``path`` breaks the layering: upward imports, optional dependencies off the edge."""
    me = _part(".".join(path.relative_to(root.parent).with_suffix("").parts))
    if me == "graphnet":
        return []  # the package root re-exports the API
    found = []
    for module, line in _imports(path, root):
        if not module.startswith("graphnet"):
            top = module.split(".")[0]
            if top in EDGE and me not in EDGE[top]:
                found.append(f"{path}:{line} imports {module}: only {sorted(EDGE[top])} may")
            continue
        target = _part(module)
        if target in ("graphnet", "__version__") or target == me:
            continue  # the package's version; the part's own modules
        if RANK[target] >= RANK[me]:
            found.append(f"{path}:{line}: '{me}' (layer {RANK[me]}) imports '{target}' (layer {RANK[target]})")
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_layer():
    parts = {_part(".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts)) for f in FILES}
    assert parts - {"graphnet"} <= set(RANK), f"add {sorted(parts - set(RANK) - {'graphnet'})} to LAYERS"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_upward(path):
    assert violations(path) == []


@pytest.mark.parametrize("source, expected", [
    ("from .cli import app\n", "'graph' (layer 3) imports 'cli' (layer 10)"),
    ("from . import model\n", "'graph' (layer 3) imports 'model' (layer 5)"),
    ("def f():\n    import matplotlib.pyplot\n", "imports matplotlib.pyplot: only ['plot'] may"),
    ("import torch\n", "imports torch: only [] may"),
])
def test_the_check_sees_what_breaks_the_layering(tmp_path, source, expected):
    fake = tmp_path / "graphnet" / "graph.py"
    fake.parent.mkdir()
    fake.write_text(source)
    assert [expected in v for v in violations(fake, fake.parent)] == [True]

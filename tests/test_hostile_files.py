"""Every command that takes a file, fed a table of hostile files: each must exit 1 with one
``graphnet: error: <the file>...`` line per error on stderr, no traceback, never "internal
error", and must not hang (a FIFO blocks whoever opens it for reading).

The table is COMMANDS x INPUTS. A command declares the kind of file it takes ("spec" or "model")
and an input that IS that kind (a real spec for `validate`) is left out of its row. To add a
command, add one line to COMMANDS (the last test finds every command whose argument or --spec
option is a SPEC, a MODEL, MODEL... or a SRC).
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# command -> (the kind of file it takes, its arguments; "{file}" is the hostile file and "{tmp}"
# a scratch directory, so that nothing is ever written into the repository)
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "validate": ("spec", ["validate", "{file}"]),
    "run": ("spec", ["run", "{file}", "--out", "{tmp}/never-written.gnm"]),
    "gradcheck --spec": ("spec", ["gradcheck", "--spec", "{file}"]),
    "eval": ("model", ["eval", "{file}"]),
    "inspect": ("model", ["inspect", "{file}"]),
    "plot": ("model", ["plot", "{file}", "-o", "{tmp}/curves.png"]),
    "predict": ("model", ["predict", "{file}", "{tmp}/input.npy"]),
    "convert": ("model", ["convert", "{file}", "{tmp}/out.onnx"]),
    "convert --spec": ("spec", ["convert", "{tmp}/params.npz", "{tmp}/never-written.gnm", "--spec", "{file}"]),
}

TIMEOUT = 60  # seconds; a loader that opens a FIFO blocks forever, and this turns that into a failure
HUGE_BYTES = 20 * 1024 * 1024
# Root reads a chmod 000 file anyway (capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH):
# the no-permission case runs the CLI without those two, as root still (uid 0 owns the
# interpreter, which may live in a private /root), so that the permission bits are obeyed.
PR_CAPBSET_DROP = 24  # prctl option (linux/prctl.h)
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2  # linux/capability.h


# ----------------------------------------------------------------------------------------------
# the hostile inputs: name -> how to make it in a directory (returns the path to pass)
# ----------------------------------------------------------------------------------------------


def _junk(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def make_binary(directory: Path) -> Path:
    path = directory / "junk.bin"
    path.write_bytes(_junk(4096, seed=1))
    return path


def make_latin1(directory: Path) -> Path:
    # a valid spec but for its encoding: the é is the single byte 0xe9, not UTF-8's c3 a9
    text = (REPO / "specs" / "skip-mlp.yaml").read_text(encoding="utf-8")
    path = directory / "latin1.yaml"
    path.write_bytes(('# description: "café"\n' + text).encode("latin-1"))
    return path


def make_empty(directory: Path) -> Path:
    path = directory / "empty.yaml"
    path.write_bytes(b"")
    return path


def make_huge(directory: Path) -> Path:
    path = directory / "huge.yaml"
    path.write_bytes(_junk(HUGE_BYTES, seed=2))
    return path


def make_directory(directory: Path) -> Path:
    path = directory / "a-directory.yaml"
    path.mkdir()
    (path / "inside.yaml").write_text("name: x\n", encoding="utf-8")
    return path


def make_fifo(directory: Path) -> Path:
    path = directory / "fifo.yaml"
    os.mkfifo(path)
    return path


def make_unreadable(directory: Path) -> Path:
    path = directory / "unreadable.yaml"
    shutil.copyfile(REPO / "specs" / "skip-mlp.yaml", path)
    path.chmod(0)
    return path


def make_model_file(directory: Path) -> Path:
    from graphnet import Model, load_spec
    from graphnet.modelfile import save_model

    path = directory / "model.gnm"
    save_model(path, Model.from_spec(load_spec(REPO / "specs" / "skip-mlp.yaml"), seed=0))
    return path


def make_spec(directory: Path) -> Path:
    path = directory / "spec.yaml"
    shutil.copyfile(REPO / "specs" / "skip-mlp.yaml", path)
    return path


def make_png(directory: Path) -> Path:
    """A valid 1x1 grey PNG, written with zlib and struct."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # filter byte 0, one grey pixel
    path = directory / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


@dataclass
class Input:
    make: Callable[[Path], Path]
    kind: str | None = None  # "spec" or "model": left out of the rows of commands taking that kind
    # what the first message must also say (lower case), by the kind of file the command takes
    says: dict[str, str] = field(default_factory=dict)


def by_any(word: str) -> dict[str, str]:
    return {"spec": word, "model": word}


INPUTS: dict[str, Input] = {
    "binary": Input(make_binary),
    "latin-1": Input(make_latin1, says={"spec": "utf-8"}),
    "empty": Input(make_empty, says=by_any("empty")),
    "huge": Input(make_huge),
    "directory": Input(make_directory, says=by_any("directory")),
    "fifo": Input(make_fifo),
    "no-permission": Input(make_unreadable, says=by_any("permission")),
    "model-file": Input(make_model_file, kind="model", says={"spec": "model file"}),
    "spec": Input(make_spec, kind="spec", says={"model": "spec"}),
    "png": Input(make_png),
}

CASES = [
    pytest.param(command, name, id=f"{command.replace(' ', '')}-{name}")
    for command, (takes, _) in COMMANDS.items()
    for name, item in INPUTS.items()
    if item.kind != takes
]


# ----------------------------------------------------------------------------------------------
# running the real CLI
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """get(name) -> the hostile input ``name``, made once for the whole table; and the
    directory holding them."""
    directory = tmp_path_factory.mktemp("hostile")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = INPUTS[name].make(directory)
        return made[name]

    yield get, directory
    for path in made.values():  # let pytest clean up
        if path.exists() and not path.is_dir():
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def _obeying_permissions() -> dict:
    """subprocess.run arguments under which a chmod 000 file cannot be read: nothing for a
    normal user; for root, drop the capabilities that bypass permission bits before exec
    (from the bounding set, so the CLI cannot regain them)."""
    if os.geteuid() != 0:
        return {}
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                raise PermissionError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")

    return {"preexec_fn": drop}


def run_cli(args: list[str], **extra) -> subprocess.CompletedProcess:
    """``python -m graphnet.cli ARGS`` from the repository root (as conftest's run_cli, plus
    ``extra`` for subprocess.run: the user to run as)."""
    env = dict(os.environ, COLUMNS="200", HOME=tempfile.gettempdir())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "graphnet.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT, **extra,
    )


@pytest.mark.parametrize("command, name", CASES)
def test_hostile_file_is_one_typed_error(files, command, name):
    get, directory = files
    path = get(name)
    scratch = directory / "scratch"
    scratch.mkdir(exist_ok=True)
    takes, template = COMMANDS[command]
    args = [part.replace("{file}", str(path)).replace("{tmp}", str(scratch)) for part in template]
    extra = _obeying_permissions() if name == "no-permission" else {}
    try:
        result = run_cli(args, **extra)
    except subprocess.TimeoutExpired:
        pytest.fail(f"graphnet {' '.join(args)} hung for {TIMEOUT} s (a FIFO opened for reading?)")
    except (PermissionError, subprocess.SubprocessError) as error:  # preexec_fn failed
        if not extra:
            raise
        pytest.skip(f"running as root without the right to drop CAP_DAC_OVERRIDE, so chmod 000 "
                    f"cannot be made to bite: {error}")

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    shown = f"stderr:\n{result.stderr}\nstdout:\n{result.stdout[-2000:]}"
    assert "Traceback" not in result.stderr, shown
    assert "internal error" not in result.stderr, shown
    assert result.returncode == 1, shown
    assert lines, shown
    for line in lines:
        assert line.startswith(f"graphnet: error: {path}"), shown
    wanted = INPUTS[name].says.get(takes)
    if wanted is not None:  # looked for after the file name (which may hold the word itself)
        assert wanted in lines[0][len(f"graphnet: error: {path}"):].lower(), shown
    assert not (scratch / "never-written.gnm").exists()


def test_the_table_covers_every_command_that_takes_a_file():
    """A new command that takes a spec or a model file joins COMMANDS (then this list)."""
    from graphnet.cli import app
    from typer.main import get_command

    group = get_command(app)
    takes_a_file = set()
    for name, cmd in group.commands.items():
        for param in cmd.params:
            if (param.metavar or "") in ("SPEC", "MODEL", "MODEL...", "SRC"):
                takes_a_file.add(f"{name} --spec" if "--spec" in getattr(param, "opts", []) else name)
    assert takes_a_file == set(COMMANDS)


def test_png_fixture_is_a_real_png(tmp_path):
    """The PNG row is only meaningful if the file is a valid PNG: decode it by hand."""
    data = make_png(tmp_path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        offset += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (1, 1)
    assert zlib.decompress(chunks[b"IDAT"]) == b"\x00\x80"
    assert b"IEND" in chunks

"""Hostile spec files: whatever the file holds, loading it ends quickly in one typed error whose
text starts with the file name (or the --set it came from), never a traceback or a hang.

A table of files people pass by mistake or that attack the parser (a model file, a PNG, Latin-1
text, a FIFO, nesting 10,000 deep, a billion laughs, a 5,000-digit integer...), then a
hypothesis fuzz: the mutations of bench/spec_fuzz.py applied to specs/*.yaml must load, build and
run one step, or fail with a GraphnetError. Each case runs under a time limit that only guards
against hangs (a limit of seconds for work that takes milliseconds), not a speed assertion.
"""

from __future__ import annotations

import importlib.util
import os
import random
import zipfile
from pathlib import Path

import msgpack
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphnet import build_graph, load_spec, parse_spec
from graphnet.errors import MAX_REPORTED, GraphnetError, SpecError, short
from graphnet.spec import files as spec_files

REPO = Path(__file__).resolve().parents[1]
HANG = 20  # seconds: a case still running after this is hung (they take milliseconds)


def _load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz = _load_bench("spec_fuzz")

VALID = """\
name: t
inputs:
  x: {shape: [4]}
  y: {shape: [], dtype: int64}
nodes:
  fc: {op: linear, inputs: {x: x}, attrs: {units: 3}}
  loss: {op: softmax_cross_entropy, inputs: {logits: fc, labels: y}}
"""


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + "1" + closer * depth


def random_bytes(seed: int, count: int, low: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(low, 256) for _ in range(count))


def model_file_bytes() -> bytes:
    """What a graphnet model file starts with (the layout of graphnet's model files)."""
    return msgpack.packb(
        {"magic": "graphnet-model", "format": 1, "sha256": "0" * 64, "payload": b"\x01" * 200}
    )


def npz_bytes(tmp_path: Path) -> bytes:
    target = tmp_path / "a.npz"
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("x_train.npy", b"\x93NUMPY" + b"\x00" * 100)
    return target.read_bytes()


# (id, what the file holds: bytes, or str written as UTF-8, or a callable(tmp_path) -> bytes,
#  a fragment of the message). Every one is a SpecError whose text starts with the file name.
FILES = [
    ("latin-1", "name: t\ndescription: caf\xe9\n".encode("latin-1"), "not a UTF-8 text file: byte 0xe9 at line 2"),
    ("binary-with-nul", random_bytes(1, 5000, low=0), "binary file, not a spec (it holds NUL bytes)"),
    ("binary-no-nul", random_bytes(2, 5000, low=1), "binary file, not a spec (byte 0x"),
    ("empty", b"", "the spec file is empty"),
    ("blank", b"  \n\n\t\n", "the spec file is empty"),
    ("only-comments", b"# a spec\n# to come\n", "the spec holds no data"),
    ("model-file", model_file_bytes(), "this is a graphnet model file, not a spec"),
    ("model-file-v2", b"\x89GNM\r\n\x1a\n\x02\x00" + b"\x00" * 100, "this is a graphnet model file"),
    ("future-model-file", b"graphnet-model\x00\x02" + b"\xff" * 100, "this is a graphnet model file"),
    ("pickle", b"\x80\x04\x95" + b"\x00" * 20, "binary file (Python pickle), not a spec"),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 50, "binary file (PNG image), not a spec"),
    ("npz", npz_bytes, "binary file (zip archive, e.g. an .npz), not a spec"),
    ("top-level-list", "- 1\n- 2\n", "the spec must be a mapping at the top level, received list"),
    ("deep-flow-list", "name: t\nx: " + deep(10_000) + "\n", "nesting deeper than 100 levels"),
    ("deep-flow-map", "name: t\nx: " + deep(10_000, "{a: ", "}") + "\n", "nesting deeper than 100 levels"),
    ("deep-block", "".join("  " * i + f"k{i}:\n" for i in range(150)) + "  " * 150 + "v: 1\n", "nesting deeper than 100 levels"),
    ("deep-json", '{"name": "t", "x": ' + deep(10_000) + "}", "nesting deeper than 100 levels"),
    ("deep-json-200", '{"name": "t", "x": ' + deep(200) + "}", "nesting deeper than 100 levels"),
    ("billion-laughs", billion_laughs() + VALID, "aliases expand to more than 100,000 values"),
    ("billion-laughs-as-value", billion_laughs() + VALID + "description: *a8\n", "aliases expand to more than 100,000"),
    ("laughs-wide", billion_laughs(levels=3, width=1000), "aliases expand to more than 100,000"),
    ("recursive-alias", "name: &n [1, *n]\n", "alias '*n' is used inside the value it names"),
    ("unknown-alias", "name: *nowhere\n", "unknown alias '*nowhere'"),
    ("json-5000-digits", '{"name": "t", "inputs": {"x": {"shape": [' + "7" * 5000 + "]}}}", "an integer of 5,000 digits"),
    ("yaml-5000-digits", "name: t\ninputs: {x: {shape: [" + "7" * 5000 + "]}}\n", "an integer of 5,000 digits"),
    ("python-tag", "name: !!python/object/apply:os.system [echo]\n", "is not allowed in a spec"),
    ("custom-tag", "name: !secret t\n", "YAML tag '!secret' is not allowed"),
    ("set-tag", "name: t\ninputs: !!set {x}\n", "is not allowed in a spec"),
    ("two-documents", VALID + "---\nname: u\n", "a second document starts here"),
    ("control-character", "name: t\x01\n", "a control character (0x01)"),
    ("mapping-as-key", "? [a, b]\n: 1\n", "a mapping or list used as a key"),
    ("bad-merge", "a: 1\nb: {<<: 3}\n", "`<<:` merges a mapping"),
    ("units-2-31-in-layers", VALID.replace("nodes:", "layers: {input: x, sizes: [4, 2147483648], labels: y}\nnodes:"), "less than or equal to 16777216"),
    ("input-shape-10-30", VALID.replace("shape: [4]", "shape: [1000000000000000000000000000000]"), "less than or equal to 16777216"),
    ("input-rank-20", VALID.replace("shape: [4]", "shape: [" + ", ".join(["1"] * 20) + "]"), "List should have at most 16 items"),
    ("too-many-layers", "name: t\ninputs: {x: {shape: [4]}, y: {shape: [], dtype: int64}}\n"
     "layers: {input: x, labels: y, sizes: [" + ", ".join(["1"] * 50_002) + "]}\n",
     "the graph has 100,002 nodes, more than the limit of 100,000"),
    ("epochs-10-9", VALID + "train: {epochs: 1000000000}\n", "less than or equal to 100000"),
    ("batch-2-40", VALID + f"train: {{batch_size: {2**40}}}\n", "less than or equal to 1048576"),
    ("seed-2-64", VALID + f"train: {{seed: {2**64}}}\n", "less than or equal to 4294967295"),
    ("validation-10-12", VALID + "train: {data: {validation: 1000000000000}}\n", "less than or equal to 1000000000"),
    ("limit-10-12", VALID + "train: {data: {limit: 1000000000000}}\n", "less than or equal to 1000000000"),
    ("stages-add-up", VALID + "train: {schedule: [" + ", ".join(["{epochs: 100000, lr: 0.1}"] * 3) + "]}\n",
     "the schedule's stages add up to 300,000 epochs, more than 100,000"),
    ("lr-inf", VALID + "train: {optimizer: {type: sgd, lr: .inf}}\n", "Input should be a finite number"),
    ("lr-nan", VALID + "train: {optimizer: {type: adam, lr: .nan}}\n", "Input should be a finite number"),
    ("megabyte-key", '{"name": "t", "inputs": {"x": {"shape": [1]}}, "' + "x" * 1_000_000 + '": 1}',
     "unknown key 'xxxxxxxx"),
    ("yaml-long-key", VALID + "x" * 2000 + ": 1\n", "a key longer than 1,024 characters"),
    ("megabyte-name", VALID.replace("name: t", "name: " + "n" * 1_000_000), "String should have at most 128 characters"),
    ("megabyte-op", VALID.replace("op: linear", "op: " + "l" * 1_000_000), "String should have at most 128 characters"),
]


def _write(tmp_path: Path, content, name: str = "spec.yaml") -> Path:
    if callable(content):
        content = content(tmp_path)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path = tmp_path / name
    path.write_bytes(content)
    return path


def load_and_build(path: Path, overrides: list[str] | None = None):
    with fuzz.time_limit(HANG):
        return build_graph(load_spec(path, overrides=overrides))


def assert_one_located_error(error: GraphnetError, where: str, fragment: str) -> None:
    assert type(error) is SpecError
    text = str(error)
    assert text.startswith(where + ":") or text.startswith(where + " "), text[:200]
    assert fragment in text, text[:300]
    assert len(text) < 2000  # a hostile value is never copied whole into the message
    for other in error.more:
        assert len(str(other)) < 2000


@pytest.mark.parametrize("content, fragment", [(c, f) for _, c, f in FILES], ids=[i for i, _, _ in FILES])
def test_hostile_file_is_one_spec_error_naming_the_file(tmp_path, content, fragment):
    path = _write(tmp_path, content)
    with pytest.raises(SpecError) as info:
        load_and_build(path)
    assert_one_located_error(info.value, str(path), fragment)


@pytest.mark.parametrize("path", sorted((REPO / "tests" / "golden").glob("*.gnm")), ids=lambda p: p.name)
def test_every_model_file_format_is_recognised(path):
    with pytest.raises(SpecError) as info:
        load_and_build(path)
    assert_one_located_error(info.value, str(path), "this is a graphnet model file, not a spec")
    assert info.value.hint == "did you mean `graphnet eval` or `graphnet inspect`?"


def test_the_model_file_magic_is_the_model_files():
    # the spec layer cannot import graphnet.modelfile: its copy of the magic is checked here
    from graphnet.modelfile import MAGIC
    from graphnet.modelfile.sniff import V1_MAGIC, is_model_file

    assert (spec_files.MODEL_MAGIC, spec_files.MODEL_MAGIC_V1) == (MAGIC, V1_MAGIC)
    golden = sorted((REPO / "tests" / "golden").glob("*.gnm"))
    assert {p.read_bytes()[:8] for p in golden} >= {MAGIC}  # both formats are among them
    assert all(is_model_file(p.read_bytes()[:64]) for p in golden)


def test_a_directory_is_named(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "a.yaml").write_text(VALID)
    with pytest.raises(SpecError) as info:
        load_and_build(tmp_path / "specs")
    assert_one_located_error(info.value, str(tmp_path / "specs"), "this is a directory, not a spec file")
    assert "a.yaml" in info.value.hint  # the specs inside are suggested


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    with pytest.raises(SpecError) as info:
        load_and_build(fifo)
    assert_one_located_error(info.value, str(fifo), "this is a named pipe (FIFO), not a regular file")


def test_a_device_is_refused():
    with pytest.raises(SpecError) as info:
        load_and_build(Path("/dev/zero"))  # endless: must not be read
    assert_one_located_error(info.value, "/dev/zero", "this is a device, not a regular file")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as handle:
        handle.truncate(spec_files.MAX_SPEC_BYTES + 1)  # sparse: 16 MiB of zeros, no disk used
    with pytest.raises(SpecError) as info:
        load_and_build(path)
    assert_one_located_error(info.value, str(path), "the spec is 16.0 MiB, over the 16 MiB limit for a spec")


def test_spec_text_over_the_size_limit_is_refused():
    text = "name: t\ndescription: " + "x" * spec_files.MAX_SPEC_BYTES + "\n"
    with pytest.raises(SpecError) as info:
        with fuzz.time_limit(HANG):
            parse_spec(text, file="big.yaml")
    assert_one_located_error(info.value, "big.yaml", "over the 16 MiB limit")


def test_unreadable_file_says_permission_denied(tmp_path, monkeypatch):
    path = _write(tmp_path, VALID)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    # (chmod 000 does not stop root, who runs CI here: refuse at open() itself)
    monkeypatch.setattr(spec_files, "open", denied, raising=False)
    with pytest.raises(SpecError) as info:
        load_and_build(path)
    assert_one_located_error(info.value, str(path), "cannot read spec: Permission denied")
    assert "permissions" in info.value.hint


def test_a_byte_order_mark_is_not_content(tmp_path):
    path = _write(tmp_path, b"\xef\xbb\xbf" + VALID.encode())
    assert load_and_build(path).order == ["fc", "loss"]


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("description=" + deep(10_000), "nesting deeper than 100 levels"),
        ("description=" + billion_laughs().replace("\n", ", ").join("{}"), "aliases expand to more than 100,000"),
        ("a" + ".a" * 150 + "=1", "the path has 151 parts; a spec nests at most 100 levels"),
        ("description=" + "7" * 5000, "an integer of 5,000 digits"),
        ("train.schedule." + "9" * 5000 + "=1", "is not an index of a list"),
    ],
    ids=["deep-value", "alias-bomb", "deep-path", "long-integer", "long-index"],
)
def test_hostile_set_is_one_error_naming_the_set(tmp_path, item, fragment):
    path = _write(tmp_path, VALID + "train: {schedule: [{epochs: 1, lr: 0.1}]}\n")
    with pytest.raises(SpecError) as info:
        load_and_build(path, overrides=[item])
    error = info.value
    assert error.file.startswith("--set ") and len(error.file) <= 6 + 200
    assert error.line is None
    assert_one_located_error(error, error.file, fragment)


# -- every error of a file, each located, up to a cap -------------------------------------------


def test_many_errors_are_capped(tmp_path):
    inputs = "".join(f"  i{n}: {{shape: [0]}}\n" for n in range(30))
    path = _write(tmp_path, VALID.replace("inputs:\n", "inputs:\n" + inputs))
    with pytest.raises(SpecError) as info:
        load_and_build(path)
    errors = info.value.all()
    assert len(errors) == MAX_REPORTED + 1
    assert [e.path for e in errors[:MAX_REPORTED]] == [f"inputs.i{n}.shape.0" for n in range(MAX_REPORTED)]
    assert all(e.line == 3 + n for n, e in enumerate(errors[:MAX_REPORTED]))
    assert errors[-1].message == f"... and {30 - MAX_REPORTED} more errors"


# -- bounded messages -----------------------------------------------------------------------------


def test_short_is_bounded_whatever_the_value():
    laughs = ["lol"] * 10
    for _ in range(9):
        laughs = [laughs] * 10  # 10^10 elements, shared: building its repr would never end
    nested: list = []
    inner = nested
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    with fuzz.time_limit(HANG):
        for value in (laughs, nested, "x" * 10**7, b"\x00" * 10**7, {"k" * 10**6: 1}, 7**100_000):
            assert len(short(value)) <= 60
    assert short(laughs) == "[" * 10 + "'lol', " * 6 + "'lol'..."
    assert short(7**100_000) == "<an integer of about 84,510 digits>"


@pytest.mark.parametrize(
    "value", [None, True, 0, -1.5, "abc", [], {}, (1,), [1, [2, 3]], {"a": [1, {"b": None}]}, b"xy", (1, 2)]
)
def test_short_of_a_small_value_is_its_repr(value):
    assert short(value) == repr(value)


def test_short_cuts_at_the_limit():
    assert short(list(range(100))) == repr(list(range(100)))[:57] + "..."
    assert short("y" * 100, limit=10) == "'yyyyyy..."


# -- the fuzz -------------------------------------------------------------------------------------


@settings(
    max_examples=100, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rng=st.randoms(use_true_random=False), mutation=st.integers(0, len(fuzz.MUTATIONS) - 1))
def test_mutated_specs_load_build_and_run_or_fail_typed(tmp_path, rng, mutation):
    # big=2,000: the long-list mutations stay quick here; bench/spec_fuzz.py runs 20,000
    name, content, suffix = fuzz.make_case(rng, big=2000, mutation=mutation)
    path = tmp_path / f"case{suffix}"
    path.write_bytes(content)
    kind, detail = fuzz.outcome_of(path, timeout=HANG)
    assert kind in ("accepted", "typed"), f"{name}: {kind}: {detail}"


def test_the_fuzz_classifies_bugs_and_hangs(tmp_path, monkeypatch):
    """The harness itself: a spec accepted and run, a typed error, an untyped exception and a
    hang are each told apart (otherwise the fuzz above could pass while seeing nothing)."""
    path = _write(tmp_path, VALID)
    assert fuzz.outcome_of(path, timeout=HANG) == ("accepted", "accepted: ran")
    bad = _write(tmp_path, "name: [\n", "bad.yaml")
    assert fuzz.outcome_of(bad, timeout=HANG) == ("typed", "SpecError")

    import graphnet

    def boom(*args, **kwargs):
        raise ValueError("internal")

    monkeypatch.setattr(graphnet, "build_graph", boom)
    kind, detail = fuzz.outcome_of(path, timeout=HANG)
    assert kind == "other" and detail.startswith("ValueError at ")

    def hang(*args, **kwargs):
        while True:
            pass

    monkeypatch.setattr(graphnet, "build_graph", hang)
    assert fuzz.outcome_of(path, timeout=0.2) == ("hang", "")


CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def test_mutations_change_the_spec():
    """Every mutation makes a file that differs from the spec it started from (a mutation that
    silently did nothing would make the fuzz weaker than it says)."""
    for index, mutate in enumerate(fuzz.MUTATIONS):
        changed = 0
        for attempt in range(5):
            rng = random.Random(f"{index}-{attempt}")
            source = fuzz.SPECS[attempt % len(fuzz.SPECS)]
            content, _ = mutate(source.read_text(), rng, 100)
            original = source.read_bytes()
            try:
                same = yaml.load(content, Loader=CLoader) == yaml.load(original, Loader=CLoader)
            except (yaml.YAMLError, UnicodeDecodeError, ValueError):
                same = False  # (ValueError: Python's 4,300-digit limit on int())
            changed += not same
        assert changed >= 3, mutate.__name__

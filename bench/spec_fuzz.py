"""Fuzz the spec loader: mutated example specs must load, build and run, or fail with a typed error.

Each case takes one of specs/*.yaml and applies one mutation: a text mutation (delete a span,
insert syntax characters, re-indent, truncate, an extreme number, nesting 10,000 deep, an alias
bomb, bytes that are not UTF-8, JSON with a trailing comma...) or a structural one on the loaded
data, written back as YAML or JSON (drop, rename or add a key, a value from a pool of hostile
values, a new node, a rewired input, another op, a very long `layers.sizes`). The case then goes
through ``load_spec`` and ``build_graph`` and, when both accept it and the model is small, one
forward and backward pass on a batch of 2 (``Model``).

The outcome of a case is "accepted" (ran, or too large to run here), the class of a
``GraphnetError``, another exception (a bug: its type and where it was raised), or a hang (past
``--timeout`` seconds). Cases run in subprocesses of ``--batch`` cases each (a crash or a hang
costs one batch, not the run), and case ``i`` of ``--seed s`` is the same on every run:

    python bench/spec_fuzz.py [--cases 1000] [--seed 0] [--batch 100] [--timeout 10] [--show 5]
                              [--save records.jsonl]

The test suite runs the same mutations through hypothesis (tests/test_spec_hostile.py).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import yaml

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "specs").glob("*.yaml"))

# The size of the "long list" hostile values: the hang was layers.sizes of 20,000.
BIG = 20_000
# Largest model the fuzz runs a step of (parameters, and activation values per example).
RUN_LIMIT = 2_000_000
RUN_NODES = 2_000  # and nodes: a step of 40,000 nodes takes seconds of plain Python


# ----------------------------------------------------------------------------------------------
# Mutations. Each takes (text, rng, big) and returns (bytes of the file, its suffix).
# ----------------------------------------------------------------------------------------------

SYNTAX = list("{}[]:,-&*!|>'\"#?%@` \t\n") + ["<<: ", ": ", "- ", "  ", "\n  ", "*a", "&a "]
EXTREME_NUMBERS = [
    "0", "-1", "-0", "1e308", "1e999", "-1e999", ".nan", ".inf", "2147483648", "4294967296",
    str(2**63), str(2**64), str(10**30), "0x7fffffff", "1_000_000", "1:30", "99999999999999999999",
    "1" * 5000, "0.0000001", "16777217", "16777216",
]


def _yaml(data: Any) -> tuple[bytes, str]:
    return yaml.safe_dump(data, sort_keys=False, width=10**9).encode(), ".yaml"


def _json(data: Any) -> tuple[bytes, str]:
    return json.dumps(data, indent=2).encode(), ".json"


def delete_span(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    start = rng.randrange(len(text))
    return (text[:start] + text[start + rng.randint(1, 40):]).encode(), ".yaml"


def insert_syntax(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    for _ in range(rng.randint(1, 5)):
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(SYNTAX) + text[at:]
    return text.encode(), ".yaml"


def shuffle_lines(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    lines = text.splitlines()
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    action = rng.choice(["duplicate", "swap", "indent", "dedent"])
    if action == "duplicate":
        lines.insert(j, lines[i])
    elif action == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif action == "indent":
        lines[i] = " " * rng.randint(1, 3) + lines[i]
    else:
        lines[i] = lines[i][rng.randint(1, 3):]
    return "\n".join(lines).encode(), ".yaml"


def truncate(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    return text[: rng.randrange(len(text))].encode(), ".yaml"


def extreme_number(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    numbers = list(re.finditer(r"(?<![\w.])\d+(\.\d+)?(e-?\d+)?(?![\w.])", text))
    if not numbers:
        return text.encode(), ".yaml"
    match = rng.choice(numbers)
    return (text[: match.start()] + rng.choice(EXTREME_NUMBERS) + text[match.end():]).encode(), ".yaml"


def _replace_a_value(text: str, rng: random.Random, value: str) -> str:
    """``value`` in place of one `key: value` of the text (or appended as a new key)."""
    spots = list(re.finditer(r"(?m)^(\s*[\w-]+:)[ \t]+([^\n#]+)$", text))
    if not spots or rng.random() < 0.2:
        return text + f"\nextra: {value}\n"
    spot = rng.choice(spots)
    return text[: spot.start(2)] + value + text[spot.end(2):]


def deep_nesting(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    depth = rng.choice([50, 99, 100, 101, 1000, 10_000, 100_000])
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    return _replace_a_value(text, rng, opener * depth + "1" + closer * depth).encode(), ".yaml"


def alias_bomb(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    width, levels = rng.choice([(9, 9), (10, 6), (2, 40), (100, 3)])
    lines = ["bomb0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"bomb{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    bomb = "\n".join(lines) + "\n"
    use = f"*a{levels - 1}"
    if rng.random() < 0.5:  # as a value the validator has to look at
        return (bomb + _replace_a_value(text, rng, use)).encode(), ".yaml"
    return (bomb + text).encode(), ".yaml"


def bad_bytes(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    data = text.encode()
    at = rng.randrange(len(data) + 1)
    junk = rng.choice([
        b"\xe9", b"caf\xe9", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\x01", b"\x1b[31m",
        bytes(rng.randrange(256) for _ in range(64)), b"\x89PNG\r\n\x1a\n",
    ])
    if rng.random() < 0.2:
        return junk + data, ".yaml"
    return data[:at] + junk + data[at:], ".yaml"


def json_text(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
    """The spec as JSON, then broken the way hand-edited JSON breaks."""
    out = json.dumps(yaml.safe_load(text), indent=2)
    action = rng.choice(["trailing_comma", "drop_brace", "drop_comma", "single_quotes", "big_int", "deep"])
    if action == "trailing_comma":
        ends = [m.start() for m in re.finditer(r"\n\s*[}\]]", out)]
        at = rng.choice(ends)
        out = out[:at] + "," + out[at:]
    elif action == "drop_brace":
        braces = [m.start() for m in re.finditer(r"[{}\[\]]", out)]
        at = rng.choice(braces)
        out = out[:at] + out[at + 1:]
    elif action == "drop_comma":
        commas = [m.start() for m in re.finditer(",", out)]
        if commas:
            at = rng.choice(commas)
            out = out[:at] + out[at + 1:]
    elif action == "single_quotes":
        out = out.replace('"', "'", rng.randint(1, 5))
    elif action == "big_int":
        out = out[:-1] + ', "big": ' + "7" * rng.choice([4299, 4301, 5000, 100_000]) + "}"
    else:
        depth = rng.choice([101, 1000, 100_000])
        out = out[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    return out.encode(), ".json"


# -- structural: on the loaded data ---------------------------------------------------------------


def _hostile_values(rng: random.Random, big: int) -> list[Any]:
    deep: Any = 1
    for _ in range(rng.choice([20, 99, 150])):
        deep = [deep]
    return [
        None, True, False, "", "x", "fc1", "loss", -1, 0, 1, 3, 0.5, -0.5, 2**31, 2**63, 10**30,
        1e308, float("inf"), float("nan"), [], {}, [1, 2], {"a": 1}, {"type": "sgd"}, "y" * 100_000,
        deep, [1] * big, list(range(big)), {f"k{i}": i for i in range(min(big, 5000))},
    ]


def _places(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in the data, found without recursion."""
    places = []
    pending = [data]
    while pending:
        node = pending.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, value in items:
            places.append((node, key))
            if isinstance(value, (dict, list)):
                pending.append(value)
    return places


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word + "x"
    i = rng.randrange(len(word))
    return rng.choice([word[:i] + word[i + 1:], word[:i] + "z" + word[i:], word[:i] + word[i].upper() + word[i + 1:]])


def _structural(change: Callable[[Any, random.Random, int], None]):
    """A mutation that changes the loaded data in place, then writes YAML (or JSON)."""

    def mutate(text: str, rng: random.Random, big: int) -> tuple[bytes, str]:
        data = yaml.safe_load(text)
        change(data, rng, big)
        return _json(data) if rng.random() < 0.3 else _yaml(data)

    mutate.__name__ = change.__name__
    return mutate


def _drop_key(data: Any, rng: random.Random, big: int) -> None:
    places = [(c, k) for c, k in _places(data) if isinstance(c, dict)]
    container, key = rng.choice(places)
    del container[key]


def _rename_key(data: Any, rng: random.Random, big: int) -> None:
    places = [(c, k) for c, k in _places(data) if isinstance(c, dict)]
    for container, key in rng.sample(places, min(len(places), rng.randint(1, 3))):
        if key in container:
            container[_typo(str(key), rng)] = container.pop(key)


def _replace_value(data: Any, rng: random.Random, big: int) -> None:
    container, key = rng.choice(_places(data))
    container[key] = rng.choice(_hostile_values(rng, big))


def _add_key(data: Any, rng: random.Random, big: int) -> None:
    mappings = [data] + [c[k] for c, k in _places(data) if isinstance(c[k], dict)]
    target = rng.choice(mappings)
    target[rng.choice(["extra", "unitz", "op", "inputs", "1", "<<", "x" * 300])] = rng.choice(
        _hostile_values(rng, big)
    )


def _nodes_of(data: Any) -> dict:
    nodes = data.get("nodes") if isinstance(data, dict) else None
    return nodes if isinstance(nodes, dict) else {}


def _add_node(data: Any, rng: random.Random, big: int) -> None:
    nodes = _nodes_of(data)
    if not nodes:
        data["nodes"] = nodes
    name = rng.choice(["extra", "fc1", "loss", "image"])
    source = rng.choice(list(nodes) + ["image", "label", name, "nowhere"])
    nodes[name] = {"op": rng.choice(["relu", "linear", "concat", "add", "dropout"]),
                   "inputs": {"x": source}, "attrs": rng.choice([{}, {"units": 3}, {"rate": 0.5}])}


def _rewire(data: Any, rng: random.Random, big: int) -> None:
    nodes = _nodes_of(data)
    wired = [(name, node) for name, node in nodes.items() if isinstance(node, dict) and isinstance(node.get("inputs"), dict) and node["inputs"]]
    if not wired:
        return _replace_value(data, rng, big)
    name, node = rng.choice(wired)
    role = rng.choice(list(node["inputs"]))
    node["inputs"][role] = rng.choice(list(nodes) + [name, "nowhere", ["a", "b"], [], 5])


def _change_op(data: Any, rng: random.Random, big: int) -> None:
    nodes = [n for n in _nodes_of(data).values() if isinstance(n, dict)]
    if not nodes:
        return _replace_value(data, rng, big)
    from graphnet.registry import default_registry

    node = rng.choice(nodes)
    ops = default_registry().names()
    node["op"] = rng.choice(ops + [_typo(rng.choice(ops), rng), "", "x" * 1000])


def _layer_sizes(data: Any, rng: random.Random, big: int) -> None:
    layers = data.get("layers")
    if not isinstance(layers, dict):
        data["layers"] = layers = {"input": "image", "labels": "label"}
    sizes = list(layers.get("sizes") or [784, 10])
    choice = rng.choice(["long", "extreme", "short", "long"])
    if choice == "long":
        layers["sizes"] = [sizes[0]] + [rng.choice([1, 2, 10])] * big + [sizes[-1]]
    elif choice == "extreme":
        sizes[rng.randrange(len(sizes))] = rng.choice([0, -1, 2**24, 2**24 + 1, 2**31, 2**63, 10**30])
        layers["sizes"] = sizes
    else:
        layers["sizes"] = sizes[:1]


MUTATIONS: list[Callable[[str, random.Random, int], tuple[bytes, str]]] = [
    delete_span, insert_syntax, shuffle_lines, truncate, extreme_number, deep_nesting, alias_bomb,
    bad_bytes, json_text,
    _structural(_drop_key), _structural(_rename_key), _structural(_replace_value),
    _structural(_add_key), _structural(_add_node), _structural(_rewire), _structural(_change_op),
    _structural(_layer_sizes),
]


def make_case(rng: random.Random, big: int = BIG, mutation: int | None = None) -> tuple[str, bytes, str]:
    """(name of the mutation, the file's bytes, its suffix) for one case drawn from ``rng``."""
    source = rng.choice(SPECS)
    mutate = MUTATIONS[mutation if mutation is not None else rng.randrange(len(MUTATIONS))]
    content, suffix = mutate(source.read_text(encoding="utf-8"), rng, big)
    return f"{mutate.__name__}({source.stem})", content, suffix


# ----------------------------------------------------------------------------------------------
# Running one case
# ----------------------------------------------------------------------------------------------


class Hang(Exception):
    """The case ran past its time limit."""


class time_limit:
    """``with time_limit(s):`` raises Hang after ``s`` seconds (SIGALRM: the main thread only)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def expire(signum: int, frame: Any) -> None:
            raise Hang(f"still running after {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: Any) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


def run_case(path: Path, run_model: bool = True) -> str:
    """Load, build and (if accepted and small) run one step of the spec at ``path``.

    Returns "accepted: ran", "accepted: not run (...)" or the GraphnetError class name; any
    other exception propagates (it is a bug)."""
    import numpy as np

    from graphnet import Model, build_graph, load_spec
    from graphnet.errors import GraphnetError

    try:
        graph = build_graph(load_spec(path))
        if not run_model:
            return "accepted"
        activations = sum(int(np.prod(node.shape)) for node in graph.nodes.values())
        if graph.param_count() > RUN_LIMIT or activations > RUN_LIMIT or len(graph.nodes) > RUN_NODES:
            return "accepted: not run (too large for a quick step)"
        model = Model(graph, seed=0)
        batch = _batch(graph, 2)
        losses = [name for name in graph.outputs if graph.nodes[name].op.reduces_batch]
        result = model.forward(batch, outputs=losses[:1] or None, training=True)
        if losses:
            result.backward(losses[0])
        return "accepted: ran"
    except GraphnetError as error:
        return type(error).__name__


def _batch(graph: Any, size: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    batch = {}
    for name, shape in graph.inputs.items():
        dtype = graph.input_dtypes[name]
        if dtype.startswith(("int", "uint")):
            batch[name] = np.zeros((size, *shape), dtype)  # class 0: a valid label for any loss
        else:
            batch[name] = rng.standard_normal((size, *shape)).astype(dtype)
    return batch


def where_raised(error: BaseException) -> str:
    """``Type at file:line`` of the deepest frame in graphnet (else the deepest frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/graphnet/" in f.filename] or frames
    place = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(error).__name__} at {place}"


def outcome_of(path: Path, timeout: float) -> tuple[str, str]:
    """(kind, detail): kind is "accepted", "typed", "other" or "hang"."""
    try:
        with time_limit(timeout):
            result = run_case(path)
    except Hang:
        return "hang", ""
    except Exception as error:  # RecursionError, MemoryError, ValueError...: all bugs
        return "other", where_raised(error) + f": {str(error)[:120]}"
    if result.startswith("accepted"):
        return "accepted", result
    return "typed", result


# ----------------------------------------------------------------------------------------------
# The benchmark: batches of cases in subprocesses
# ----------------------------------------------------------------------------------------------


def worker(seed: int, start: int, count: int, timeout: float, big: int) -> None:
    """Run cases start..start+count-1, printing one JSON line per case as it finishes."""
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(start, start + count):
            name, content, suffix = make_case(random.Random(f"{seed}-{index}"), big)
            path = Path(tmp) / f"case{suffix}"
            path.write_bytes(content)
            began = time.perf_counter()
            kind, detail = outcome_of(path, timeout)
            seconds = time.perf_counter() - began
            print(json.dumps({"index": index, "mutation": name, "kind": kind, "detail": detail,
                              "seconds": round(seconds, 3)}), flush=True)


def run_batches(cases: int, seed: int, batch: int, timeout: float, big: int) -> list[dict]:
    results: dict[int, dict] = {}
    index = 0
    while index < cases:
        count = min(batch, cases - index)
        command = [sys.executable, __file__, "--worker", "--seed", str(seed), "--start", str(index),
                   "--cases", str(count), "--timeout", str(timeout), "--big", str(big)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=count * (timeout + 5) + 30)
            output, crashed = done.stdout, done.returncode != 0
        except subprocess.TimeoutExpired as expired:
            output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
            crashed = True
        for line in output.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                results[record["index"]] = record
        finished = [i for i in range(index, index + count) if i in results]
        if crashed and len(finished) < count:
            # the case after the last one reported killed or hung the worker; go on after it
            lost = (max(finished) + 1) if finished else index
            results[lost] = {"index": lost, "mutation": "?", "kind": "hang",
                             "detail": "worker died or hung", "seconds": None}
            index = lost + 1
        else:
            index += count
        print(f"  {len(results)}/{cases} cases", file=sys.stderr, flush=True)
    return [results[i] for i in sorted(results)]


def report(records: list[dict], show: int) -> None:
    kinds = collections.Counter(r["kind"] for r in records)
    print(f"cases: {len(records)}")
    print(f"accepted: {kinds['accepted']}")
    for detail, count in collections.Counter(r["detail"] for r in records if r["kind"] == "accepted").most_common():
        print(f"  {count:5d}  {detail}")
    print(f"typed errors: {kinds['typed']}")
    for detail, count in collections.Counter(r["detail"] for r in records if r["kind"] == "typed").most_common():
        print(f"  {count:5d}  {detail}")
    print(f"other exceptions: {kinds['other']}")
    for detail, count in collections.Counter(r["detail"] for r in records if r["kind"] == "other").most_common(show):
        print(f"  {count:5d}  {detail}")
    print(f"hangs: {kinds['hang']}")
    for record in [r for r in records if r["kind"] == "hang"][:show]:
        print(f"         case {record['index']} {record['mutation']} {record['detail']}")
    timed = sorted((r for r in records if r["seconds"] is not None), key=lambda r: -r["seconds"])
    print("slowest cases:")
    for record in timed[:show]:
        print(f"  {record['seconds']:7.3f} s  case {record['index']} {record['mutation']} -> {record['detail']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=100, help="cases per subprocess")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a case is a hang")
    parser.add_argument("--big", type=int, default=BIG, help="length of the long hostile lists")
    parser.add_argument("--show", type=int, default=5, help="how many locations and slow cases to list")
    parser.add_argument("--save", type=Path, help="write every case's record (JSON lines) here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.seed, args.start, args.cases, args.timeout, args.big)
        return
    began = time.perf_counter()
    records = run_batches(args.cases, args.seed, args.batch, args.timeout, args.big)
    if args.save:
        args.save.write_text("".join(json.dumps(record) + "\n" for record in records))
    report(records, args.show)
    print(f"wall time: {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()

"""Fuzz the model file reader: mutate valid files, load each, count what happens.

    .venv/bin/python bench/modelfile_fuzz.py [--cases 10000] [--seed 0] [--timeout 10] [--batch 500]

Every case is a valid model file (format 2 with every field and tensor group; the 714 KB
seed-softmax model; the golden files of formats 1 and 2) changed by one deterministic mutation:

- bytes: bit flips, overwritten, cut, inserted or deleted bytes, anywhere or in one section
  (prelude, header, padding, tensors);
- re-signed headers: a value anywhere in the header replaced by a hostile one (wrong types, huge
  or negative integers, NaN, long strings and lists, deep nesting, binary, Timestamp extension), a
  key deleted or added, a list entry duplicated, then the header checksum recomputed, so that only
  the content checks can catch it;
- re-signed tensors: NaN/Inf or random bytes in a tensor, its checksum recomputed;
- the embedded spec: layer sizes and units changed (up to 2**40), 100,000 layers;
- format 1: the same structural mutations inside the payload, re-checksummed.

Cases run in worker processes (a fresh one every --batch cases, and after any hang or crash),
each case with a deadline. Each load runs under tracemalloc: a case whose peak traced memory
exceeds 4 x the file size + 32 MiB is a memory blow-up (a model that loads legitimately holds its
parameters, gradients and decay mask: 3 x its tensors). Printed: how many cases loaded, were
refused with a ModelFileError, raised anything else (with where), hung, crashed, or blew up
memory.
"""

from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import json
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELUDE = struct.Struct("<8sIIQ32s")
MAGIC = b"\x89GNM\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------
# The valid files mutations start from
# ----------------------------------------------------------------------------------------------


def base_files(folder: Path) -> dict[str, bytes]:
    import numpy as np

    from graphnet import Model, load_spec
    from graphnet.modelfile import rng_state_to_plain, save_model

    full = Model.from_spec(load_spec(ROOT / "specs" / "skip-mlp.yaml"), seed=3)
    save_model(folder / "full.gnm", full, {"epochs": [{"epoch": 1, "lr": 0.1, "val_error": 0.5}], "best_epoch": 1},
               {"test_error": 0.25},
               preprocess={"input": "image", "raw_shape": [28, 28], "raw_dtype": "uint8", "scale": 255.0,
                           "mean": 0.13, "std": 0.31, "flatten": True,
                           "labels": {"input": "label", "one_hot": False, "classes": 10, "names": None}},
               classes={"count": 10, "names": [str(i) for i in range(10)]}, data="mnist",
               resume={"epoch": 1, "rng": rng_state_to_plain(np.random.default_rng(1))},
               optimizer={"m/stem.b": np.ones(256, np.float32)}, state={"count": np.arange(3)})
    softmax = Model.from_spec(load_spec(ROOT / "specs" / "seed-softmax.yaml"), seed=0)
    save_model(folder / "softmax.gnm", softmax)
    found = {"full": (folder / "full.gnm").read_bytes(), "softmax": (folder / "softmax.gnm").read_bytes()}
    for path in sorted((ROOT / "tests" / "golden").glob("*.gnm")):
        found[path.stem] = path.read_bytes()
    return found


# ----------------------------------------------------------------------------------------------
# Mutations (deterministic: case i always gives the same bytes)
# ----------------------------------------------------------------------------------------------


def split(data: bytes):
    _, _, _, length, _ = PRELUDE.unpack_from(data)
    start = -(-(56 + length) // 64) * 64
    import msgpack

    return msgpack.unpackb(data[56 : 56 + length], strict_map_key=False), data[start:], length, start


def sign(header, section: bytes) -> bytes:
    import msgpack

    body = msgpack.packb(header, use_bin_type=True)
    start = -(-(56 + len(body)) // 64) * 64
    return PRELUDE.pack(MAGIC, 2, 0, len(body), hashlib.sha256(body).digest()) + body + bytes(
        start - 56 - len(body)) + section


def hostile_value(rng: random.Random, depth: int = 0):
    import msgpack

    choices = [
        lambda: None, lambda: True, lambda: False, lambda: 0, lambda: 1, lambda: -1, lambda: 2**31,
        lambda: 2**40, lambda: 2**63 - 1, lambda: -(2**63), lambda: 2**64 - 1, lambda: rng.randint(-1000, 1000),
        lambda: 1.0, lambda: -0.0, lambda: float("nan"), lambda: float("inf"), lambda: 1e308,
        lambda: "", lambda: "x" * rng.choice([1, 100, 5000, 100_000]), lambda: "<f8", lambda: "float64",
        lambda: "os.system", lambda: "../../etc/passwd", lambda: "\u0000\uffff", lambda: b"\x00" * rng.randint(0, 64),
        lambda: msgpack.Timestamp(rng.randint(0, 2**32), 0), lambda: msgpack.ExtType(rng.randint(0, 127), b"x"),
        lambda: [0] * rng.choice([0, 1, 3, 1000, 100_000]), lambda: {"a": 1},
        lambda: nested_value(rng.choice([10, 33, 100, 500])), lambda: [-1, -5], lambda: [3, 4],
    ]
    if depth < 2:
        choices += [lambda: [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
                    lambda: {str(rng.randint(0, 9)): hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}]
    return rng.choice(choices)()


def nested_value(depth: int):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def all_paths(value, prefix=()):
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += all_paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value[:50]):
            found += all_paths(child, prefix + (index,))
    return found


def mutate_structure(rng: random.Random, tree) -> None:
    """One structural change somewhere in ``tree`` (a header or a format-1 payload), in place."""
    paths = [p for p in all_paths(tree) if p]
    path = rng.choice(paths)
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = rng.choice(["replace", "replace", "replace", "delete", "duplicate", "add"])
    if action == "replace":
        parent[key] = hostile_value(rng)
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif isinstance(parent, dict):
        parent[rng.choice([f"{key}2", "extra", "__class__"])] = hostile_value(rng)
    else:
        parent.append(hostile_value(rng))


def mutate_bytes(rng: random.Random, data: bytes, lo: int = 0, hi: int | None = None) -> bytes:
    data = bytearray(data)
    hi = len(data) if hi is None else hi
    for _ in range(rng.randint(1, 4)):
        if not data or hi <= lo:
            break
        at = rng.randrange(lo, min(hi, len(data))) if min(hi, len(data)) > lo else 0
        kind = rng.choice(["flip", "flip", "set", "cut", "insert", "delete"])
        if kind == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif kind == "set":
            data[at] = rng.choice([0, 0xFF, 0x7F, 0x80, 0xC1, 0xD9, 0xDD, 0xDF, rng.randrange(256)])
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            del data[at : at + rng.randint(1, 16)]
    return bytes(data)


def mutate_spec(rng: random.Random, spec: dict) -> None:
    nodes = spec.get("nodes") or {}
    layers = spec.get("layers")
    choice = rng.randrange(4)
    if choice == 0 and layers:
        layers["sizes"][rng.randrange(len(layers["sizes"]))] = rng.choice([0, -1, 300_000, 2**24, 2**40, 2**63 - 1])
    elif choice == 1 and layers:
        layers["sizes"] = [4] * rng.choice([3, 1000, 5000, 100_000])
    elif choice == 2 and nodes:
        name = rng.choice(list(nodes))
        nodes[name].setdefault("attrs", {})["units"] = rng.choice([0, 1, 300_000, 2**24, 2**40, "10", 1.5, True])
    else:
        mutate_structure(rng, spec)


def make_case(index: int, seed: int, files: dict[str, bytes]) -> tuple[str, bytes]:
    """Case ``index``: (its description, its bytes)."""
    import msgpack
    import numpy as np

    rng = random.Random(f"{seed}:{index}")
    v2 = [name for name in files if not name.startswith("v1-")]
    kind = rng.choice(["bytes", "section", "header", "header", "header", "tensor", "spec", "format1", "format1-bytes"])
    if kind in ("format1", "format1-bytes"):
        base = rng.choice([name for name in files if name.startswith("v1-")])
        data = files[base]
        if kind == "format1-bytes":
            return f"{kind} {base}", mutate_bytes(rng, data)
        outer = msgpack.unpackb(data)
        payload = msgpack.unpackb(outer["payload"])
        if rng.random() < 0.2:
            mutate_spec(rng, payload["spec"])
        else:
            mutate_structure(rng, payload)
        packed = msgpack.packb(payload, use_bin_type=True)
        outer["payload"], outer["sha256"] = packed, hashlib.sha256(packed).hexdigest()
        if rng.random() < 0.1:
            mutate_structure(rng, outer)
        return f"{kind} {base}", msgpack.packb(outer, use_bin_type=True)
    base = rng.choice(v2)
    data = files[base]
    header, section, length, start = split(data)
    if kind == "bytes":
        return f"{kind} {base}", mutate_bytes(rng, data)
    if kind == "section":
        where = rng.choice([(0, 56), (56, 56 + length), (56 + length, start), (start, len(data))])
        return f"{kind}{where} {base}", mutate_bytes(rng, data, *where)
    if kind == "header":
        mutate_structure(rng, header)
        return f"{kind} {base}", sign(header, section)
    if kind == "spec":
        mutate_spec(rng, header["spec"])
        return f"{kind} {base}", sign(header, section)
    entries = [e for group in ("params", "state", "optimizer") for e in header["tensors"][group]]
    entry = rng.choice(entries)
    raw = bytearray(section[entry["offset"] : entry["offset"] + entry["nbytes"]])
    if entry["dtype"] in ("<f4", "<f8"):
        values = np.frombuffer(bytes(raw), entry["dtype"]).copy()
        values[rng.randrange(values.size)] = rng.choice([np.nan, np.inf, -np.inf])
        raw = bytearray(values.tobytes())
    else:
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    entry["sha256"] = [hashlib.sha256(bytes(raw[i : i + (16 << 20)])).hexdigest() for i in range(0, len(raw), 16 << 20)]
    section = section[: entry["offset"]] + bytes(raw) + section[entry["offset"] + len(raw) :]
    return f"{kind} {base}", sign(header, section)


# ----------------------------------------------------------------------------------------------
# The worker: runs cases, one JSON line each
# ----------------------------------------------------------------------------------------------


def worker(seed: int, folder: Path) -> None:
    import tracemalloc

    from graphnet.errors import ModelFileError
    from graphnet.modelfile import load_model

    files = base_files(folder)
    path = folder / "case.gnm"
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        index = int(line)
        what, data = make_case(index, seed, files)
        path.write_bytes(data)
        result = {"i": index, "what": what, "size": len(data)}
        tracemalloc.start()
        started = time.perf_counter()
        try:
            load_model(path)
            result["outcome"] = "loaded"
        except ModelFileError as error:
            text = str(error)
            result["outcome"] = "refused" if text.startswith(f"{path}: ") else "other"
            if result["outcome"] == "other":
                result["where"] = f"ModelFileError without the file name: {text[:120]}"
        except Exception as error:  # what the reader must never do: counted, with where
            frames = traceback.extract_tb(error.__traceback__)
            ours = [f for f in frames if "graphnet" in f.filename] or frames
            last = ours[-1]
            result["outcome"] = "other"
            result["where"] = (f"{type(error).__name__} at {Path(last.filename).name}:{last.lineno} "
                               f"({last.name}): {str(error)[:100]}")
        finally:
            result["seconds"] = time.perf_counter() - started
            result["peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        print(json.dumps(result), flush=True)


def replay(index: int, seed: int) -> None:
    """Run one case here, printing what it is, how long it takes and how it ends."""
    from graphnet.modelfile import load_model

    with tempfile.TemporaryDirectory() as folder:
        what, data = make_case(index, seed, base_files(Path(folder)))
        path = Path(folder) / "case.gnm"
        path.write_bytes(data)
        print(f"case {index}: {what}, {len(data):,} bytes")
        started = time.perf_counter()
        try:
            load_model(path)
            print("loaded", end="")
        except Exception as error:
            print(f"{type(error).__name__}: {error}", end="")
        print(f" in {time.perf_counter() - started:.2f} s")


# ----------------------------------------------------------------------------------------------
# The driver: hands out cases, enforces deadlines, counts
# ----------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, seed: int, folder: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--seed", str(seed), "--folder", folder],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        if self.readline(120) != {"ready": True}:
            self.stop()
            sys.exit("a worker failed to start (graphnet does not import?); see its traceback above")

    def readline(self, timeout: float) -> dict | None:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else {"crashed": self.process.poll()}

    def run(self, index: int, timeout: float) -> dict | None:
        try:
            self.process.stdin.write(f"{index}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return {"crashed": self.process.poll()}
        return self.readline(timeout)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a case may take")
    parser.add_argument("--batch", type=int, default=500, help="cases per worker process")
    parser.add_argument("--replay", type=int, default=None, help="run case N in this process and time it")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.seed, Path(args.folder))
        return
    if args.replay is not None:
        replay(args.replay, args.seed)
        return

    counts = collections.Counter()
    others = collections.Counter()
    examples: dict[str, str] = {}
    blowups, hangs, crashes = [], [], []
    kinds = collections.Counter()
    biggest, slowest = (0, None), (0.0, None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        current: Worker | None = None
        done_in_batch = 0
        for index in range(args.cases):
            if current is None or done_in_batch >= args.batch:
                if current is not None:
                    current.stop()
                current, done_in_batch = Worker(args.seed, folder), 0
            result = current.run(index, args.timeout)
            done_in_batch += 1
            if result is None:
                hangs.append(index)
                counts["hang"] += 1
                print(f"hang: case {index} took more than {args.timeout} s (--replay {index} to see it)", flush=True)
                current.stop()
                current = None
                continue
            if "crashed" in result:
                crashes.append((index, result["crashed"]))
                counts["crash"] += 1
                current.stop()
                current = None
                continue
            counts[result["outcome"]] += 1
            kinds[(result["what"].split()[0].split("(")[0], result["outcome"])] += 1
            if result["outcome"] == "other":
                key = result["where"].split(":")[0] + ":" + result["where"].split(":")[1].split()[0] \
                    if " at " in result["where"] else result["where"][:60]
                others[key] += 1
                examples.setdefault(key, f"case {index} ({result['what']}): {result['where']}")
            limit = 4 * result["size"] + 32 * 2**20
            if result["peak"] > biggest[0]:
                biggest = (result["peak"], f"case {index} ({result['what']}, {result['outcome']}), "
                                           f"file {result['size']:,} bytes")
            if result["peak"] > limit:
                blowups.append((index, result["what"], result["size"], result["peak"]))
            if result["seconds"] > slowest[0]:
                slowest = (result["seconds"], f"case {index} ({result['what']})")
            if (index + 1) % 1000 == 0:
                print(f"... {index + 1:,} cases, {time.perf_counter() - started:.0f} s: {dict(counts)}", flush=True)
        if current is not None:
            current.stop()

    total = sum(counts.values())
    print(f"\n{total:,} cases (seed {args.seed}) in {time.perf_counter() - started:.0f} s")
    for outcome in ("loaded", "refused", "other", "hang", "crash"):
        print(f"  {outcome:>8}: {counts[outcome]:,}")
    print(f"  memory blow-ups (peak > 4 x file + 32 MiB): {len(blowups)}")
    for item in blowups[:10]:
        print(f"    case {item[0]} ({item[1]}): file {item[2]:,} bytes, peak {item[3]:,} bytes")
    print(f"  largest peak traced memory: {biggest[0] / 2**20:.1f} MiB, {biggest[1]}")
    print(f"  slowest case: {slowest[0]:.2f} s, {slowest[1]}")
    if others:
        print("  other exceptions, by place:")
        for key, count in others.most_common():
            print(f"    {count:>5} x {key}   e.g. {examples[key]}")
    if hangs:
        print(f"  hangs (> {args.timeout} s): cases {hangs[:20]}")
    if crashes:
        print(f"  crashes: {crashes[:20]}")
    print("  by mutation: " + ", ".join(f"{k[0]}/{k[1]} {v}" for k, v in sorted(kinds.items())))
    sys.exit(1 if counts["other"] or counts["hang"] or counts["crash"] or blowups else 0)


if __name__ == "__main__":
    main()

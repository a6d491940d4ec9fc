"""Model file speed: save and load of a 100M-parameter model in GB/s, and the time to read the
header alone of that file.

    .venv/bin/python bench/modelfile_speed.py [--params 100_000_000] [--dtype float32] [--repeat 5] [--dir DIR]

The model is one linear layer (a spec with big weights, nothing else), so the numbers are the
file format's: saving streams the parameters to a temporary file while hashing them (SHA-256),
fsyncs it and renames it into place; loading checks the header, builds the graph, allocates the
model without random initialisation and reads every tensor straight into it, checking its
SHA-256 and that it holds no NaN/Inf. The file is read back from the page cache (a file just
written is there); the first load of a file from a cold disk is bounded by the disk instead.
GB is 10^9 bytes. For scale, the same bytes are also written (with fsync) and read as a plain
file, and hashed, without graphnet: on a shared machine the ratios say more than the rates.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from graphnet import Model
from graphnet.graph import build_graph
from graphnet.modelfile import load_model, read_header, save_model
from graphnet.spec import validate_spec_data


def big_model(params: int, dtype: str) -> Model:
    """One linear layer with about ``params`` parameters (in x units + units)."""
    width = int(math.isqrt(params))
    spec = validate_spec_data({
        "format": 1, "name": "big-linear",
        "inputs": {"x": {"shape": [width], "dtype": "float32"}},
        "nodes": {"fc": {"op": "linear", "inputs": {"x": "x"}, "attrs": {"units": width}}},
        "outputs": ["fc"],
    })
    model = Model(build_graph(spec), dtype=dtype, initialize=False)
    rng = np.random.default_rng(0)
    for name, value in model.params.items():  # random values, written in slices (little memory)
        flat = value.reshape(-1)
        for start in range(0, flat.size, 1 << 24):
            flat[start : start + (1 << 24)] = rng.standard_normal(min(1 << 24, flat.size - start))
    return model


def plain_write(path: Path, data: memoryview) -> None:
    with open(path, "wb", buffering=0) as handle:
        for start in range(0, len(data), 8 << 20):
            handle.write(data[start : start + (8 << 20)])
        os.fsync(handle.fileno())


def plain_read(path: Path, nbytes: int) -> np.ndarray:
    target = np.empty(nbytes, np.uint8)
    view = memoryview(target)
    with open(path, "rb", buffering=0) as handle:
        done = 0
        while done < nbytes:
            done += handle.readinto(view[done:])
    return target


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=lambda s: int(s.replace("_", "")), default=100_000_000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write the file (default: a temporary folder)")
    args = parser.parse_args()

    model = big_model(args.params, args.dtype)
    nbytes = model.flat_params.nbytes
    raw = memoryview(model.flat_params).cast("B")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "big.gnm"
        plain = Path(folder) / "plain.bin"
        saves, loads, writes, reads, hashes = [], [], [], [], []
        for _ in range(args.repeat):  # alternated in rounds: graphnet, then the same bytes without it
            saves += timed(lambda: save_model(path, model), 1)
            writes += timed(lambda: plain_write(plain, raw), 1)
            loads += timed(lambda: load_model(path), 1)
            reads += timed(lambda: plain_read(plain, nbytes), 1)
            hashes += timed(lambda: hashlib.sha256(raw).digest(), 1)
        size = os.path.getsize(path)
        loaded = load_model(path).model
        assert np.array_equal(loaded.flat_params, model.flat_params)
        headers = timed(lambda: read_header(path), max(args.repeat, 5))

    def rate(times: list[float]) -> str:
        return (f"median {nbytes / statistics.median(times) / 1e9:.2f} GB/s, best "
                f"{nbytes / min(times) / 1e9:.2f} GB/s ({', '.join(f'{t:.3f}' for t in times)} s)")

    print(f"model: {model.size:,} parameters, {args.dtype}, {nbytes / 1e9:.3f} GB of tensors; file {size:,} bytes")
    print(f"save (stream + sha256 + fsync + rename): {rate(saves)}")
    print(f"load (checks + allocate + read + sha256 + NaN check): {rate(loads)}")
    print(f"read_header: median {statistics.median(headers) * 1e3:.2f} ms, best {min(headers) * 1e3:.2f} ms")
    print("for comparison, the same bytes without graphnet:")
    print(f"  write + fsync of a plain file: {rate(writes)}")
    print(f"  read of that file into a new buffer: {rate(reads)}")
    print(f"  sha256 alone: {rate(hashes)}")
    ratio = [plain / ours for ours, plain in zip(saves, writes)]
    print(f"save speed / plain write+fsync speed, per round: median {statistics.median(ratio):.2f} "
          f"({', '.join(f'{r:.2f}' for r in ratio)})")


if __name__ == "__main__":
    main()

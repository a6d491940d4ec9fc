"""The speed-up of a finished `graphnet sweep` over running the same trials one after another.

    GRAPHNET_DATA=../shared/data .venv/bin/python bench/sweep_speed.py runs/mnist-sweep [--threads 1 2]

Reads the sweep's results.json (its wall time, and each trial's values and the epochs it ran,
ASHA's early stops included), then reruns every trial with `graphnet run` on the sweep's spec,
one after another: the trial's values as --set flags and train.epochs set to the epochs the trial
trained (an epoch costs the same whatever the schedule makes of it), in a fresh process each,
with BLAS pinned to each --threads value (OPENBLAS/OMP/MKL_NUM_THREADS). Prints, per thread
count, the sequential wall time and the sweep's speed-up over it (sequential / sweep). Run it
right after the sweep, on the same (quiet) machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the sweep's output folder (holding results.json)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="BLAS threads of the sequential runs (one pass per value)")
    args = parser.parse_args()
    results = json.loads((Path(args.folder) / "results.json").read_text())
    graphnet = Path(sys.executable).with_name("graphnet")
    trials = [t for t in results["trials"] if t["status"] in ("completed", "stopped")]
    print(f"sweep {results['sweep']}: {len(trials)} trials in {results['seconds']:.1f} s ({results['cluster']}); "
          f"trial time summed: {sum(t['seconds'] for t in trials):.1f} s")
    for threads in args.threads:
        env = {**os.environ, **{name: str(threads) for name in
                                ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
        total = 0.0
        with tempfile.TemporaryDirectory() as folder:
            for trial in trials:
                command = [str(graphnet), "run", results["spec"], "--out", f"{folder}/{trial['trial']}.gnm",
                           "--set", f"train.epochs={trial['epochs']}"]
                for path, value in trial["values"].items():
                    command += ["--set", f"{path}={json.dumps(value)}"]
                started = time.perf_counter()
                subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
                seconds = time.perf_counter() - started
                total += seconds
                print(f"  {trial['trial']}: {trial['epochs']} epochs in {seconds:.1f} s "
                      f"(in the sweep: {trial['seconds']:.1f} s)", flush=True)
        print(f"one after another, {threads} BLAS thread{'s' if threads > 1 else ''}: {total:.1f} s; "
              f"the sweep's speed-up: {total / results['seconds']:.2f}x")


if __name__ == "__main__":
    main()

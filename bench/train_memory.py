"""Memory of training: peak RSS of a short `graphnet run` of the MNIST recipe against what the
run has to hold, and what one steady-state training step allocates.

    GRAPHNET_DATA=../shared/data .venv/bin/python bench/train_memory.py [--epochs 2] [--steps 20]

The targets (issue #9): peak RSS while training MNIST stays under 2x (dataset + parameters +
optimizer state + one batch's activations); a steady-state training step allocates no new
parameter-sized arrays.

The run is the recommended recipe, specs/mnist-mlp.yaml (784-800-800-10, ReLU, dropout 0.2,
shift augmentation, Adam, batch 128, keep-best on validation) with train.epochs set to
--epochs, on MNIST as `graphnet run` finds it (--data-dir, $GRAPHNET_DATA/mnist, the cache,
/usr/share/datasets/mnist); when MNIST is nowhere, on Fashion-MNIST (train.data.dataset
overridden; the output says which). Every measurement runs in a fresh process of this
interpreter, so nothing but that measurement is in its memory; this driver imports no numpy,
because Linux counts the parent's high-water mark into a child's ru_maxrss across exec.
BLAS threads are pinned to --threads (OPENBLAS/OMP/MKL_NUM_THREADS, default 1) in every child.

1. Peak RSS. A baseline process imports numpy and the graphnet modules `graphnet run` imports
   (graphnet.cli.train, graphnet.spec, graphnet.train.loop, graphnet.modelfile) and does nothing: its RSS is the
   interpreter's price, reported separately. The training process imports the same, loads the
   spec with the epochs override, and runs `graphnet run`'s code: ``loop.prepare`` (graph,
   memory check, data), then ``loop.train`` with `graphnet run`'s own checkpoint function
   (``graphnet.cli.train.model_file_checkpoint``: the model file with the resume snapshot), into
   a temporary folder. Its peak is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` at the end; ru_maxrss is
   also read at every step, validation, checkpoint and at the test evaluation, which says in
   which phase the peak was reached, and so is the RSS itself, whose highest value after the
   data load is the peak of the training proper (to within a step). The budget is the target's
   formula, each part stated: the dataset's arrays as loaded (train + validation + test, x
   float32 and y), parameters, gradients, Adam's two moments, and one training batch's
   activations (graphnet.model's ``memory_need`` estimate: the inputs plus twice every node's
   output). graphnet's own accounting (``loop.training_memory_need``: its seven flat buffers
   and an evaluation batch's activations) is printed for comparison. The ratio is printed as
   peak / budget (the target's) and as (peak - baseline) / budget.

2. Steady-state step allocations. A process builds the model and the optimizer as
   ``loop.train`` does and runs the loop's own per-step code, ``loop._train_epoch``, first on
   --warmup batches (not traced), then, with tracemalloc on (numpy reports its array buffers to
   it), on 1 + --steps batches; the first traced step also starts the epoch (generators, the
   permutation) and is left out. tracemalloc keeps no record of blocks already freed, so a
   ``sys.settrace`` hook reads tracemalloc's peak at every Python line, call and return and
   resets it: the rise of traced memory above its level at the start of a line is the size of
   the array that line allocated (the sum when it holds several at once), attributed to that
   line with its Python call stack. Per step: the largest rise and where, the peak above the
   step's start, and the count of rises that are parameter-sized: at least the smallest
   weight matrix larger than a batch's activations (fc1.w, 784x800) or the whole flat
   parameter buffer, or exactly one parameter tensor's size (any tensor of >= 16 KiB, in
   float32 or float64: this catches a per-step copy of fc3.w, 800x10, too, which is smaller
   than a batch's activations and so cannot be told apart by a size threshold). tracemalloc
   snapshots at the first and the last step boundary say what the steps kept, and where.

The exit status is 1 when a target is missed; the last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "mnist-mlp.yaml"
TARGET = 2.0  # peak RSS / budget
MiB = 1 << 20
RISE_FLOOR = 16 * 1024  # rises below this are not recorded (Python objects, index arrays)
MATCH_SLACK = 512  # a rise within this of a tensor's size is that tensor's size (array header)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the RSS run (default 2)")
    parser.add_argument("--warmup", type=int, default=10, help="untraced steps before tracing (default 10)")
    parser.add_argument("--steps", type=int, default=20, help="steady-state steps traced (default 20)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads in every child (default 1)")
    parser.add_argument("--data-dir", default=None, help="as `graphnet run --data-dir` (default: searched)")
    parser.add_argument("--child", choices=("baseline", "train", "steps"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child](args)
        print("RESULT " + json.dumps(result))
        return
    for name in THREAD_VARIABLES:
        os.environ[name] = str(args.threads)
    baseline = child("baseline", args)
    run = child("train", args)
    steps = child("steps", args)
    print(f"data: {run['dataset']}")
    print(f"BLAS threads: {args.threads} ({'/'.join(THREAD_VARIABLES)}); python {sys.version.split()[0]}, "
          f"numpy {baseline['numpy']}; every measurement in a fresh process\n")
    rss_ok, rss_line = report_rss(baseline, run, args)
    steps_ok, steps_line = report_steps(steps, args)
    print(f"\nsummary: {rss_line}; {steps_line}: {'PASS' if rss_ok and steps_ok else 'FAIL'}")
    sys.exit(0 if rss_ok and steps_ok else 1)


def child(kind: str, args) -> dict:
    """Run this script as ``--child kind`` in a fresh interpreter; its RESULT line, parsed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--epochs", str(args.epochs), "--warmup", str(args.warmup), "--steps", str(args.steps)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout + done.stderr)
        sys.exit(f"bench/train_memory.py: the {kind} process failed (exit status {done.returncode})")
    return json.loads(lines[-1][len("RESULT "):])


# ----------------------------------------------------------------------------------------------
# The children (each in its own process)
# ----------------------------------------------------------------------------------------------


def rss_now() -> int:
    """Resident set size now, in bytes (/proc/self/statm)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak() -> int:
    """Peak resident set size of this process so far, in bytes (ru_maxrss is in KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def import_graphnet() -> None:
    """What `graphnet run` imports before it reads data (the baseline imports exactly this)."""
    import numpy  # noqa: F401

    import graphnet.cli.train  # noqa: F401
    import graphnet.modelfile  # noqa: F401
    import graphnet.spec  # noqa: F401
    import graphnet.train.loop  # noqa: F401


def baseline_child(args) -> dict:
    import_graphnet()
    import numpy

    return {"rss": rss_now(), "peak": rss_peak(), "numpy": numpy.__version__}


def load_recipe(args, epochs: int):
    """The recipe's spec with train.epochs = ``epochs``, on MNIST, else on Fashion-MNIST; and a
    line saying which data and where it was found."""
    from graphnet.spec import load_spec
    from graphnet.train.data.find import find_dataset

    overrides = [f"train.epochs={epochs}"]
    if args.data_dir:
        return load_spec(SPEC, overrides=overrides), f"--data-dir {args.data_dir}"
    for name in ("mnist", "fashion-mnist"):
        directory, what, _ = find_dataset(name, None, None, None, None)
        if directory is not None:
            if name != "mnist":
                overrides.append(f"train.data.dataset={name}")
            note = "" if name == "mnist" else " (MNIST not found: the Fashion-MNIST fallback)"
            found = what if what == str(directory) else f"{what} = {directory}"
            return load_spec(SPEC, overrides=overrides), f"{name} from {found}{note}"
    sys.exit("neither MNIST nor Fashion-MNIST found: set GRAPHNET_DATA to a folder holding mnist/")


def train_child(args) -> dict:
    """`graphnet run specs/mnist-mlp.yaml --set train.epochs=N`, minus the printing."""
    import_graphnet()
    after_imports = rss_now()
    from graphnet.model import memory_need
    from graphnet.cli.train import model_file_checkpoint
    from graphnet.train.loop import DTYPE, prepare, train, train_section, training_memory_need

    spec, where = load_recipe(args, args.epochs)
    cfg = train_section(spec)
    phases: list[list] = []  # [phase, ru_maxrss when it ended], a row per phase that raised it
    last = [0]
    loaded = [False]
    sampled = [0, ""]  # the highest RSS read after the data was loaded, and in which phase

    def mark(phase: str) -> None:
        if loaded[0]:
            now = rss_now()
            if now > sampled[0]:
                sampled[:] = [now, phase]
        peak = rss_peak()
        if peak > last[0]:
            last[0] = peak
            if phases and phases[-1][0] == phase:
                phases[-1][1] = peak
            else:
                phases.append([phase, peak])

    mark("imports")
    graph, roles, data = prepare(spec, args.data_dir)
    mark("data load (loop.prepare)")
    after_load, loaded[0] = rss_now(), True

    # graphnet run's own checkpoint, writing into a temporary folder
    folder = tempfile.TemporaryDirectory()
    output = Path(folder.name) / f"{spec.name}.gnm"
    save = model_file_checkpoint(output, data)
    epoch = [0]

    def checkpoint(model, log, metrics, resume=None):
        mark("test evaluation" if metrics else f"epoch {epoch[0]} validation")
        save(model, log, metrics, resume=resume)
        mark("final checkpoint (save_model)" if metrics else f"epoch {epoch[0]} checkpoint (save_model)")

    class Progress:
        def epoch_start(self, number: int, epochs: int, steps: int) -> None:
            epoch[0] = number

        def step(self, loss: float, samples: int) -> None:
            mark(f"epoch {epoch[0]} training steps")

        def epoch_end(self, log, best: bool) -> None:
            pass

    result = train(spec, checkpoint=checkpoint, progress=Progress(), prepared=(graph, roles, data))
    mark("after train")
    model_file = output.stat().st_size
    folder.cleanup()

    splits = {"train": data.train, "val": data.val, "test": data.test}
    arrays = {name: [split.x.nbytes, split.y.nbytes, len(split), str(split.x.dtype), str(split.y.dtype)]
              for name, split in splits.items() if split is not None}
    per_sample_inputs = sum(_prod(shape) for shape in graph.inputs.values())
    per_sample_outputs = sum(_prod(node.shape) for node in graph.nodes.values() if not node.op.reduces_batch)
    return {
        "dataset": f"{where}; {data.description}",
        "epochs": len(result.epochs),
        "test_error": result.test.get("error"),
        "samples_per_second": [log.samples_per_second for log in result.epochs],
        "model_file": model_file,
        "rss_after_imports": after_imports,
        "rss_after_load": after_load,
        "peak": rss_peak(),
        "phases": phases,
        "sampled": sampled,
        "arrays": arrays,
        "parameters": graph.param_count(),
        "itemsize": 4 if DTYPE == "float32" else 8,
        "batch_size": cfg.batch_size,
        "activations": memory_need(graph, dtype=DTYPE, batch_size=cfg.batch_size).activations,
        "per_sample_inputs": per_sample_inputs,
        "per_sample_outputs": per_sample_outputs,
        "graphnet_need": training_memory_need(graph, cfg).describe(),
    }


def _prod(shape) -> int:
    total = 1
    for size in shape:
        total *= int(size)
    return total


class LineTracer:
    """A ``sys.settrace`` hook measuring, for every stretch of Python between two trace events
    (the execution of one line in one frame), how far tracemalloc's traced memory rose above its
    level at the start: the arrays that stretch allocated, even those freed before it ended."""

    def __init__(self, skip_file: str) -> None:
        import tracemalloc

        self.tm = tracemalloc
        self.skip_file = skip_file
        self.where = None  # (frame, line) running now
        self.start = 0  # traced bytes when it started
        self.rises: list = []  # this step's [bytes, stack]
        self.steps: list[dict] = []
        self.begin_step()

    def begin_step(self) -> None:
        self.tm.reset_peak()
        self.start = self.step_start = self.step_peak = self.tm.get_traced_memory()[0]
        self.rises = []

    def end_step(self) -> None:
        """At a step boundary (called, untraced, by the progress callback)."""
        self._close()
        self.steps.append({"peak": self.step_peak - self.step_start, "rises": self.rises})
        self.where = None
        self.begin_step()

    def _close(self) -> None:
        """End the current stretch: record its rise."""
        peak = self.tm.get_traced_memory()[1]
        if peak > self.step_peak:
            self.step_peak = peak
        rise = peak - self.start
        if rise >= RISE_FLOOR and self.where is not None:
            self.rises.append([rise, self._stack()])

    def _stack(self) -> list:
        """The running stretch's line, then its callers' (innermost first), up to this file."""
        frame, line = self.where
        stack = []
        while frame is not None and frame.f_code.co_filename != self.skip_file and len(stack) < 12:
            stack.append([frame.f_code.co_filename, line, frame.f_code.co_name])
            frame = frame.f_back
            line = frame.f_lineno if frame is not None else 0
        return stack

    def __call__(self, frame, event, arg):
        self._close()
        local = self
        if event == "call" and frame.f_code.co_filename == self.skip_file:
            self.where, local = None, None  # our own callbacks: not traced
        elif event == "return":
            caller = frame.f_back
            self.where = (caller, caller.f_lineno) if caller is not None else None
        else:
            self.where = (frame, frame.f_lineno)
        self.tm.reset_peak()
        self.start = self.tm.get_traced_memory()[0]
        return local


def steps_child(args) -> dict:
    """The loop's per-step code on warm-up batches, then traced on 1 + --steps batches."""
    import fnmatch
    import tracemalloc

    import_graphnet()
    from graphnet.model import Model
    from graphnet.train.data import Split
    from graphnet.train.loop import DTYPE, RunResult, Silent, _CtrlC, _train_epoch, prepare, train_section
    from graphnet.train.optim import make_optimizer
    from graphnet.train.resume import Position

    spec, where = load_recipe(args, 2)
    cfg = train_section(spec)
    graph, roles, data = prepare(spec, args.data_dir)
    # as loop.train builds them
    model = Model(graph, seed=cfg.seed, dtype=DTYPE)
    optimizer = make_optimizer(cfg.optimizer, model.size, model.dtype, model.decay_mask)
    result = RunResult(model, data_source=data.source)
    batch = cfg.batch_size
    warm = Split(data.train.x[: args.warmup * batch], data.train.y[: args.warmup * batch])
    end = (args.warmup + 1 + args.steps) * batch
    traced = Split(data.train.x[args.warmup * batch : end], data.train.y[args.warmup * batch : end])
    _train_epoch(model, optimizer, warm, cfg, roles, Position(0), Silent(), result, _CtrlC())

    # Snapshots at the first and the last steady step boundary: what the steps kept. The hook's
    # records (allocated in this file) and tracemalloc's own objects are filtered out; the
    # filtering is run once before tracing, so that its caches are not counted either.
    snapshots = []
    mine = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__),
            tracemalloc.Filter(False, "<frozen abc>"))
    for rule in mine:
        fnmatch.fnmatch(__file__, rule.filename_pattern)

    class Boundaries(Silent):
        def step(self, loss: float, samples: int) -> None:
            sys.settrace(None)  # the bookkeeping is not traced
            tracer.end_step()
            if len(tracer.steps) in (1, 1 + args.steps):  # after the epoch's first step; at the end
                snapshots.append(tracemalloc.take_snapshot().filter_traces(mine))
                tracer.begin_step()
            sys.settrace(tracer)

    tracemalloc.start(16)
    tracer = LineTracer(str(Path(__file__).resolve()))
    sys.settrace(tracer)
    try:
        _train_epoch(model, optimizer, traced, cfg, roles, Position(1), Boundaries(), result, _CtrlC())
    finally:
        sys.settrace(None)
    retained, kept = [], None
    if len(snapshots) == 2:
        kept = sum(stat.size_diff for stat in snapshots[1].compare_to(snapshots[0], "filename"))
        for stat in snapshots[1].compare_to(snapshots[0], "traceback")[:5]:
            if stat.size_diff > 0:
                retained.append([stat.size_diff, stat.count_diff, stat.traceback.format()[-8:]])
    tracemalloc.stop()
    shapes = {f"{node.name}.{name}": list(shape) for node in graph.nodes.values()
              for name, shape in node.param_shapes.items()}
    return {
        "dataset": where,
        "parameters": model.size,
        "itemsize": model.dtype.itemsize,
        "shapes": shapes,
        "batch_size": batch,
        "first": tracer.steps[0],
        "steps": tracer.steps[1:],
        "kept": kept,
        "retained": retained,
        "graphnet_dir": str(Path(sys.modules["graphnet"].__file__).parent),
    }


CHILDREN = {"baseline": baseline_child, "train": train_child, "steps": steps_child}


# ----------------------------------------------------------------------------------------------
# The reports
# ----------------------------------------------------------------------------------------------


def mib(count: float) -> str:
    return f"{count / MiB:8.1f} MiB"


def size(count: float) -> str:
    if count >= MiB:
        return f"{count / MiB:.2f} MiB"
    if count >= 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count:,.0f} B"


def report_rss(baseline: dict, run: dict, args) -> tuple[bool, str]:
    p, item = run["parameters"], run["itemsize"]
    arrays = run["arrays"]
    examples = ", ".join(f"{name} {n:,}" for name, (_, _, n, _, _) in arrays.items())
    parts = [
        ("dataset", sum(x + y for x, y, *_ in arrays.values()),
         f"{examples} examples; x {arrays['train'][3]}, y {arrays['train'][4]}, as loaded"),
        ("parameters", p * item, f"{p:,} float32 values"),
        ("gradients", p * item, "one per parameter"),
        ("Adam state", 2 * p * item, "first and second moments, one per parameter each"),
        ("activations", run["activations"],
         f"one batch of {run['batch_size']}: {run['per_sample_inputs']:,} input + 2 x "
         f"{run['per_sample_outputs']:,} node-output values per example (model.memory_need)"),
    ]
    budget = sum(value for _, value, _ in parts)
    peak, base = run["peak"], baseline["rss"]
    ratio, net_ratio = peak / budget, (peak - base) / budget
    ok = ratio < TARGET
    print(f"1. peak RSS of a {run['epochs']}-epoch `graphnet run` of {SPEC.relative_to(ROOT)} "
          f"(loop.prepare + loop.train, model file written each epoch)")
    print("   budget (the target's formula):")
    for name, value, note in parts:
        print(f"     {name:12s}{mib(value)}   {note}")
    print(f"     {'total':12s}{mib(budget)}")
    print(f"   graphnet's own account (loop.training_memory_need): {run['graphnet_need']}")
    print("   measured:")
    for label, value in (
        ("baseline process (python + numpy + graphnet imports): RSS", base),
        ("training process: RSS after the same imports", run["rss_after_imports"]),
        ("training process: RSS after loading the data", run["rss_after_load"]),
        ("training process: peak RSS (ru_maxrss)", peak),
    ):
        print(f"     {label:60s}{mib(value)}")
    print("     where the peak rose (ru_maxrss at the end of each phase that raised it):")
    for phase, value in run["phases"]:
        print(f"       {phase:58s}{mib(value)}")
    high, phase = run["sampled"]
    print(f"     highest RSS read after the data load (each step, validation, checkpoint): "
          f"{mib(high).strip()}, in {phase}")
    rates = ", ".join(f"{rate:,.0f}" for rate in run["samples_per_second"])
    print(f"     (run: {rates} samples/s; test error {run['test_error'] * 100:.2f}%; "
          f"model file {size(run['model_file'])})")
    print(f"   peak / budget              = {ratio:.2f}x  (target < {TARGET:g}x: {'yes' if ok else 'NO'})")
    print(f"   (peak - baseline) / budget = {net_ratio:.2f}x")
    line = (f"peak RSS {peak / MiB:.0f} MiB = {ratio:.2f}x the budget {budget / MiB:.0f} MiB "
            f"({net_ratio:.2f}x net of the {base / MiB:.0f} MiB baseline)")
    return ok, line


def report_steps(steps: dict, args) -> tuple[bool, str]:
    item, p, batch = steps["itemsize"], steps["parameters"], steps["batch_size"]
    shapes = {name: (shape, _prod(shape)) for name, shape in steps["shapes"].items()}
    weights = {name: shape for name, (shape, _) in shapes.items() if len(shape) >= 2}
    flat = p * item
    widest = max(max(shape) for shape in weights.values())
    activation = batch * widest * item
    # the size threshold: the smallest weight matrix larger than one batch's widest activation
    large = {name: count * item for name, (shape, count) in shapes.items()
             if name in weights and count * item > activation}
    threshold_name = min(large, key=large.get) if large else "the flat buffer"
    threshold = large[threshold_name] if large else flat
    exact = {name: count for name, (_, count) in shapes.items() if count * item >= RISE_FLOOR}
    graphnet_dir = steps["graphnet_dir"]

    def matches(rise: int) -> str | None:
        """The parameter tensor (and dtype) whose size ``rise`` is, if any."""
        for name, count in exact.items():
            for itemsize, dtype in ((4, "float32"), (8, "float64")):
                if count * itemsize <= rise <= count * itemsize + MATCH_SLACK:
                    return f"{name}'s size in {dtype}"
        return None

    def parameter_sized(rise: int) -> str | None:
        """Why ``rise`` is parameter-sized, or None when it is not."""
        if rise >= flat:
            return "at least the flat parameter buffer"
        if rise >= threshold:
            return f"at least {threshold_name}"
        return matches(rise)

    def place(stack: list) -> str:
        """The innermost graphnet line (and the innermost line when it is not graphnet's)."""
        inner = stack[0] if stack else ["?", 0, "?"]
        own = next((frame for frame in stack if frame[0].startswith(graphnet_dir)), inner)
        text = f"{_short(own[0], graphnet_dir)}:{own[1]} ({own[2]})"
        if own is not inner:
            text += f" via {_short(inner[0], graphnet_dir)}:{inner[1]} ({inner[2]})"
        return text

    def spread(values: list, fmt) -> str:
        return f"{fmt(min(values))} / {fmt(statistics.median(values))} / {fmt(max(values))}"

    def count(values: list) -> str:
        return spread(values, lambda v: f"{v:g}")

    rows = steps["steps"]
    n = len(rows)
    largest = [max((rise for rise, _ in row["rises"]), default=0) for row in rows]
    offending = [[(rise, stack, why) for rise, stack in row["rises"] if (why := parameter_sized(rise))]
                 for row in rows]
    print(f"\n2. steady-state training steps: {args.warmup} warm-up steps, then {n} traced with "
          f"tracemalloc (loop._train_epoch; the traced epoch's first step left out)")
    matrices = ", ".join(f"{name} {'x'.join(map(str, shape))} = {size(_prod(shape) * item)}"
                         for name, shape in weights.items())
    print(f"   sizes: flat parameter buffer {p:,} values = {size(flat)}; weight matrices {matrices}; "
          f"widest activation of a batch {batch}x{widest} = {size(activation)}")
    print(f"   per step (min / median / max over {n} steps):")
    for label, value in (
        ("peak traced above the step's start", spread([row["peak"] for row in rows], size)),
        ("largest rise in one line", spread(largest, size)),
        (f"rises >= {threshold_name} ({size(threshold)})",
         count([sum(rise >= threshold for rise, _ in row["rises"]) for row in rows])),
        (f"rises >= the flat buffer ({size(flat)})",
         count([sum(rise >= flat for rise, _ in row["rises"]) for row in rows])),
        ("rises of exactly one parameter tensor's size",
         count([sum(bool(matches(rise)) for rise, _ in row["rises"]) for row in rows])),
    ):
        print(f"     {label:46s}{value}")
    print(f"       (tensors of >= {size(RISE_FLOOR)} matched: {', '.join(exact)}; in float32 or float64)")
    first = steps["first"]
    first_largest = max((rise for rise, _ in first["rises"]), default=0)
    print(f"   (the left-out first step: largest rise {size(first_largest)}, peak {size(first['peak'])})")

    lines: dict[str, list] = {}
    for row in rows:
        for rise, stack in row["rises"]:
            entry = lines.setdefault(place(stack), [0, 0])
            entry[0] = max(entry[0], rise)
            entry[1] += 1
    print(f"   the largest rises by source line (largest, times per step; rises under "
          f"{size(RISE_FLOOR)} are not recorded):")
    for key, (rise, times) in sorted(lines.items(), key=lambda item: -item[1][0])[:10]:
        print(f"     {size(rise):>10}  x{times / n:<4.1f} {key}")
    if steps["kept"] is not None:
        print(f"   kept by the {n} steps (tracemalloc snapshots at the first and the last step boundary): "
              f"{steps['kept']:+,} B in all, {steps['kept'] / n:+,.0f} B per step")
        for diff, blocks, trace in steps["retained"][:3]:
            print(f"     +{size(diff)} in {blocks:+d} blocks, innermost frames:")
            for text in trace:
                print(f"       {text}")
    offenders: dict[str, tuple] = {}
    for found in offending:
        for rise, stack, why in found:
            offenders.setdefault(place(stack), (rise, why, stack))
    if offenders:
        print("   PARAMETER-SIZED ALLOCATIONS IN STEADY-STATE STEPS, with their stacks (innermost first):")
        for key, (rise, why, stack) in offenders.items():
            print(f"     {size(rise)} ({why}) at {key}")
            for file, line, function in stack:
                print(f"         {_short(file, graphnet_dir)}:{line} in {function}")
    else:
        print("   no parameter-sized allocation in any steady-state step (target met)")
    per_step = max(len(found) for found in offending)
    line = (f"steady-state step: largest allocation {size(max(largest))}, "
            f"{per_step} parameter-sized (most in one step)")
    return not offenders, line


def _short(file: str, graphnet_dir: str) -> str:
    """A path as graphnet/..., numpy/..., or as given."""
    if file.startswith(graphnet_dir):
        return "graphnet" + file[len(graphnet_dir):]
    marker = "site-packages/"
    return file.split(marker, 1)[1] if marker in file else file


if __name__ == "__main__":
    main()

"""CLI start-up: ``graphnet --help`` and ``graphnet --version`` against a minimal two-command
typer app, the floor of any typer CLI, and what they import.

    .venv/bin/python bench/cli_startup.py [--rounds 20]

The minimal app is written to a temporary file: two commands, a ``--version`` option, nothing
else. Each round runs, as fresh processes of this interpreter, the minimal app's ``--help`` and
``--version``, then graphnet's (the ``graphnet`` console script installed next to this
interpreter, else ``-m graphnet.cli``); odd rounds run them in the reverse order, so neither
side always goes first. A warm-up run of each comes first (compiled bytecode written, files in
the page cache). The times are wall-clock per process, start to exit, with output discarded.

The target (issue #9): graphnet's ``--help`` and ``--version`` each take at most 1.3x the
minimal app's ``--help`` (median over the rounds; the minima are shown too). The ratio against
the minimal app's own ``--version`` is printed for scale. Then ``python -X importtime`` checks
that neither numpy nor pydantic is imported by ``graphnet --help``, ``-h``, ``--version`` and
``graphnet COMMAND --help`` for every command. The exit status is 1 when an import check or a
ratio misses its target (ratios on a busy machine are noisy: rerun before believing a miss).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.3  # graphnet / minimal --help
FORBIDDEN = ("numpy", "pydantic")  # top-level packages --help and --version must not import

MINIMAL_APP = '''\
import typer

app = typer.Typer()


def _version(value: bool) -> None:
    if value:
        typer.echo("minimal 1.0")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """A minimal two-command typer app."""


@app.command()
def hello(name: str = typer.Argument(..., help="Who to greet.")) -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def goodbye(name: str = typer.Argument(..., help="Who to see off.")) -> None:
    """Say goodbye."""
    typer.echo(f"goodbye {name}")


if __name__ == "__main__":
    app()
'''


def graphnet_command() -> list[str]:
    """How a user runs graphnet: the console script next to this interpreter (run by this
    interpreter, as its shebang would), else ``python -m graphnet.cli``."""
    script = Path(sys.executable).parent / "graphnet"
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "graphnet.cli"]


def graphnet_commands() -> list[str]:
    """Every graphnet command, as ``graphnet --help`` lists them."""
    import typer.main

    from graphnet.cli import app

    return list(typer.main.get_command(app).commands)


def run_once(command: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one process (output discarded); it must succeed."""
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr.decode(errors='replace')}")
    return elapsed


def imported_packages(command: list[str]) -> set[str]:
    """The top-level packages ``command`` imports, from ``python -X importtime``'s report."""
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    found = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") >= 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the report's header line
                found.add(name.split(".")[0])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the four commands (default 20)")
    args = parser.parse_args()

    graphnet = graphnet_command()
    with tempfile.TemporaryDirectory() as folder:
        # Compiled bytecode as a user has it: written once (by the warm-up) and read after, in a
        # folder of our own (nothing written into the source tree; PYTHONDONTWRITEBYTECODE, set
        # in some environments, would otherwise recompile graphnet's modules on every run).
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(folder) / "pycache")
        minimal_file = Path(folder) / "minimal_app.py"
        minimal_file.write_text(MINIMAL_APP, encoding="utf-8")
        minimal = [sys.executable, str(minimal_file)]
        runs = {
            "minimal --help": minimal + ["--help"],
            "minimal --version": minimal + ["--version"],
            "graphnet --help": graphnet + ["--help"],
            "graphnet --version": graphnet + ["--version"],
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for command in runs.values():  # warm-up: bytecode compiled, files cached
            run_once(command, env)
        for round_ in range(args.rounds):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for name in order:
                times[name].append(run_once(runs[name], env))

    print(f"python {sys.version.split()[0]} ({sys.executable}); graphnet run as: {' '.join(graphnet)}")
    print(f"{args.rounds} rounds, alternating; {os.cpu_count()} CPUs; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(f"{'command':<20} {'min ms':>8} {'median ms':>10} {'max ms':>8}")
    for name, found in times.items():
        print(f"{name:<20} {min(found) * 1e3:>8.1f} {statistics.median(found) * 1e3:>10.1f} {max(found) * 1e3:>8.1f}")

    floor_median = statistics.median(times["minimal --help"])
    floor_min = min(times["minimal --help"])
    missed = []
    print()
    for flag in ("--help", "--version"):
        ours = times[f"graphnet {flag}"]
        ratio, ratio_min = statistics.median(ours) / floor_median, min(ours) / floor_min
        verdict = "ok" if ratio <= TARGET else "MISSED"
        line = (f"graphnet {flag:<9} / minimal --help: {ratio:.2f}x median, {ratio_min:.2f}x min "
                f"(target <= {TARGET}x: {verdict})")
        if flag != "--help":  # for scale: against the same flag of the minimal app
            own = statistics.median(ours) / statistics.median(times[f"minimal {flag}"])
            line += f"; / minimal {flag}: {own:.2f}x median"
        print(line)
        if ratio > TARGET:
            missed.append(f"graphnet {flag} ratio {ratio:.2f}x")

    print("\nimports (python -X importtime):")
    checks = [["--help"], ["-h"], ["--version"]] + [[command, "--help"] for command in graphnet_commands()]
    for extra in checks:
        bad = sorted(imported_packages(graphnet + extra) & set(FORBIDDEN))
        print(f"  graphnet {' '.join(extra):<20} {'imports ' + ', '.join(bad) if bad else 'no numpy, no pydantic'}")
        if bad:
            missed.append(f"graphnet {' '.join(extra)} imports {', '.join(bad)}")
    if missed:
        print("\nmissed: " + "; ".join(missed))
        sys.exit(1)
    print("\nall targets met")


if __name__ == "__main__":
    main()

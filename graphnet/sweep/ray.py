"""Running a sweep on Ray Tune. The only module of graphnet that imports Ray, and only when a
sweep runs (``pip install 'graphnet[sweep]'``); everything else in ``graphnet.sweep`` is plain.

Ray Tune does what a sweep needs and graphnet does not reimplement: it draws the trials' values
(``tune.loguniform``, ``tune.choice``, ``tune.grid_search``), runs the trials side by side on the
CPUs it has (a local Ray started for the command, or a cluster joined with an address: the only
difference between a laptop and many machines; through Ray Client, ``ray://``, Tune's driver runs
on the cluster and its trial events are relayed here), stops weak trials early from their per-epoch
reports (ASHA), keeps each trial's last checkpoint, and restores an interrupted experiment.

A trial is ``graphnet.sweep.trial.run_trial``: the training loop of ``graphnet run``, reporting
each epoch's metrics with its model file as the Tune checkpoint (so a restored trial goes on from
its last epoch, and the model files reach the output folder from any machine through Tune's
storage). Each trial asks Tune for ``resources.cpus`` CPUs and its BLAS library is limited to as
many threads (the variables are set in the job's runtime environment, before numpy loads in the
worker, and the thread count is set on the loaded library too: ``graphnet.sweep.blas``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from ..errors import GraphnetError
from .blas import thread_environment
from .load import Plan
from .state import REPORTED, TUNE_DIR, Journal, trial_name
from .trial import MODEL_FILE, Job, TrialFailed, run_trial

INSTALL = "pip install 'graphnet[sweep]'"

# Tune's own output is replaced by graphnet's table of trials; its per-trial loggers by the
# journal and the results files; its traceback of a failed trial by the trial's error line.
# (Defaults only: a variable already set wins.)
_QUIET = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
}
_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.air")


def available() -> bool:
    """Whether Ray Tune can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.tune") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def require() -> None:
    """A GraphnetError saying what to install when Ray Tune is missing."""
    if not available():
        raise GraphnetError("graphnet sweep runs on Ray Tune, which is not installed",
                            hint=f"{INSTALL} (or pip install 'ray[tune]')")


def check_address(address: Optional[str]) -> None:
    """Refuse, before anything is read, an address this command cannot use: a Ray Client address
    (``ray://HOST:PORT``) needs Ray's client library (gRPC), which ``ray[tune]`` alone lacks."""
    if address is not None and address.startswith("ray://") and not _client_available():
        raise GraphnetError(f"joining {address} needs Ray Client, which is not installed", path="--address",
                            hint=f"{INSTALL} (or pip install 'ray[client]'), or give the head's HOST:PORT "
                                 "(the GCS port `ray start --head` printed), or auto on a cluster machine")


def _client_available() -> bool:
    try:
        return importlib.util.find_spec("grpc") is not None
    except (ImportError, ValueError):
        return False


def local_cores() -> int:
    """The CPUs this process may use (what a local Ray is started with)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class Outcome:
    cluster: str  # where the sweep ran, for people
    interrupted: bool


def run(plan: Plan, job: Job, out: Path, journal: Journal, *, address: Optional[str] = None,
        max_concurrent: Optional[int] = None, resume: bool = False) -> Outcome:
    """Run (or with ``resume`` go on with) the sweep, feeding ``journal`` the trials' events
    (a sweep stopped before Ray Tune had started it is started).
    Returns when every trial has ended, or when Ctrl-C stopped the sweep (Tune's first Ctrl-C
    stops it and saves its state; ``interrupted`` says so)."""
    require()
    check_address(address)
    for name, value in _QUIET.items():
        os.environ.setdefault(name, value)
    import ray
    from ray import tune

    cluster = _connect(ray, address, job.cpus)
    try:
        client = ray.util.client.ray.is_connected()
        mailbox = _open_mailbox(ray) if client else None  # before Tune's driver can send anything
        trainable = tune.with_resources(tune.with_parameters(_trainable, job=job), {"cpu": job.cpus})
        experiment = out.resolve() / TUNE_DIR
        if resume and tune.Tuner.can_restore(str(experiment)):
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
        else:
            tuner = tune.Tuner(trainable, param_space=_space(tune, plan),
                               tune_config=_tune_config(tune, plan, max_concurrent),
                               run_config=_run_config(tune, experiment))
        with _feeding(journal, plan.paths), _quiet_loggers():
            if mailbox is None:
                tuner.fit()
            else:
                _fit_through_client(tuner, mailbox, journal, plan.paths)
    finally:
        ray.shutdown()
    stopped = journal.stop_running()
    interrupted = bool(stopped) or len(journal.records) < plan.sweep.model.trial_count()
    journal.interrupted = interrupted
    return Outcome(cluster, interrupted)


# ----------------------------------------------------------------------------------------------
# Ray
# ----------------------------------------------------------------------------------------------


def _connect(ray: Any, address: Optional[str], cpus: int) -> str:
    """Start a local Ray (this machine's cores) or join the cluster at ``address``; returns
    where, for people. Every trial worker of this job gets the BLAS thread variables."""
    options = {"runtime_env": {"env_vars": thread_environment(cpus)}, "log_to_driver": False,
               "logging_level": logging.ERROR}
    try:
        if address is None:
            ray.init(num_cpus=local_cores(), include_dashboard=False, **options)
        else:
            _init_retrying(ray, address, options)
    except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError...
        ray.shutdown()
        if address is None:
            raise GraphnetError(f"cannot start a local Ray: {_one_line(error)}",
                                hint="see `ray start --head` for what Ray needs") from None
        raise GraphnetError(f"cannot join the Ray cluster at {address}: {_one_line(error)}", path="--address",
                            hint="start it with `ray start --head` on its head machine, pass that "
                                 "machine's HOST:PORT (or auto on a cluster machine), or leave --address "
                                 "out to run on this machine") from None
    total = int(ray.cluster_resources().get("CPU", 0))
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if total < cpus:
        ray.shutdown()
        raise GraphnetError(f"the Ray cluster has {total} CPUs, and each trial asks for {cpus}",
                            path="resources.cpus", hint="ask for fewer CPUs per trial, or add machines")
    where = "local Ray" if address is None else f"Ray cluster at {address}"
    return f"{where}: {total} CPUs on {nodes} node{'s' if nodes != 1 else ''}"


# Ray Client's server starts a server process for each client, and that process sometimes dies
# at once (an empty log; Ray forks it from a gRPC server, running Python in the child): seen
# for about one connection in 20 on a busy 2-core machine. Under heavy load the new process
# also sometimes refuses the first data stream ("Invalid or missing authentication token", the
# client then reports itself disconnected while connecting). The next connection starts another.
_CLIENT_TRANSIENT = ("Starting Ray client server failed",
                     "Ray client has already been disconnected due to an error")
_CLIENT_TRIES = 3


def _init_retrying(ray: Any, address: str, options: dict) -> None:
    """``ray.init(address)``; through Ray Client, tried again when its per-client server died."""
    for attempt in range(1, _CLIENT_TRIES + 1):
        try:
            ray.init(address=address, **options)
            return
        except ConnectionError as error:
            if attempt == _CLIENT_TRIES or not any(text in str(error) for text in _CLIENT_TRANSIENT):
                raise
            ray.shutdown()


def _space(tune: Any, plan: Plan) -> dict[str, Any]:
    """The search space in Tune's terms: one entry per spec path."""
    space = {}
    for path, domain in plan.sweep.model.search.items():
        values = domain.values
        if domain.kind == "loguniform":
            space[path] = tune.loguniform(values[0], values[1])
        elif domain.kind == "uniform":
            space[path] = tune.uniform(values[0], values[1])
        elif domain.kind == "randint":
            space[path] = tune.randint(values[0], values[1] + 1)  # Tune's upper end is excluded
        elif domain.kind == "choice":
            space[path] = tune.choice(values)
        else:
            space[path] = tune.grid_search(values)
    return space


def _tune_config(tune: Any, plan: Plan, max_concurrent: Optional[int]) -> Any:
    from ray.tune.search.basic_variant import BasicVariantGenerator

    model = plan.sweep.model
    scheduler = None
    if model.scheduler.type == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="epoch", max_t=model.scheduler.max_t or plan.max_epochs,
                                  grace_period=model.scheduler.grace_period,
                                  reduction_factor=model.scheduler.reduction_factor)
    return tune.TuneConfig(
        metric=model.metric, mode=model.mode, scheduler=scheduler, num_samples=model.samples,
        reuse_actors=True,
        # (Tune ignores max_concurrent_trials next to a search_alg: the generator limits itself)
        search_alg=BasicVariantGenerator(max_concurrent=max_concurrent or 0, random_state=model.seed),
        trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
    )


def _run_config(tune: Any, experiment: Path) -> Any:
    return tune.RunConfig(
        name=experiment.name, storage_path=str(experiment.parent), verbose=0, callbacks=[_Events()],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
    )


def _trial_number(trial: Any) -> int:
    """1-based, from Tune's trial id (``3d3bc_00004`` is the fifth trial made)."""
    return int(str(trial.trial_id).rsplit("_", 1)[-1]) + 1


def _trial_name(trial: Any) -> str:
    return trial_name(_trial_number(trial))


# ----------------------------------------------------------------------------------------------
# The trial, in a Ray worker
# ----------------------------------------------------------------------------------------------


def _trainable(config: dict, job: Job) -> None:
    """A Tune function trainable around ``run_trial``."""
    from ray import tune

    def report(metrics: dict, folder: Optional[Path]) -> None:
        checkpoint = tune.Checkpoint.from_directory(str(folder)) if folder is not None else None
        tune.report(metrics, checkpoint=checkpoint)

    name = tune.get_context().get_trial_name()
    with _restored(tune.get_checkpoint()) as resume_from:
        run_trial(job, config, name, report, resume_from=resume_from)


@contextmanager
def _restored(checkpoint: Any) -> Iterator[Optional[Path]]:
    """The model file of the checkpoint Tune restores the trial from (a local copy), or None."""
    if checkpoint is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="graphnet-resume-"))
    try:
        with checkpoint.as_directory() as source:
            shutil.copyfile(Path(source) / MODEL_FILE, folder / MODEL_FILE)
        yield folder / MODEL_FILE
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Tune's events -> the journal (in the driver)
# ----------------------------------------------------------------------------------------------

# The journal the callback feeds while a sweep runs. A module-level slot rather than a field of
# the callback: Tune pickles its callbacks with the experiment (tuner.pkl) and restores them on
# --resume, and the journal (with the live table behind it) is the resumed command's own.
_FEEDING: dict[str, Any] = {}


@contextmanager
def _feeding(journal: Journal, paths: list[str]) -> Iterator[None]:
    _FEEDING.update(journal=journal, paths=paths)
    try:
        yield
    finally:
        _FEEDING.clear()


@contextmanager
def _quiet_loggers() -> Iterator[None]:
    """Ray's loggers say nothing but critical things while the sweep runs (graphnet reports the
    trials, their errors included)."""
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _callback_base() -> type:
    from ray.tune import Callback

    return Callback


# A trial's event, as plain data: ("started", id, number, config), ("reported", id, metrics),
# ("checkpointed", id, folder), ("ended", id), ("failed", id, error line). The callback makes
# them where Tune's driver runs; they reach the journal directly (Tune's driver in this process),
# or through the mailbox (Ray Client: Tune's driver runs on the cluster).
Event = tuple


class _Events(_callback_base() if available() else object):  # type: ignore[misc]
    """Tune's trial events, handed to the journal of the running sweep."""

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        pass

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """Tell the mailbox (if any) where Tune's driver is: once, from Tune's loop (by then Tune
        has installed its signal handlers)."""
        if "journal" not in _FEEDING and "driver" not in _FEEDING:
            _FEEDING["driver"] = True
            mailbox = _mailbox()
            if mailbox is not None:
                _call(mailbox.driver, os.getpid(), threading.current_thread() is threading.main_thread())

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Wait until the mailbox holds every event posted (a mailbox runs one caller's calls in
        order): fit() returns after this, and the command then empties the mailbox a last time."""
        posted = _FEEDING.pop("posted", None)
        if posted is not None:
            import ray

            ray.get(posted)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _deliver(("started", trial.trial_id, _trial_number(trial), dict(trial.config)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        _deliver(("reported", trial.trial_id, {key: result[key] for key in REPORTED if key in result}))

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        _deliver(("checkpointed", trial.trial_id, checkpoint.path))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _deliver(("ended", trial.trial_id))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _deliver(("failed", trial.trial_id, _error_line(trial)))


def _deliver(event: Event) -> None:
    """To the journal of this process's sweep, else to the mailbox of the Ray Client command."""
    journal = _FEEDING.get("journal")
    if journal is not None:
        _apply(journal, _FEEDING["paths"], event)
        return
    mailbox = _mailbox()
    if mailbox is not None:  # not waited for here (the trials wait for Tune's loop): at the end
        _FEEDING["posted"] = mailbox.put.remote(event)


def _apply(journal: Journal, paths: list[str], event: Event) -> None:
    kind, trial_id, *rest = event
    if kind == "started":
        number, config = rest
        journal.started(trial_id, number, {path: config.get(path) for path in paths})
    elif kind == "reported":
        journal.reported(trial_id, rest[0])
    elif kind == "checkpointed":
        journal.checkpointed(trial_id, rest[0])
    elif kind == "ended":
        journal.ended(trial_id)
    else:
        journal.failed(trial_id, rest[0])


# ----------------------------------------------------------------------------------------------
# Ray Client: Tune's driver on the cluster, the journal here
# ----------------------------------------------------------------------------------------------
#
# Through Ray Client (``ray://``), ``Tuner`` does not run the experiment in this process: it
# starts Tune's driver (its TunerInternal) as an actor on the node of the cluster's client
# server, with the callbacks pickled into it, and ``fit()`` waits for that actor. So the callback
# runs there, where this command's journal is not; it posts the trials' events to a mailbox (an
# actor of this job, on the same node), which this command empties while fit() waits in a thread.
# Ctrl-C here asks the mailbox to send Tune's driver SIGUSR1, Tune's own "stop and save the
# experiment" signal (what Ctrl-C does to a driver running here). The experiment's folder is
# written by the cluster: the output folder must be on a file system the cluster shares.

_MAILBOX = "graphnet-sweep-mailbox"
_POLL_S = 0.25


class _Mailbox:
    """The trials' events on their way from Tune's driver (on the cluster) to this command, and
    where that driver is, for Ctrl-C."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.pid: Optional[int] = None
        self.signalable = False
        self.stop = False

    def put(self, event: Event) -> None:
        self.events.append(event)

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def driver(self, pid: int, signalable: bool) -> None:
        self.pid, self.signalable = pid, signalable
        if self.stop:
            self.interrupt()

    def interrupt(self) -> bool:
        """Stop the experiment as Ctrl-C would (at once, or as soon as its driver has started);
        False when its driver cannot be signalled (Tune installs its handler only when it runs
        in its process's main thread)."""
        self.stop = True
        if self.pid is None:
            return True
        if not self.signalable:
            return False
        os.kill(self.pid, signal.SIGUSR1)
        return True


def _open_mailbox(ray: Any) -> Any:
    """The mailbox, on the node where Tune will start its driver (the client server's node)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    mailbox = ray.remote(num_cpus=0)(_Mailbox).options(name=_MAILBOX, scheduling_strategy=here).remote()
    ray.get(mailbox.take.remote())  # started
    return mailbox


def _mailbox() -> Any:
    """In Tune's driver: the mailbox of the command that started it, or None (no Ray Client)."""
    if "mailbox" not in _FEEDING:
        import ray

        try:
            _FEEDING["mailbox"] = ray.get_actor(_MAILBOX)
        except ValueError:  # no such actor in this job
            _FEEDING["mailbox"] = None
    return _FEEDING["mailbox"]


def _call(method: Any, *args: Any) -> Any:
    import ray

    return ray.get(method.remote(*args))


def _fit_through_client(tuner: Any, mailbox: Any, journal: Journal, paths: list[str]) -> None:
    """``tuner.fit()`` in a thread; here, the mailbox's events into the journal until it returns.
    The first Ctrl-C stops the experiment as Tune stops it (the state saved, resumable); a second
    one stops this command at once (a KeyboardInterrupt, as with Tune's driver here)."""
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            tuner.fit()
        except BaseException as error:  # handed to the main thread
            failure.append(error)

    asked = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_ctrl_c(number: int, frame: Any) -> None:
        asked.set()
        signal.signal(signal.SIGINT, previous)

    thread = threading.Thread(target=fit, name="graphnet-sweep-fit", daemon=True)
    if threading.current_thread() is threading.main_thread():  # (only there can it be caught)
        signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        thread.start()
        sent = False
        while True:
            over = not thread.is_alive()  # then every event is in the mailbox (on_experiment_end)
            for event in _call(mailbox.take):
                _apply(journal, paths, event)
            if over:
                break
            if asked.is_set() and not sent:
                sent = True
                if not _call(mailbox.interrupt):
                    raise KeyboardInterrupt
            thread.join(_POLL_S)
    finally:
        if signal.getsignal(signal.SIGINT) is on_ctrl_c:
            signal.signal(signal.SIGINT, previous)
    if failure:
        raise failure[0]


def _error_line(trial: Any) -> str:
    """What stopped a failed trial, on one line: a graphnet error's own message; for anything
    else the exception's type and message (a bug, or the worker dying)."""
    error = _pickled_error(trial)
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, TrialFailed):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {_one_line(_last_line(str(cause)))}"
    return "the trial failed (see its error.txt in the sweep's tune/ folder)"


def _pickled_error(trial: Any) -> Optional[BaseException]:
    """The exception that ended the trial, as Tune pickled it: in the trial's folder on this
    machine while the sweep runs (Tune copies it to the storage later), else from the storage."""
    from ray import cloudpickle

    try:
        local = trial.pickled_error_file
        if local and os.path.exists(local):
            with open(local, "rb") as handle:
                return cloudpickle.loads(handle.read())
        return trial.get_pickled_error()
    except Exception:  # an exception that cannot be unpickled here
        return None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _one_line(error: object) -> str:
    return " ".join(str(error).split())[:500]

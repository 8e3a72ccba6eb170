"""The launcher interface and the one way every launcher trains a run: under the run directory's lock, the lock the
sweep scripts and the entry scripts take (utils/run_lock.py), with the output in a log beside the run's files."""
from __future__ import annotations

import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from reports.tables import Run
from utils.run_lock import lock_path, try_lock

REPO = Path(__file__).resolve().parents[1]

LOG_NAME = "launcher.log"
"""Each run's output (every attempt appended), in its run directory."""


def repo_python_path() -> str:
    """``PYTHONPATH`` for a child process that imports this repository's modules (``python -m datasets...``, a
    Slurm job): the repository first, then the caller's own."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


FINISHED, SKIPPED, IN_USE, FAILED = "finished", "skipped", "in use", "failed"
"""Outcomes: trained to its results.json; found finished; another process holds its lock; exited with an error."""


@dataclass(frozen=True)
class Result:
    """What became of one run: its ``status``, the command's exit status, where it ran (``slot``: the worker, e.g.
    the position of its device in ``--devices``) and when."""

    run: Run
    status: str
    returncode: int | None = None
    device: str | None = None
    slot: int | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def log(self) -> Path:
        return Path(self.run.run_dir) / LOG_NAME


class Launcher(ABC):
    """Trains a list of runs; ``launch`` returns one :class:`Result` per run, in their order."""

    @abstractmethod
    def launch(self, runs: Sequence[Run]) -> list[Result]:
        """Train ``runs`` (skipping finished ones and ones another process trains) and return their results."""


def command(run: Run) -> list[str]:
    """The process that trains ``run``: this interpreter on the entry script (a path relative to the repository)."""
    script, *flags = run.argv
    return [sys.executable, str(REPO / script), *flags]


def shown_command(run: Run) -> str:
    """``run``'s command as a user would type it in the current directory."""
    script, *flags = run.argv
    return shlex.join(["python", os.path.relpath(REPO / script), *flags])


@contextmanager
def run_claimed(run: Run) -> Iterator[int | None]:
    """Hold ``<run_dir>.lock`` (an exclusive, non-blocking flock) for the block and yield its descriptor, for the
    training process to inherit (utils/run_lock.py finds it there); yield None if another process holds it. The
    lock is utils/run_lock.py's (:func:`try_lock`); the file is removed on release."""
    path = lock_path(run.run_dir)
    descriptor = try_lock(path)
    if descriptor is None:
        yield None
        return
    try:
        yield descriptor
    finally:
        path.unlink(missing_ok=True)
        os.close(descriptor)


def execute(run: Run, device: str | None = None, env: Mapping[str, str] | None = None,
            started: Callable[[subprocess.Popen], None] | None = None, slot: int | None = None) -> Result:
    """Train ``run`` in a child process under its lock (on ``device`` if given: ``--device``; by worker ``slot``),
    its output appended to its log; ``env`` adds environment variables and ``started`` sees the child once it runs.
    A run that another process holds, or that finished meanwhile, is left alone."""
    if device is not None:
        run = run.on_device(device)
    with run_claimed(run) as descriptor:
        if descriptor is None:
            return Result(run, IN_USE, device=device, slot=slot)
        if run.finished():
            return Result(run, SKIPPED, device=device, slot=slot)
        log_path = Path(run.run_dir) / LOG_NAME
        log_path.parent.mkdir(parents=True, exist_ok=True)
        begin = time.time()
        with open(log_path, "a") as log:
            log.write(f"$ {shown_command(run)}\n")
            log.flush()
            process = subprocess.Popen(command(run), stdout=log, stderr=subprocess.STDOUT, pass_fds=(descriptor,),
                                       env={**os.environ, **(env or {})})
            if started is not None:
                started(process)
            returncode = process.wait()
        status = FINISHED if returncode == 0 and run.finished() else FAILED
        return Result(run, status, returncode, device, slot, begin, time.time())


def last_line(path: Path) -> str:
    """The last non-empty line of a log (a failed run's one-line error), or ''."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def progress(total: int, description: str) -> tqdm:
    """The progress bar over runs that every launcher shows."""
    return tqdm(total=total, desc=description, unit="run", dynamic_ncols=True)


def report_progress(bar: tqdm, result: Result) -> None:
    """Advance ``bar`` by one run and say what became of it (with the failed run's last log line)."""
    where = f" on {result.device}" if result.device else ""
    note = f": {last_line(result.log)} (log: {result.log})" if result.status == FAILED else ""
    bar.write(f"{result.status:8s} {result.run.name}{where}{note}")
    bar.update(1)


def threads_per_run(workers: int) -> dict[str, str]:
    """Intra-op threads of each of ``workers`` concurrent runs: the cores shared out, as the sweep scripts do."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_pool(runs: Sequence[Run], devices: Sequence[str | None]) -> list[Result]:
    """Train ``runs`` with one worker per entry of ``devices`` (None: the entry script's default device), each
    taking the next run from a shared queue as soon as its last one ends, so runs of different lengths keep every
    worker busy and no worker trains two at once; the machine's cores are shared out among the workers. The
    results in the order of ``runs``."""
    pending: queue.Queue[tuple[int, Run]] = queue.Queue()
    for item in enumerate(runs):
        pending.put(item)
    results: dict[int, Result] = {}
    env = threads_per_run(len(devices))
    lock = threading.Lock()
    with progress(len(runs), "runs") as bar:
        def worker(slot: int, device: str | None) -> None:
            while True:
                try:
                    index, run = pending.get_nowait()
                except queue.Empty:
                    return
                result = execute(run, device, env, slot=slot)
                with lock:
                    results[index] = result
                    report_progress(bar, result)

        threads = [threading.Thread(target=worker, args=item, daemon=True) for item in enumerate(devices)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return [results[index] for index in range(len(runs))]

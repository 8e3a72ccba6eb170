"""One process per run directory: an exclusive ``flock`` on ``<run_dir>.lock``, held for the whole run.

The sweep scripts take the same lock with ``flock -n <run_dir>.lock python ...``; the Python process they start
inherits that lock's descriptor and finds it among its own (:func:`_held_descriptor`), so both agree without a
second file. A lock this process took itself is removed when released, with the directories it created for it;
the file's inode is checked after locking, so that a process that opened a file removed meanwhile tries again.
Under torchrun only the main process takes the lock, itself: torchrun starts its workers without inherited
descriptors, so a script must not wrap ``torchrun`` in ``flock`` on the run's lock (the run would find it held).
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from utils.config import ConfigError


class RunLockedError(ConfigError):
    """Another process holds the lock of a run directory."""


def lock_path(run_dir: str | os.PathLike) -> Path:
    """The lock file of ``run_dir``: ``<run_dir>.lock`` beside it (not inside, so a refused run creates no run
    directory)."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + ".lock")


def _holder_description(path: Path) -> str:
    """Who holds the lock, as its holder wrote it into the file."""
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is (e.g. a sweep script between two runs)"


def _write_holder(path: Path) -> None:
    """Write this process' pid, host and start time into the lock file (through its own descriptor: closing it
    leaves the flock of another descriptor in place)."""
    holder = {"pid": os.getpid(), "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    descriptor = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(descriptor, (json.dumps(holder) + "\n").encode())
    finally:
        os.close(descriptor)


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        opened, named = os.fstat(descriptor), os.stat(path)
    except OSError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def _held_descriptor(path: Path) -> int | None:
    """A descriptor of ``path`` open in this process whose open file holds the lock (one inherited from
    ``flock FILE command``), or None: ``flock`` on the open file that holds a lock succeeds, on another fails."""
    try:
        descriptors = [int(name) for name in os.listdir("/dev/fd")]
    except OSError:
        return None
    for descriptor in descriptors:
        if not _same_file(descriptor, path):
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue
        return descriptor
    return None


def _make_dirs(directory: Path) -> list[Path]:
    """``mkdir -p directory``; the directories it created, innermost first."""
    created = []
    while not directory.exists():
        created.append(directory)
        directory = directory.parent
    for new in reversed(created):
        new.mkdir(exist_ok=True)
    return created


def try_lock(path: Path) -> int | None:
    """A descriptor of the lock file ``path`` (created, with its folder, if need be) that holds its exclusive
    flock, or None if another process holds it. Retries when the file was removed or replaced between opening and
    locking it, so the lock held is always that of the file ``path`` names."""
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # its folder was removed meanwhile by a released lock that had created it
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        if _same_file(descriptor, path):
            return descriptor
        os.close(descriptor)


def _acquire(path: Path, run_dir: Path) -> int:
    """:func:`try_lock`, or :class:`RunLockedError` naming the holder if another process holds the lock."""
    descriptor = try_lock(path)
    if descriptor is None:
        raise RunLockedError(f"run directory '{run_dir}' is in use by {_holder_description(path)} (lock file "
                             f"'{path}'): wait for that run to end, or use another --run_name or --save_dir")
    return descriptor


def _remove_empty(directories: list[Path]) -> None:
    """Remove ``directories`` (innermost first) while they are empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


@contextmanager
def run_dir_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold ``<run_dir>.lock`` exclusively (non-blocking) for the ``with`` block; a held lock raises
    :class:`RunLockedError` naming its holder. On leaving, the lock file and the folders made for it go."""
    run_dir = Path(run_dir)
    path = lock_path(run_dir)
    if _held_descriptor(path) is not None:
        _write_holder(path)
        yield
        return
    created = _make_dirs(path.parent)
    try:
        descriptor = _acquire(path, run_dir)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        _write_holder(path)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(descriptor)
        _remove_empty(created)


@contextmanager
def run_dirs_locked(run_dirs: Iterable[str | os.PathLike]) -> Iterator[None]:
    """Hold the locks of all ``run_dirs`` (in sorted order) for the ``with`` block."""
    with ExitStack() as stack:
        for run_dir in sorted({Path(run_dir) for run_dir in run_dirs}):
            stack.enter_context(run_dir_lock(run_dir))
        yield

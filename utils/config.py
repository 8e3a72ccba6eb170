"""Flag handling shared by the entry scripts: defaults + validation -> a Munch config, one-line errors."""
from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import fire
from munch import Munch

TRUE_STRINGS = {"true", "yes", "1", "on"}
FALSE_STRINGS = {"false", "no", "0", "off"}


class ConfigError(ValueError):
    """A user-facing problem with the flags or inputs; printed as one line without a traceback."""


def _coerce(name: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE_STRINGS | FALSE_STRINGS:
            return value.lower() in TRUE_STRINGS
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"--{name} expects true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"--{name} expects an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"--{name} expects a number, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        return str(value)
    return value


def build_config(defaults: Mapping[str, Any], flags: Mapping[str, Any], untyped: Iterable[str] = ()) -> Munch:
    """Merge command-line ``flags`` over ``defaults``; unknown flags and wrong types raise :class:`ConfigError`.

    Values are converted to the type of their default, except for the flags named in ``untyped`` (e.g. a kernel
    radius that is a number or ``'median'``), which the caller validates."""
    unknown = sorted(set(flags) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown flag --{unknown[0]} (run with --help to list the flags)")
    config = Munch(defaults)
    for name, value in flags.items():
        config[name] = value if name in untyped else _coerce(name, value, defaults[name])
    return config


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def is_batch_limit(limit: Any) -> bool:
    """Whether ``limit`` is a valid ``--limit_*_batches`` value: None, an int >= 1 or a float in (0, 1]."""
    if limit is None:
        return True
    if isinstance(limit, bool) or not isinstance(limit, (int, float)):
        return False
    return limit >= 1 if isinstance(limit, int) else 0 < limit <= 1


def resolve_limit(limit: int | float | None, length: int) -> int:
    """Lightning-style limit: ``None`` = all batches, an int = that many, a float in (0, 1] = that fraction."""
    if not is_batch_limit(limit):
        raise ConfigError(f"a batch limit is an integer >= 1 or a fraction in (0, 1], got {limit!r}")
    if limit is None:
        return length
    if isinstance(limit, float):
        return max(1, int(length * limit))
    return min(limit, length)


def require_writable_dir(directory: str | os.PathLike, source: str) -> None:
    """Raise :class:`ConfigError` unless files can be created in ``directory`` (or, when it does not exist yet, in
    its nearest existing parent), so that a command refuses an unwritable output folder before any work; ``source``
    names the flag it comes from in the message (e.g. ``--out results/x.json``)."""
    existing = Path(directory).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    require(existing.is_dir(), f"{source}: '{existing}' is not a folder")
    require(os.access(existing, os.W_OK | os.X_OK), f"{source}: cannot write into '{existing}' (permission denied)")


WRITE_REFUSED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""errno values by which the system refuses to write a file (permissions, read-only or full disk, quota, size)."""


def refused_write(error: BaseException) -> OSError | None:
    """The :data:`WRITE_REFUSED` OSError that ``error`` is, or that RuntimeErrors wrap (torch wraps a failed write
    of a checkpoint in one: its ``__cause__``/``__context__`` chain), or None. Any other exception on the way (a bug
    raised while handling a full disk) is not a refused write: it keeps its traceback."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            return current if current.errno in WRITE_REFUSED else None
        if type(current) is not RuntimeError:
            return None
        current = current.__cause__ or current.__context__
    return None


def run_cli(entry: Callable[..., Any], user_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``entry`` with python-fire; :class:`ConfigError` (and ``user_errors``) become ``error: ...`` + exit 2, and
    so does a write the system refuses (:func:`refused_write`: no permission, read-only or full disk), which the
    atomic writes of utils/io.py leave without damage to earlier files. ``--help`` / ``-h`` print the entry script's
    docstring (its flag list)."""
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print((sys.modules["__main__"].__doc__ or entry.__doc__ or "").strip())
        return
    try:
        fire.Fire(entry, serialize=lambda _: None)
    except (ConfigError, *user_errors) as error:
        fail(one_line(str(error)))
    except Exception as error:
        refused = refused_write(error)
        if refused is None:
            raise
        where = f": '{refused.filename}'" if refused.filename else " while writing the outputs"
        fail(f"{refused.strerror or os.strerror(refused.errno)}{where}")


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 2 (a user error)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def one_line(message: str) -> str:
    """A user error's message on one line; for an error re-raised from a DataLoader worker (its message holds the
    worker's traceback), the original message, which is the traceback's last line."""
    if "Original Traceback" in message:
        return message.strip().splitlines()[-1].split(": ", 1)[-1]
    return " ".join(message.split())


def split_list(value: Any) -> list[str]:
    """A comma- or space-separated list as strings (fire parses ``0,1`` into a tuple and ``0.99`` into a float)."""
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    return [str(part) for part in parts]


def parse_seeds(value: Any) -> list[int] | None:
    """``--seeds``: None, one integer, or several distinct non-negative ones as ``0,1,2`` (fire passes a tuple) or
    ``"0 1 2"``; :class:`ConfigError` otherwise."""
    if value is None:
        return None
    try:
        seeds = [int(part) for part in split_list(value)]
    except ValueError:
        seeds = []
    require(bool(seeds) and all(seed >= 0 for seed in seeds) and len(set(seeds)) == len(seeds),
            f"--seeds expects distinct non-negative integers such as 0,1,2, got {value!r}")
    return seeds

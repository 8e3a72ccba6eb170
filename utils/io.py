"""Atomic writes of checkpoints and JSON files, and checkpoint loading that runs no code, with clear errors."""
from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or belongs to another experiment."""


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` into a temporary file of the same folder, then rename: a reader never sees a partial file."""
    _atomic_write(Path(path), lambda stream: torch.save(obj, stream))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON atomically."""
    _atomic_write(Path(path), lambda stream: stream.write((json.dumps(obj, indent=2, default=str) + "\n").encode()))


def json_plain(obj: Any) -> Any:
    """``obj`` as the plain data its JSON holds (dicts, lists, strings, numbers, booleans, None), as
    :func:`atomic_write_json` writes it: what a configuration stored in a checkpoint may contain."""
    return json.loads(json.dumps(obj, default=str))


def _legacy_rng_globals() -> list[Any]:
    """The globals that NumPy's RNG state (a tuple holding a uint32 array) needs, under both names of NumPy's
    ``_reconstruct`` (``numpy.core`` before NumPy 2, ``numpy._core`` since): checkpoints written before
    :func:`utils.seed.rng_states` stored it as a tensor hold them."""
    reconstruct = np.empty(0).__reduce__()[0]
    return [(reconstruct, "numpy.core.multiarray._reconstruct"), (reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, type(np.dtype(np.uint32))]


CHECKPOINT_GLOBALS = _legacy_rng_globals()
"""The only non-tensor, non-container types a checkpoint may hold (besides torch's own weights-only types)."""
_ALLOWED_NAMES = {entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
                  for entry in CHECKPOINT_GLOBALS}
_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>")


def _forbidden_global(path: Path, error: BaseException) -> str | None:
    """The first class or function not allowed in a checkpoint that ``path`` refers to (read from its pickle's
    opcodes, nothing is run) or that the weights-only unpickler's ``error`` names; None when the file was refused
    for another reason (truncated or corrupt)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a readable zip checkpoint: the unpickler's message alone names it
        names = []
    names += [next(name for name in match.groups() if name) for match in _GLOBAL_IN_MESSAGE.finditer(str(error))]
    return next((name for name in names if name not in _ALLOWED_NAMES), None)


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` that runs no code from the file: ``weights_only=True`` (tensors, containers, plain types)
    with :data:`CHECKPOINT_GLOBALS` allowed, on ``map_location`` (the CPU by default). A missing, truncated or
    corrupt file, or one that holds any other Python object, raises :class:`CheckpointError` with a one-line
    reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._weights_only_unpickler")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        forbidden = _forbidden_global(path, error)
        if forbidden is not None:
            raise CheckpointError(f"'{path}' holds a Python object of type {forbidden} that a checkpoint may not "
                                  "contain; refusing to open it (it could run code)") from None
        raise CheckpointError(f"checkpoint '{path}' is truncated or corrupt ({type(error).__name__}); "
                              "delete it or resume from another one") from error


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu",
                    expect: Mapping[str, Any] | None = None) -> dict:
    """A checkpoint written by this project's Trainer, loaded by :func:`safe_torch_load`; ``expect`` maps keys of
    its ``meta`` dict to required values (e.g. ``{"task": "biased_mnist"}``). Any problem raises
    :class:`CheckpointError` with a one-line reason."""
    checkpoint = safe_torch_load(path, map_location)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("meta"), dict):
        raise CheckpointError(f"'{path}' is not a checkpoint written by this project")
    for key, value in (expect or {}).items():
        found = checkpoint["meta"].get(key)
        if found != value:
            raise CheckpointError(f"checkpoint '{path}' has {key}={found!r} but this run needs {key}={value!r}")
    return checkpoint

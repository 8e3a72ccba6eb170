"""Atomic writes of checkpoints and JSON files, and checkpoint loading that runs no code, with clear errors."""
from __future__ import annotations

import functools
import json
import os
import pickle
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


class PlainData(dict):
    """What a plain-data container of another project (``munch.Munch``, ``argparse.Namespace``) becomes when a
    checkpoint is read with ``plain_data=True``: a dict of its entries (attributes), built by this class alone."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _numpy_scalar(dtype: np.dtype, data: bytes) -> Any:
    """A NumPy number from its pickled ``(dtype, bytes)``; other kinds of scalars (objects, strings) are refused."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise pickle.UnpicklingError("GLOBAL numpy.core.multiarray.scalar of a non-numeric dtype")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


PLAIN_DATA_GLOBALS: dict[str, Any] = {
    "munch.Munch": PlainData, "munch.DefaultMunch": PlainData, "munch.AutoMunch": PlainData,
    "argparse.Namespace": PlainData,
    "numpy.core.multiarray.scalar": _numpy_scalar, "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.dtype": np.dtype,
}
"""What the plain-data reader (``safe_torch_load(..., plain_data=True)``) substitutes for the classes that the
authors' checkpoints hold besides tensors: ReBias writes its ``options`` as nested ``munch.Munch`` dicts and its
median kernel radii and ImageNet scores as NumPy floats. torch's weights-only unpickler cannot fill a dict subclass
(it only SETITEMs real dicts), so these files are read by :class:`_PlainDataUnpickler` instead, which maps each of
these names to a class or function of this module (never the file's own class) and refuses every other name
except those torch's weights-only unpickler allows: nothing from the file is imported or run."""


@functools.lru_cache(maxsize=1)
def _weights_only_globals() -> dict[str, Any]:
    """``module.name`` -> object for every global torch's weights-only unpickler accepts, with
    :data:`CHECKPOINT_GLOBALS`."""
    from torch import _weights_only_unpickler

    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    for entry in CHECKPOINT_GLOBALS:
        obj, name = entry if isinstance(entry, tuple) else (entry, f"{entry.__module__}.{entry.__qualname__}")
        allowed[name] = obj
    return allowed


class _PlainDataUnpickler(pickle.Unpickler):
    """An unpickler whose globals are those of :func:`_weights_only_globals` and :data:`PLAIN_DATA_GLOBALS` only
    (torch resolves tensor storages itself); any other name raises ``UnpicklingError('GLOBAL <name>')``."""

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in PLAIN_DATA_GLOBALS:
            return PLAIN_DATA_GLOBALS[qualified]
        allowed = _weights_only_globals()
        if qualified in allowed:
            return allowed[qualified]
        raise pickle.UnpicklingError(f"GLOBAL {qualified}")


class _PlainDataPickleModule:
    """The ``pickle_module`` torch.load reads a checkpoint with under ``plain_data=True``."""

    Unpickler = _PlainDataUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(stream: Any, **kwargs: Any) -> Any:
        return _PlainDataUnpickler(stream, **kwargs).load()


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu", plain_data: bool = False) -> Any:
    """``torch.load`` that runs no code from the file: ``weights_only=True`` (tensors, containers, plain types)
    with :data:`CHECKPOINT_GLOBALS` allowed, on ``map_location`` (the CPU by default). With ``plain_data``, a file
    refused only for holding the plain-data containers of :data:`PLAIN_DATA_GLOBALS` (the authors' ReBias
    checkpoints) is read again by the restricted unpickler described there. A missing, truncated or corrupt file,
    or one that holds any other Python object, raises :class:`CheckpointError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._weights_only_unpickler")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        forbidden = _forbidden_global(path, error)
        if forbidden in PLAIN_DATA_GLOBALS and plain_data:
            return _load_plain_data(path, map_location)
        if forbidden is not None:
            raise CheckpointError(f"'{path}' holds a Python object of type {forbidden} that a checkpoint may not "
                                  "contain; refusing to open it (it could run code)") from None
        raise CheckpointError(f"checkpoint '{path}' is truncated or corrupt ({type(error).__name__}); "
                              "delete it or resume from another one") from error


def _load_plain_data(path: Path, map_location: Any) -> Any:
    """``path`` read by :class:`_PlainDataUnpickler`; errors as :func:`safe_torch_load`'s."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False, pickle_module=_PlainDataPickleModule)
    except pickle.UnpicklingError as error:
        name = str(error).removeprefix("GLOBAL ")
        raise CheckpointError(f"'{path}' holds a Python object of type {name} that a checkpoint may not contain; "
                              "refusing to open it (it could run code)") from None
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
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
    require_meta(checkpoint, path, expect or {})
    return checkpoint


def require_meta(checkpoint: Mapping[str, Any], path: str | os.PathLike, expect: Mapping[str, Any]) -> None:
    """Raise :class:`CheckpointError` unless the ``meta`` of a checkpoint of this project (loaded from ``path``)
    holds every ``expect``-ed value."""
    for key, value in expect.items():
        found = checkpoint["meta"].get(key)
        if found != value:
            raise CheckpointError(f"checkpoint '{path}' has {key}={found!r} but this run needs {key}={value!r}")

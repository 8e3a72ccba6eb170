"""Atomic writes of checkpoints and JSON files, and checkpoint loading with clear errors."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

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


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", expect: dict | None = None) -> dict:
    """Load a checkpoint written by :func:`atomic_torch_save`; ``expect`` maps keys of its ``meta`` dict to required
    values (e.g. ``{"task": "biased_mnist"}``). Any problem raises :class:`CheckpointError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"checkpoint '{path}' is truncated or corrupt ({type(error).__name__}); "
                              "delete it or resume from another one") from error
    if not isinstance(checkpoint, dict) or "meta" not in checkpoint:
        raise CheckpointError(f"'{path}' is not a checkpoint written by this project")
    for key, value in (expect or {}).items():
        found = checkpoint["meta"].get(key)
        if found != value:
            raise CheckpointError(f"checkpoint '{path}' has {key}={found!r} but this run needs {key}={value!r}")
    return checkpoint

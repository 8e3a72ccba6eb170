"""Seeding of every random number generator the project uses."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from munch import Munch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); ``deterministic`` also turns on torch's deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def derived_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer keys (e.g. ``(seed, phase, epoch)``), stable across runs and platforms."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
               >> 1)


def rng_states() -> dict[str, Any]:
    """The global RNG states, for checkpoints: tensors and plain numbers only (a checkpoint holds no other type)."""
    version, python_state, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    states = {
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"bit_generator": numpy_state["bit_generator"],
                  "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]), "has_gauss": int(numpy_state["has_gauss"]),
                  "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_states`, or by its earlier layout (Python's and NumPy's own tuples)."""
    python = states["python"]
    if isinstance(python, dict):
        python = (python["version"], tuple(python["state"].tolist()), python["gauss_next"])
    random.setstate(python)
    numpy = states["numpy"]
    if isinstance(numpy, dict):
        numpy = {"bit_generator": numpy["bit_generator"], "has_gauss": numpy["has_gauss"], "gauss": numpy["gauss"],
                 "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]}}
    np.random.set_state(numpy)
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_config(config: Munch, seed: int, run_name: str) -> Munch:
    """The configuration of one seed of a ``--seeds`` run: that of a separate run with ``--seed seed --run_name
    run_name`` (``seeds`` and ``seed_run_names`` cleared)."""
    plain = {key: value for key, value in config.items() if key != "seed_run_names"}
    return Munch({**plain, "seed": seed, "run_name": run_name, "seeds": None})


def seed_key(name: str, seed: int) -> str:
    """The name of seed ``seed``'s copy of a logged value or predictor in a ``--seeds`` run, e.g. ``f_loss@seed1``."""
    return f"{name}@seed{seed}"


def for_seed(values: dict[str, Any], seed: int) -> dict[str, Any]:
    """The entries of ``values`` that belong to ``seed`` (named by :func:`seed_key`), under their plain names."""
    suffix = seed_key("", seed)
    return {key.removesuffix(suffix): value for key, value in values.items() if key.endswith(suffix)}

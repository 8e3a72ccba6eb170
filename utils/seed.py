"""Seeding of every random number generator the project uses."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


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


def rng_states() -> dict:
    """The global RNG states, for checkpoints."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore states captured by :func:`rng_states`."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])

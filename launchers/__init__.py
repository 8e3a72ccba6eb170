"""Launchers of a table's runs (reproduce.py): ``local`` (N processes on one device), ``multi_gpu`` (one run per
device at a time, from a shared queue) and ``slurm`` (a submitit job array, requeued on preemption or time limit)."""
from launchers.base import Launcher, Result
from launchers.local import LocalLauncher
from launchers.multi_gpu import MultiGpuLauncher
from launchers.slurm import SlurmLauncher

LAUNCHERS: dict[str, type[Launcher]] = {"local": LocalLauncher, "multi_gpu": MultiGpuLauncher,
                                        "slurm": SlurmLauncher}
"""``--launcher`` name -> class."""

__all__ = ["LAUNCHERS", "Launcher", "LocalLauncher", "MultiGpuLauncher", "Result", "SlurmLauncher"]

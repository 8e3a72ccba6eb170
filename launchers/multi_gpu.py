"""``multi_gpu``: one worker per device, each taking the next run from a shared queue as soon as its last one ends,
so that runs of different lengths keep every device busy and no device ever trains two runs at once."""
from __future__ import annotations

from collections.abc import Sequence

from launchers.base import Launcher, Result, run_pool
from reports.tables import Run


class MultiGpuLauncher(Launcher):
    """Runs on ``devices`` (e.g. ``cuda:0, cuda:1``; ``cpu, cpu`` in tests), one at a time per device, each with
    ``--device`` set to its worker's device and the machine's cores shared out among the workers."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = list(devices)

    def launch(self, runs: Sequence[Run]) -> list[Result]:
        return run_pool(runs, self.devices)

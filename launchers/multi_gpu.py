"""``multi_gpu``: one worker per device, each taking the next run from a shared queue as soon as its last one ends,
so that runs of different lengths keep every device busy and no device ever trains two runs at once."""
from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

from launchers.base import Launcher, Result, execute, progress, report_progress, threads_per_run
from reports.tables import Run


class MultiGpuLauncher(Launcher):
    """Runs on ``devices`` (e.g. ``cuda:0, cuda:1``; ``cpu, cpu`` in tests), one at a time per device, each with
    ``--device`` set to its worker's device and the machine's cores shared out among the workers."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.devices = list(devices)

    def launch(self, runs: Sequence[Run]) -> list[Result]:
        pending: queue.Queue[tuple[int, Run]] = queue.Queue()
        for item in enumerate(runs):
            pending.put(item)
        results: dict[int, Result] = {}
        env = threads_per_run(len(self.devices))
        lock = threading.Lock()
        with progress(len(runs), "runs") as bar:
            def worker(slot: int, device: str) -> None:
                while True:
                    try:
                        index, run = pending.get_nowait()
                    except queue.Empty:
                        return
                    result = execute(run, device, env, slot=slot)
                    with lock:
                        results[index] = result
                        report_progress(bar, result)

            threads = [threading.Thread(target=worker, args=item, daemon=True) for item in enumerate(self.devices)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return [results[index] for index in range(len(runs))]

"""``slurm``: every run as one task of a submitit job array (partition, time limit, GPUs and CPUs per job).

On preemption or at the time limit, submitit's signal handler calls :meth:`TrainJob.checkpoint`: it stops the
training process with SIGTERM (the trainer saves ``last.pth`` and exits) and requeues the same command, whose
``--resume auto`` continues from that ``last.pth``. The task takes the run's lock itself, on the node, so that a run
another launcher trains is left alone there. submitit's own logs go to ``<folder>/<job id>``; the training output to
each run directory's launcher.log.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import submitit
from submitit.core.utils import UncompletedJobError
from submitit.helpers import Checkpointable, DelayedSubmission

from launchers.base import FAILED, Launcher, Result, execute, progress, repo_python_path, report_progress
from reports.tables import Run
from utils.config import ConfigError


class TrainJob(Checkpointable):
    """The job function: trains one run (:func:`launchers.base.execute`); requeued with the same run when
    checkpointed."""

    def __init__(self) -> None:
        self._pid: int | None = None

    def __call__(self, run: Run) -> Result:
        result = execute(run, started=self._started)
        if result.status == FAILED:
            raise RuntimeError(f"{run.name} failed with exit status {result.returncode} (log: {result.log})")
        return result

    def _started(self, process: subprocess.Popen) -> None:
        self._pid = process.pid

    def checkpoint(self, run: Run) -> DelayedSubmission:
        """Stop the training process (SIGTERM: it saves last.pth) and wait for it; requeue the same run."""
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGTERM)
                os.waitpid(self._pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        return DelayedSubmission(TrainJob(), run)

    def __getstate__(self) -> dict:
        return {"_pid": None}


class SlurmLauncher(Launcher):
    """Submit the runs as one job array through submitit and wait for them. ``cluster``: ``slurm``, or submitit's
    ``local`` / ``debug`` executors (on this machine, for tests); the other options are Slurm's."""

    def __init__(self, folder: str | os.PathLike, partition: str | None = None, timeout_min: int = 24 * 60,
                 gpus_per_job: int = 1, cpus_per_job: int | None = None, mem_gb: int | None = None,
                 max_parallel: int | None = None, cluster: str = "slurm") -> None:
        if cluster not in ("slurm", "local", "debug"):
            raise ConfigError(f"--cluster must be slurm, local or debug, got {cluster!r}")
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise ConfigError("--launcher slurm: sbatch is not on PATH (no Slurm here; --cluster local runs the "
                              "jobs on this machine)")
        self.folder = Path(folder)
        self.cluster = cluster
        self.parameters = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_job, "name": "reproduce",
                           **({"cpus_per_task": cpus_per_job} if cpus_per_job else {}),
                           **({"mem_gb": mem_gb} if mem_gb else {}),
                           **({"slurm_partition": partition} if partition else {}),
                           **({"slurm_array_parallelism": max_parallel} if max_parallel else {})}

    def executor(self) -> submitit.AutoExecutor:
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        executor.update_parameters(**self.parameters)
        return executor

    def launch(self, runs: Sequence[Run]) -> list[Result]:
        if not runs:
            return []
        with submitit.helpers.environment_variables(PYTHONPATH=repo_python_path()):
            jobs = self.executor().map_array(TrainJob(), list(runs))
        print(f"submitted {len(jobs)} job(s) {jobs[0].job_id.split('_')[0]}...; submitit logs in {self.folder}")
        results: dict[str, Result] = {}
        with progress(len(jobs), "jobs") as bar:
            for job in submitit.helpers.as_completed(jobs):
                run = runs[jobs.index(job)]
                try:
                    results[job.job_id] = job.result()
                except UncompletedJobError:
                    results[job.job_id] = Result(run, FAILED)
                report_progress(bar, results[job.job_id])
        return [results[job.job_id] for job in jobs]

"""Reproduce a table of the papers: generate its data, skip its finished runs, resume the interrupted ones (their
last.pth), train the others with a launcher, then print the table beside the paper's numbers.

    python reproduce.py list
    python reproduce.py TABLE [--cells 0.5pct,1pct] [--seeds 0,1,2] [--launcher local|multi_gpu|slurm] [--jobs N]
        [--devices cuda:0,cuda:1] [--out DIR (default runs/TABLE)] [--dry_run] [the table's inputs: --mnist_root DIR,
        --data_dir DIR, --train_root DIR ... (python reproduce.py list)]
    Slurm (--launcher slurm, through submitit): [--partition P] [--timeout_min 1440] [--gpus_per_job 1]
        [--cpus_per_job N] [--mem_gb N] [--max_parallel N] [--cluster slurm|local|debug]

First command: python reproduce.py lff_cmnist --cells 0.5pct --seeds 0  (Vanilla and LfF at LfF's 0.5 pct, LfF's
protocol, about 6 CPU-minutes). Every run's command is the one its sweep script (scripts/*.sh) runs.
Environment: REPRODUCE_EXTRA="<flags appended to every training command>", for shortened smoke runs (CI); the
reports label such runs and keep them out of the tables. Details: docs/reproduce.md.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from launchers import LAUNCHERS, Launcher, LocalLauncher, MultiGpuLauncher, SlurmLauncher
from launchers.base import FAILED, REPO, repo_python_path, shown_command
from reports import print_table
from reports.tables import TABLES, Plan, Run, Settings, Table, get_table, run_numbers
from utils.config import require, run_cli, split_list

EXTRA_VARIABLE = "REPRODUCE_EXTRA"


def parse_devices(value: Any, launcher: str) -> list[str]:
    """``--devices``: ``cpu`` or CUDA devices present here; default: none for ``local`` (the entry scripts pick),
    every visible GPU for ``multi_gpu``; ``slurm`` jobs get theirs from Slurm."""
    devices = split_list(value) if value is not None else []
    require(not devices or launcher != "slurm", "--devices does not apply to --launcher slurm (use --gpus_per_job)")
    require(len(devices) <= 1 or launcher != "local",
            "--launcher local trains on one device: give one --devices, or use --launcher multi_gpu")
    if launcher == "multi_gpu" and not devices:
        import torch
        devices = [f"cuda:{index}" for index in range(torch.cuda.device_count())]
        require(bool(devices), "--launcher multi_gpu: no CUDA device here; pass --devices (e.g. cpu,cpu)")
    for device in devices:
        kind, _, index = device.partition(":")
        require(kind in ("cpu", "cuda") and (not index or index.isdigit()) and not (kind == "cpu" and index),
                f"--devices: {device!r} is not a device (cpu, cuda or cuda:K)")
        if kind == "cuda":
            import torch
            count = torch.cuda.device_count()
            require(int(index or 0) < count, f"--devices: {device} is not available here ({count} CUDA device(s))")
    return devices


def make_launcher(name: str, jobs: int, devices: list[str], out: str, slurm: dict[str, Any]) -> Launcher:
    """The launcher called ``name`` (``ConfigError`` for options it does not take)."""
    require(isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1,
            f"--jobs must be a positive integer, got {jobs!r}")
    require(jobs == 1 or name == "local", "--jobs applies to --launcher local (multi_gpu: one run per device)")
    if name == "local":
        return LocalLauncher(jobs)
    if name == "multi_gpu":
        return MultiGpuLauncher(devices)
    return SlurmLauncher(Path(out) / "submitit", **slurm)


def print_tables() -> None:
    """``reproduce.py list``: every table with its cells, default seeds, inputs and the sweep script it matches."""
    for table in TABLES.values():
        inputs = " ".join(f"--{name} {default if default is not None else '(required)'}"
                          for name, default in table.inputs.items() if default != "") or "-"
        aliases = f" (also: {', '.join(table.aliases)})" if table.aliases else ""
        print(f"{table.name:16s} {table.title}{aliases}\n{'':16s} {table.axis} cells: {' '.join(table.cells)}; "
              f"seeds {','.join(map(str, table.seeds))}; inputs: {inputs}; same runs as: {table.script}")


def run_data_steps(plan: Plan) -> None:
    """Generate the data the plan's runs read, where absent (one line and exit 2 if a command fails)."""
    done: set[str] = set()
    for step in plan.data:
        if step.done() or step.target in done:
            continue
        print(f"data: python {shlex.join(step.argv)}", flush=True)
        env = {**os.environ, "PYTHONPATH": repo_python_path()}
        returncode = subprocess.run([sys.executable, *step.argv], env=env).returncode
        require(returncode == 0, f"data command failed (exit status {returncode}): python {shlex.join(step.argv)}")
        done.add(step.target)


def describe(table: Table, runs: list[Run]) -> list[str]:
    """One line per run: skip (finished), resume (its last.pth) or run, its length and its command."""
    lines = []
    for run in runs:
        state = "skip  " if run.finished() else "resume" if run.resumable() else "run   "
        lines.append(f"{state} {run.name} ({run.length} {table.unit}): {shown_command(run)}")
    return lines


def print_report(table: Table, plan: Plan, settings: Settings, runs: list[Run]) -> None:
    """The runs' numbers beside the paper's (Colored MNIST tables), the report files of the sweep script
    (``scripts/report.py``, in OUT/report) and the chosen cells of the table beside the paper's numbers."""
    numbers = run_numbers(table, runs)
    if numbers:
        print("\n" + "\n".join(numbers))
    report = subprocess.run([sys.executable, str(REPO / "scripts" / "report.py"), *plan.report],
                            capture_output=True, text=True)
    try:
        print("\n" + print_table(table.name, settings.out, list(settings.cells)).rstrip())
    except ValueError as error:
        print(f"\nno table: {error}")
    if report.returncode == 0:
        print(f"report files (tables, CSV, plots): {plan.report[plan.report.index('--out') + 1]}")
    else:
        message = report.stderr.strip().splitlines()[-1] if report.stderr.strip() else "no output"
        print(f"no report files yet: {message.removeprefix('error: ')}")


def main(table: str, cells: Any = None, seeds: Any = None, launcher: str = "local", jobs: int = 1,
         devices: Any = None, out: str | None = None, dry_run: bool = False, partition: str | None = None,
         timeout_min: int = 24 * 60, gpus_per_job: int = 1, cpus_per_job: int | None = None,
         mem_gb: int | None = None, max_parallel: int | None = None, cluster: str = "slurm", **inputs: Any) -> None:
    """Plan, train and report one table; see the module docstring for the flags."""
    if table == "list":
        print_tables()
        return
    chosen = get_table(table)
    require(launcher in LAUNCHERS, f"unknown launcher {launcher!r} (launchers: {', '.join(LAUNCHERS)})")
    device_list = parse_devices(devices, launcher)
    quiet = launcher == "slurm" or (launcher == "local" and jobs != 1) or len(device_list) > 1
    settings = chosen.settings(cells, seeds, out, inputs, device_list[0] if launcher == "local" and device_list
                               else None, quiet)
    slurm = {"partition": partition, "timeout_min": timeout_min, "gpus_per_job": gpus_per_job,
             "cpus_per_job": cpus_per_job, "mem_gb": mem_gb, "max_parallel": max_parallel, "cluster": cluster}
    chosen_launcher = make_launcher(launcher, jobs, device_list, settings.out, slurm) if not dry_run else None
    plan = chosen.plan(settings)
    extra = shlex.split(os.environ.get(EXTRA_VARIABLE, ""))
    runs = [run.with_flags(extra) for run in plan.runs]
    counts = Counter("finished" if run.finished() else "to resume" if run.resumable() else "to start" for run in runs)
    print(f"{chosen.title}: {len(runs)} run(s) in {settings.out} ("
          + ", ".join(f"{count} {state}" for state, count in sorted(counts.items())) + ")"
          + (f"; every command + {EXTRA_VARIABLE}: {shlex.join(extra)}" if extra else ""))
    if dry_run:
        for step in plan.data:
            if not step.done():
                print(f"data   python {shlex.join(step.argv)}")
        print("\n".join(describe(chosen, runs)))
        return
    run_data_steps(plan)
    results = chosen_launcher.launch([run for run in runs if not run.finished()])
    if results:
        print("launched: " + ", ".join(f"{count} {status}" for status, count in
                                       sorted(Counter(result.status for result in results).items())))
    print_report(chosen, plan, settings, runs)
    if settings.cells != chosen.cells or settings.seeds != chosen.seeds:
        given = [part for name, value in inputs.items() for part in (f"--{name}", str(value))]
        whole = ["python", "reproduce.py", chosen.name, *(("--out", out) if out else ()), *given]
        print(f"\nthe whole table ({len(chosen.cells)} {chosen.axis} cells x {len(chosen.seeds)} seeds): "
              f"{shlex.join(whole)}")
    failed = [result for result in results if result.status == FAILED]
    if failed:
        print(f"error: {len(failed)} run(s) failed: " + ", ".join(f"{r.run.name} (log {r.log})" for r in failed),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main)

"""One command for one offline GPU node: a CUDA smoke, then ReBias Table 1's rho=0.997 column, within a deadline.

    OUT=DIR ROOT=MNIST_ROOT DEADLINE_S=570 bash scripts/gpu_node.sh [--dry_run]
    python scripts/gpu_node.py --out DIR --root MNIST_ROOT --deadline_s 570 [--state DIR] [--resume_from DIR]
        [--amp bf16|none] [--max_waves N] [--dry_run]

Made for a locked-down node (scripts/gpu_node_bundle.sh prepares what travels): no network, one job of 10 minutes,
and only a few files back from ``OUT``. In order, each step a child process in its own process group:

1. **smoke** (about a minute): a handful of the CUDA tests (``pytest -m cuda -k ...``), then a 20-step
   bench/throughput_biased_mnist.py of Vanilla and ReBias in the chosen precision, one seed and 3 stacked seeds
   (images/s, step time and share of :data:`H200_BF16_TFLOPS`);
2. **Table 1, rho=0.997, seed 0**: Vanilla (whose g gives the Biased column), LearnedMixin, RUBi and ReBias with
   the paper's flags (scripts/biased_mnist_table1.sh's), 80 epochs each, all four at once on the one GPU, each
   evaluated at its last epoch only (Biased MNIST reports the final model: no evaluation in between changes it) and
   checkpointed every epoch;
3. **further waves**, each started only if the time measured for the previous wave says it ends before the stop:
   seeds 1 and 2 of the same column (stacked in one process per method when the bench shows stacking faster than
   one seed, else one wave per seed), then seed 0 of rho 0.999, 0.995 and 0.99;
4. **the stop**, ``stop_reserve_s`` before the deadline at the latest: SIGTERM to every run still going (a run then
   saves its checkpoint at the current batch), SIGKILL after a grace period; scripts/report.py over the finished
   runs; ``SESSION.md``; and the pack.

What comes back (``OUT``, at most :data:`MAX_FILES` files of at most 16 MiB, at most two folders deep):
``results.tar.gz`` (every run's config.json and results.json, the report, logs, the bench's JSON, the tests'
JUnit XML), ``SESSION.md``, and ``checkpoints/<run>.pth``: the runs stopped at the deadline first, then finished
single-seed runs, as many as the limits allow. Runs, logs and checkpoints live in ``--state`` (default
``.node/state``, git-ignored, so it survives between jobs on the same node but does not travel back). A second job
continues: on the same node from ``--state``; on a fresh node from ``--resume_from`` = the folder the first job's
``OUT`` came back as (carried there), whose archive and checkpoints are unpacked into the state first. Finished runs
are skipped, interrupted ones resume (``--resume auto``).

Precision: ``--amp bf16`` (default) trains the networks under bf16 autocast, every criterion in fp32
(criterions/precision.py); ``--amp none`` trains in fp32 (TF32 convolutions, PyTorch's default). Each run records it
in results.json's ``protocol`` and the report labels bf16 cells. ``--dry_run``: the same sequence on the CPU with
tiny lengths (a 512/256-image MNIST subset, batches of 8, 2 batches an epoch, 3x3 kernels), within the same limits.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from scripts.gpu_session import METHOD_FLAGS, minutes, mnist_subset, tests_summary  # noqa: E402

NODE_MODULES = ("torch", "torchvision", "numpy", "PIL", "tqdm", "fire", "termcolor", "munch", "adamp", "matplotlib",
                "pytest")
"""What the node's steps import (PyAV, ``av``, only decodes the action videos: not needed here)."""
H200_BF16_TFLOPS = 790.0
"""The dense bf16 rate measured on the H200 node (an 8192^3 GEMM on random data: 769-798 TFLOP/s), not the
datasheet's 989: the bench's share of peak is taken of this."""
COLUMN_RHO = "0.997"
METHODS = ("ReBias", "Vanilla", "LearnedMixin", "RUBi")
MORE_RHOS = ("0.999", "0.995", "0.99")
TABLE_DIR = "biased_mnist_table1"
MAX_FILES, MAX_FILE_BYTES, MAX_DEPTH = 8, 16 * 2**20, 2
"""What comes back from ``OUT``: files, bytes per file, folders above a file."""
SMOKE_TESTS = ("(short_run_bf16_channels_last and biased_mnist) or resume_on_cuda "
               "or (no_host_device_copy and ReBias-1)")
EPOCH_LINE = re.compile(r"^\[(\w+) (\d+)/(\d+)\] [\d.]+ img/s")
STACKING_GAIN = 1.1
"""Stack the further seeds when the bench's 3 stacked seeds train this much faster per image than one seed."""
PROJECTION_MARGIN = 1.15
"""A wave starts only if its projected time, times this margin, ends before the stop."""


@dataclass(frozen=True)
class Scale:
    """What differs between the node and its CPU dry run."""

    device: str
    bench_flags: tuple[str, ...]
    train_flags: tuple[str, ...]
    report_flags: tuple[str, ...]
    tests_s: float
    bench_s: float
    stop_reserve_s: float
    """The runs are stopped this long before the deadline: their grace, the report and the pack."""
    grace_s: float
    report_s: float
    heartbeat_s: float
    min_wave_s: float
    """No wave starts with less time than this before the stop."""


GPU = Scale(
    device="cuda",
    bench_flags=("--device", "cuda", "--batch_size", "256", "--steps", "20", "--warmup", "5", "--stacked_seeds", "3",
                 "--compare_original", "False", "--profile", "False", "--channels_last", "True",
                 "--peak_tflops", str(H200_BF16_TFLOPS)),
    train_flags=("--channels_last", "True", "--val_epoch_step", "80"),
    report_flags=(),
    tests_s=45, bench_s=45, stop_reserve_s=75, grace_s=30, report_s=30, heartbeat_s=30, min_wave_s=60)
DRY_RUN = Scale(
    device="cpu",
    bench_flags=("--device", "cpu", "--batch_size", "8", "--steps", "1", "--warmup", "0", "--stacked_seeds", "3",
                 "--compare_original", "False", "--profile", "False", "--f_kernel_size", "3"),
    train_flags=("--device", "cpu", "--n_epochs", "2", "--batch_size", "8", "--limit_train_batches", "2",
                 "--limit_eval_batches", "1", "--f_kernel_size", "3", "--val_epoch_step", "2", "--channels_last",
                 "True"),
    report_flags=("--include_shortened",),
    tests_s=40, bench_s=40, stop_reserve_s=12, grace_s=5, report_s=10, heartbeat_s=5, min_wave_s=5)


# ---------------------------------------------------------------------------------------------------- the runs
@dataclass(frozen=True)
class Run:
    """One main_biased_mnist.py process: ``method`` at ``rho`` for ``seeds`` (several: seed-stacked networks)."""

    method: str
    rho: str
    seeds: tuple[int, ...]

    @property
    def base(self) -> str:
        return f"biased_mnist_{self.method}_rho{self.rho}"

    @property
    def name(self) -> str:
        """The run directory: ``<base>_seed<k>``, or ``<base>_seeds<j>-<k>`` (the shared checkpoint of stacked seeds,
        whose results go to each ``<base>_seed<k>``)."""
        if len(self.seeds) == 1:
            return f"{self.base}_seed{self.seeds[0]}"
        return f"{self.base}_seeds{'-'.join(map(str, self.seeds))}"

    def results(self, table: Path) -> tuple[Path, ...]:
        return tuple(table / f"{self.base}_seed{seed}" / "results.json" for seed in self.seeds)

    def finished(self, table: Path) -> bool:
        return all(path.exists() for path in self.results(table))

    def checkpoint(self, table: Path) -> Path:
        return table / self.name / "last.pth"

    def command(self, python: str, root: Path, table: Path, amp: str, scale: Scale) -> tuple[str, ...]:
        seeds = (("--seed", str(self.seeds[0]), "--run_name", self.name) if len(self.seeds) == 1 else
                 ("--seeds", ",".join(map(str, self.seeds)), "--run_name", self.base))
        return (python, "main_biased_mnist.py", "--root", str(root), "--train_correlation", self.rho, *seeds,
                "--save_dir", str(table), "--resume", "auto", "--progress", "False", "--amp", amp,
                *METHOD_FLAGS[self.method], *scale.train_flags)


def waves(stack_further_seeds: bool) -> list[list[Run]]:
    """The runs in the order they are worth having: the rho=0.997 column at seed 0, its seeds 1 and 2, then seed 0
    of the other rhos; each wave's runs train at the same time."""
    column = [[Run(method, COLUMN_RHO, (0,)) for method in METHODS]]
    if stack_further_seeds:
        column.append([Run(method, COLUMN_RHO, (1, 2)) for method in METHODS])
    else:
        column += [[Run(method, COLUMN_RHO, (seed,)) for method in METHODS] for seed in (1, 2)]
    return column + [[Run(method, rho, (0,)) for method in METHODS] for rho in MORE_RHOS]


def epoch_progress(log_text: str) -> tuple[int, int] | None:
    """``(epochs done, epochs in all)`` of a run from its log's epoch lines (every phase counted, e.g. LearnedMixin's
    5 pretraining epochs and 80 training epochs), None before its first epoch ends."""
    phases: dict[str, tuple[int, int]] = {}
    for line in log_text.splitlines():
        if match := EPOCH_LINE.match(line):
            phases[match[1]] = (int(match[2]), int(match[3]))
    if not phases:
        return None
    done = sum(epoch for epoch, _ in phases.values())
    total = sum(total for _, total in phases.values())
    return done, total


def stacking_is_faster(bench_rows: Sequence[dict]) -> bool:
    """Whether the bench trained 3 stacked seeds faster per image than one seed, for Vanilla and ReBias alike."""
    speed = {(row["method"], row["stacked_seeds"]): row["images_per_second"] for row in bench_rows}
    pairs = [(speed.get((method, 1)), speed.get((method, 3))) for method in ("Vanilla", "ReBias")]
    return all(one and three and three > STACKING_GAIN * one for one, three in pairs)


def projected_seconds(wave: Sequence[Run], single_wave_seconds: float) -> float:
    """A wave's time from a measured wave of single-seed runs: a wave of stacked seeds trains as many images per seed
    (counted as that many single-seed waves: the safe side when stacking was chosen for being faster)."""
    return single_wave_seconds * max(len(run.seeds) for run in wave)


# ---------------------------------------------------------------------------------------------- child processes
def _die_with_parent() -> None:
    """In a child before exec: SIGTERM when the parent dies (Linux), so no run outlives a killed node script."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass(eq=False)
class Child:
    """A running step: its process (leader of its own process group), log and start time."""

    name: str
    process: subprocess.Popen
    log_path: Path
    started: float
    returncode: int | None = None
    stopped: bool = False


class Children:
    """Starts children in their own process groups and stops every one of them, whatever happens."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.running: list[Child] = []

    def start(self, name: str, command: Sequence[str], log_path: Path) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(list(command), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, env=self.env,
                                       preexec_fn=_die_with_parent)
        child = Child(name, process, log_path, time.monotonic())
        self.running.append(child)
        return child

    def poll(self) -> list[Child]:
        """The children that have exited since the last call."""
        ended = [child for child in self.running if child.process.poll() is not None]
        for child in ended:
            child.returncode = child.process.returncode
            self.running.remove(child)
        return ended

    def stop(self, children: Sequence[Child], grace_s: float) -> None:
        """SIGTERM to each child's process group, SIGKILL to what is left after ``grace_s``; waits for them."""
        for signum, seconds in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            alive = [child for child in children if child.process.poll() is None]
            for child in alive:
                child.stopped = True
                _signal_group(child.process.pid, signum)
            end = time.monotonic() + seconds
            while any(child.process.poll() is None for child in alive) and time.monotonic() < end:
                time.sleep(0.05)
        for child in children:
            _signal_group(child.process.pid, signal.SIGKILL)  # grandchildren of a leader that exited
            if child.process.poll() is None:
                child.process.wait()
            if child in self.running:
                self.running.remove(child)
            child.returncode = child.process.returncode

    def stop_all(self, grace_s: float) -> None:
        self.stop(list(self.running), grace_s)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------------- the node
@dataclass
class Outcome:
    """What became of a step: done, failed, stopped (at its limit or the deadline), skipped or left."""

    step: str
    status: str
    seconds: float = 0.0
    returncode: int | None = None


@dataclass
class Node:
    """The sequence on one node, against a wall-clock ``deadline`` (``time.time()`` seconds)."""

    out: Path
    state: Path
    root: Path
    scale: Scale
    deadline: float
    amp: str
    python: str = sys.executable
    echo: Callable[[str], None] = print
    children: Children = field(init=False)
    outcomes: list[Outcome] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    interrupted: bool = False
    max_waves: int | None = None

    def __post_init__(self) -> None:
        self.start = time.time()
        self.children = Children({**os.environ, "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"})
        self.table = self.state / TABLE_DIR
        self.logs = self.state / "logs"
        self.stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")

    # ------------------------------------------------------------------------------------------ the clock
    def stop_time(self) -> float:
        """When every run still going is stopped, to leave time for its checkpoint, the report and the pack."""
        return self.deadline - self.scale.stop_reserve_s

    def left(self) -> float:
        return self.stop_time() - time.time()

    def say(self, message: str) -> None:
        self.echo(f"[gpu_node {time.time() - self.start:5.0f} s, {max(self.deadline - time.time(), 0):4.0f} s to "
                  f"the deadline] {message}")

    def record(self, outcome: Outcome, command: Sequence[str]) -> None:
        self.outcomes.append(outcome)
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / "session_log.jsonl", "a") as log:
            log.write(json.dumps({"session": self.started_at, **outcome.__dict__, "command": list(command)}) + "\n")

    # ------------------------------------------------------------------------------------------- steps
    def run_step(self, name: str, command: Sequence[str], limit_s: float) -> Outcome:
        """One child on its own, at most ``limit_s`` (and never past the stop)."""
        limit_s = min(limit_s, self.left())
        if limit_s < 1 or self.interrupted:
            outcome = Outcome(name, "left")
            self.record(outcome, command)
            return outcome
        self.say(f"run  {name} (limit {limit_s:.0f} s)")
        child = self.children.start(name, command, self.logs / f"{name}.{self.stamp}.log")
        end = time.monotonic() + limit_s
        while child.process.poll() is None and time.monotonic() < end and not self.interrupted:
            time.sleep(0.1)
        if child.process.poll() is None:
            self.children.stop([child], self.scale.grace_s)
        self.children.poll()
        code = child.process.returncode
        status = "stopped" if child.stopped else "done" if code == 0 else "failed"
        outcome = Outcome(name, status, time.monotonic() - child.started, code)
        self.say(f"{status} {name} in {outcome.seconds:.0f} s" + (f" (exit status {code})" if code else ""))
        self.record(outcome, command)
        return outcome

    def smoke(self) -> list[dict]:
        """The CUDA tests and the bench; the bench's rows (empty if it did not finish)."""
        tests = (self.python, "-m", "pytest", "-m", "cuda", "-k", SMOKE_TESTS, "-q", "-rs", "-p", "no:cacheprovider",
                 f"--junitxml={self.state / 'tests' / 'junit.xml'}")
        self.run_step("smoke_tests", tests, self.scale.tests_s)
        rows_path = self.state / "bench" / f"bench_{self.amp}.json"
        bench = (self.python, "bench/throughput_biased_mnist.py", "--root", str(self.root), "--amp", self.amp,
                 *self.scale.bench_flags, "--json_out", str(rows_path))
        self.run_step("smoke_bench", bench, self.scale.bench_s)
        rows = json.loads(rows_path.read_text()) if rows_path.exists() else []
        for row in rows:
            share = "n/a" if row["peak_fraction"] is None else f"{100 * row['peak_fraction']:.1f}%"
            self.say(f"bench {row['variant']}: {row['images_per_second']:.0f} img/s, {row['step_ms']:.2f} ms a step, "
                     f"{row['tflops']:.3g} TFLOP/s = {share} of {row['peak_tflops'] or 'no known'} TFLOP/s")
        return rows

    def train_wave(self, wave: Sequence[Run]) -> float | None:
        """Train a wave's unfinished runs at once until they end or the stop comes; the wave's seconds if every run
        finished from scratch in this job (a measure for the next waves), else None."""
        todo = [run for run in wave if not run.finished(self.table)]
        for run in wave:
            if run not in todo:
                self.say(f"skip {run.name}: finished earlier")
                self.record(Outcome(run.name, "skipped"), ())
        if not todo:
            return None
        resumed = any(run.checkpoint(self.table).exists() for run in todo)
        started = time.monotonic()
        running = {}
        for run in todo:
            command = run.command(self.python, self.root, self.table, self.amp, self.scale)
            running[self.children.start(run.name, command, self.logs / f"{run.name}.{self.stamp}.log")] = (run, command)
        self.say(f"training {len(todo)} runs at once: {', '.join(run.name for run in todo)}")
        next_heartbeat = time.monotonic() + self.scale.heartbeat_s
        while self.children.running and time.time() < self.stop_time() and not self.interrupted:
            time.sleep(0.1)
            for child in self.children.poll():
                self._ended(child, *running[child])
            if time.monotonic() >= next_heartbeat:
                self.heartbeat(running, started)
                next_heartbeat += self.scale.heartbeat_s
        if self.children.running:
            self.say(f"stopping {len(self.children.running)} runs (checkpoint at the current batch)")
            stopping = list(self.children.running)
            self.children.stop(stopping, self.scale.grace_s)
            for child in stopping:
                self._ended(child, *running[child])
        finished = all(run.finished(self.table) for run in todo)
        return time.monotonic() - started if finished and not resumed else None

    def _ended(self, child: Child, run: Run, command: Sequence[str]) -> None:
        finished = run.finished(self.table)
        status = "done" if finished else "stopped" if child.stopped else "failed"
        outcome = Outcome(run.name, status, time.monotonic() - child.started, child.returncode)
        self.say(f"{status} {run.name} in {outcome.seconds:.0f} s" + self._progress_text(child))
        self.record(outcome, command)

    def _progress_text(self, child: Child) -> str:
        progress = epoch_progress(child.log_path.read_text(errors="replace"))
        return f" ({progress[0]}/{progress[1]} epochs)" if progress else ""

    def heartbeat(self, running: dict[Child, tuple[Run, tuple[str, ...]]], started: float) -> None:
        parts = []
        for child in self.children.running:
            progress = epoch_progress(child.log_path.read_text(errors="replace"))
            parts.append(f"{running[child][0].name} " + (f"{progress[0]}/{progress[1]} epochs" if progress
                                                          else "starting"))
        self.say(f"{time.monotonic() - started:.0f} s into the wave: " + "; ".join(parts))

    def train(self, bench_rows: Sequence[dict]) -> None:
        """Every wave that the measured time says fits, in order. The time of a wave of single-seed runs that
        trained from scratch is kept in ``STATE/wave_seconds.json`` for later jobs."""
        stack = stacking_is_faster(bench_rows)
        self.say(f"further seeds {'stacked in one process per method' if stack else 'as separate runs'} "
                 "(from the bench)")
        measured_path = self.state / "wave_seconds.json"
        measured = json.loads(measured_path.read_text())["seconds"] if measured_path.exists() else None
        for index, wave in enumerate(waves(stack)[:self.max_waves]):
            if self.interrupted or self.left() < self.scale.min_wave_s:
                break
            if index and any(not run.finished(self.table) for run in wave):
                if measured is None:
                    self.say("no wave time measured (the first wave resumed or did not finish): no further waves")
                    break
                projected = projected_seconds(wave, measured)
                if projected * PROJECTION_MARGIN > self.left():
                    self.say(f"next wave projected at {projected:.0f} s, {self.left():.0f} s left before the stop: "
                             "stopping here")
                    break
            seconds = self.train_wave(wave)
            if seconds is not None and all(len(run.seeds) == 1 for run in wave):
                measured = seconds if measured is None else max(measured, seconds)
                measured_path.write_text(json.dumps({"seconds": measured}) + "\n")
            if any(not run.finished(self.table) for run in wave):
                break

    # ---------------------------------------------------------------------------------------- the end
    def report(self) -> None:
        if not any(self.table.glob("*/results.json")):
            return
        command = (self.python, "scripts/report.py", str(self.table), "--out", str(self.table / "report"),
                   *self.scale.report_flags)
        self.run_step("report", command, self.scale.report_s)

    def summary(self, device: str, bench_rows: Sequence[dict]) -> Path:
        """``STATE/SESSION.md``: the steps, the tests, the bench and the state of every run of the plan."""
        lines = [f"# GPU node job on {device}", "",
                 f"Started {self.started_at}; deadline {self.deadline - self.start:.0f} s; ended after "
                 f"{time.time() - self.start:.0f} s. Precision: {precision_label(self.amp)}.", "",
                 "## Steps", "", "| step | status | time | exit status |", "|---|---|---|---|"]
        lines += [f"| {o.step} | {o.status} | {minutes(o.seconds)} | {'' if o.returncode is None else o.returncode} |"
                  for o in self.outcomes]
        lines += ["", "## CUDA smoke tests", "", tests_summary(self.state), "",
                  f"## Bench ({self.amp}; share of {H200_BF16_TFLOPS:g} TFLOP/s, the node's measured bf16 rate)", "",
                  "| variant | img/s | step ms | TFLOP/s | share |", "|---|---|---|---|---|"]
        for row in bench_rows:
            share = "n/a" if row.get("peak_fraction") is None else f"{100 * row['peak_fraction']:.1f}%"
            lines.append(f"| {row['variant']} | {row['images_per_second']:.0f} | {row['step_ms']:.2f} | "
                         f"{row['tflops']:.3g} | {share} |")
        lines += ["", "## Runs", ""]
        for wave in waves(stacking_is_faster(bench_rows)):
            for run in wave:
                lines.append(f"- {run.name}: {self._run_state(run)}")
        lines += ["", f"Report of the finished runs: {TABLE_DIR}/report/ (in results.tar.gz)", ""]
        path = self.state / "SESSION.md"
        path.write_text("\n".join(lines))
        return path

    def _run_state(self, run: Run) -> str:
        if run.finished(self.table):
            values = []
            for path in run.results(self.table):
                results = json.loads(path.read_text())
                biased = (f", g {results['g_metrics'][0]['unbiased']:.1f}" if run.method == "Vanilla"
                          and results.get("g_metrics") else "")
                values.append(f"f {results['metrics']['unbiased']:.1f}{biased}")
            return "finished; unbiased accuracy " + "; ".join(values) + " %"
        if run.checkpoint(self.table).exists():
            return "stopped with a checkpoint (a later job resumes it)"
        return "not started"

    def pack(self) -> list[Path]:
        """Fill ``OUT`` within the limits: the archive, SESSION.md, then checkpoints while they fit."""
        self.out.mkdir(parents=True, exist_ok=True)
        archive = self.out / "results.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(packed_files(self.state)):
                tar.add(path, arcname=str(path.relative_to(self.state)))
        shutil.copyfile(self.state / "SESSION.md", self.out / "SESSION.md")
        written = [archive, self.out / "SESSION.md"]
        for checkpoint in self.checkpoints_worth_keeping():
            if len(written) >= MAX_FILES:
                break
            if checkpoint.stat().st_size > MAX_FILE_BYTES:
                continue
            target = self.out / "checkpoints" / f"{checkpoint.parent.name}.pth"
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(checkpoint, target)
            written.append(target)
        problems = output_problems(self.out)
        if problems:
            raise RuntimeError("OUT breaks the output limits: " + "; ".join(problems))
        return written

    def checkpoints_worth_keeping(self) -> list[Path]:
        """Runs stopped with a checkpoint (to resume on a fresh node), then finished single-seed runs."""
        plan = [run for wave in waves(True) + waves(False) for run in wave]
        unique = list(dict.fromkeys(plan))
        stopped = [run.checkpoint(self.table) for run in unique
                   if not run.finished(self.table) and run.checkpoint(self.table).exists()]
        finished = [run.checkpoint(self.table) for run in unique
                    if run.finished(self.table) and len(run.seeds) == 1 and run.checkpoint(self.table).exists()]
        return stopped + finished


def precision_label(amp: str) -> str:
    return ("bf16 autocast for the networks, every criterion in fp32" if amp == "bf16"
            else "fp32 (TF32 convolutions)")


def packed_files(state: Path) -> list[Path]:
    """What the archive holds: every JSON, log, report and XML of the state, no checkpoint or data."""
    keep = {".json", ".jsonl", ".log", ".md", ".csv", ".png", ".xml", ".txt"}
    return [path for path in state.rglob("*") if path.is_file() and path.suffix in keep
            and "mnist_subset" not in path.relative_to(state).parts]


def output_problems(out: Path) -> list[str]:
    """How ``out`` breaks the limits of what comes back (none: empty list)."""
    files = [path for path in out.rglob("*") if path.is_file()]
    problems = [f"{len(files)} files (at most {MAX_FILES})"] if len(files) > MAX_FILES else []
    for path in files:
        relative = path.relative_to(out)
        if path.stat().st_size > MAX_FILE_BYTES:
            problems.append(f"{relative} is {path.stat().st_size / 2**20:.1f} MiB")
        if len(relative.parts) - 1 > MAX_DEPTH:
            problems.append(f"{relative} is more than {MAX_DEPTH} folders deep")
        if not all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for part in relative.parts):
            problems.append(f"{relative} has a character other than letters, digits, '.', '_' and '-'")
    return problems


def restore(resume_from: Path, state: Path) -> None:
    """Unpack an earlier job's returned ``OUT`` into the state: its archive (files the state lacks) and its
    checkpoints (as ``<run>/last.pth``, where the state has none)."""
    archive = resume_from / "results.tar.gz"
    if archive.exists():
        with tarfile.open(archive) as tar:
            members = [member for member in tar.getmembers()
                       if member.isfile() and not (state / member.name).exists()]
            tar.extractall(state, members=members, filter="data")
    for checkpoint in sorted((resume_from / "checkpoints").glob("*.pth")):
        target = state / TABLE_DIR / checkpoint.stem / "last.pth"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(checkpoint, target)


# ------------------------------------------------------------------------------------------------------ set-up
def missing_modules() -> list[str]:
    return [name for name in NODE_MODULES if importlib.util.find_spec(name) is None]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the folder that comes back (at most 8 files)")
    parser.add_argument("--root", type=Path, default=Path(".node/mnist"),
                        help="MNIST root (torchvision layout; .gz files are read as they are)")
    parser.add_argument("--deadline_s", type=float, default=570.0, help="seconds from --started_at to be done by")
    parser.add_argument("--started_at", type=float, default=None,
                        help="wall-clock start (time.time()); default: now (gpu_node.sh passes its own start)")
    parser.add_argument("--state", type=Path, default=None,
                        help="runs, logs and checkpoints (default .node/state; dry run: a temporary folder)")
    parser.add_argument("--resume_from", type=Path, default=None,
                        help="an earlier job's OUT, carried here: its runs continue")
    parser.add_argument("--amp", choices=("bf16", "none"), default="bf16", help="network precision")
    parser.add_argument("--max_waves", type=int, default=None,
                        help="train at most this many waves (1: the rho=0.997 column at seed 0 alone; default: all "
                             "that fit)")
    parser.add_argument("--dry_run", action="store_true", help="the same sequence on the CPU with tiny lengths")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job; exit status 0 when no step failed, 1 otherwise, 2 when it cannot start."""
    args = parse_args(argv)
    deadline = (args.started_at or time.time()) + args.deadline_s
    if missing := missing_modules():
        print(f"error: missing Python modules: {', '.join(missing)} (carry their wheels in .whl/: "
              "bash scripts/gpu_node_bundle.sh)", file=sys.stderr)
        return 2
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device here; --dry_run runs the same sequence on the CPU", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0) if not args.dry_run else "cpu (dry run)"
    state = (args.state or (Path(tempfile.mkdtemp(prefix="gpu_node_dry_run_")) if args.dry_run
                            else REPO / ".node" / "state")).resolve()
    state.mkdir(parents=True, exist_ok=True)
    scale = DRY_RUN if args.dry_run else GPU
    try:
        if args.resume_from:
            restore(args.resume_from, state)
        root = mnist_subset(args.root, state / "mnist_subset") if args.dry_run else args.root.resolve()
        from datasets.mnist_io import load_mnist

        load_mnist(root, train=False, download=False)
    except Exception as error:  # noqa: BLE001 - missing or unreadable data or archive: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    node = Node(args.out.resolve(), state, root, scale, deadline, args.amp, max_waves=args.max_waves)

    def interrupt(signum: int, _frame: object) -> None:
        node.interrupted = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupt)
    node.say(f"device {device}; precision {precision_label(args.amp)}; state {state}; OUT {node.out}")
    bench_rows: list[dict] = []
    try:
        bench_rows = node.smoke()
        node.train(bench_rows)
    finally:
        node.children.stop_all(scale.grace_s)
    node.report()
    node.summary(device, bench_rows)
    written = node.pack()
    node.say("OUT: " + ", ".join(f"{path.relative_to(node.out)} ({path.stat().st_size / 2**20:.2f} MiB)"
                                 for path in written))
    failed = [outcome.step for outcome in node.outcomes if outcome.status == "failed"]
    node.say(f"wall time {time.time() - node.start:.1f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

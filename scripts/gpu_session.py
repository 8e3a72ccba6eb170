"""One command for a GPU session: the CUDA tests, the throughput bench, the first paper-length Biased MNIST runs and
the report, in that order, within a time budget; a later session with the same OUT continues where this one stopped.

    python scripts/gpu_session.py [--out DIR] [--root ../shared/data] [--budget_min 25] [--dry_run]
    bash scripts/gpu_session.sh        (the same, with OUT, ROOT, BUDGET_MIN and PYTHON from the environment)

The sequence (each step a child process; its output is shown and kept in OUT/logs/<step>.log):

1. ``tests``: ``python -m pytest -m cuda`` (JUnit XML in OUT/tests/);
2. ``bench_<setup>``: bench/throughput_biased_mnist.py for Vanilla and ReBias in fp32, bf16, bf16 + channels_last
   (also with 3 and 12 stacked seeds) and bf16 + channels_last + torch.compile: images/s, step time, FLOP/s and
   their share of the device's dense bf16 peak, and where the time goes when below target (JSON in OUT/bench/);
3. ``train_<method>_rho<rho>``: paper-length Biased MNIST runs (80 epochs, 3 seeds stacked in one process, bf16
   autocast and channels_last): ReBias and Vanilla at rho 0.997, then 0.999, 0.995 and 0.99, then LearnedMixin and
   RUBi at the same rhos, in OUT/biased_mnist_table1/ (the layout of scripts/biased_mnist_table1.sh with
   STACK_SEEDS=1, so either script can finish the table);
4. ``matrix_data_*`` and ``matrix_conv_<benchmark>_<method>_seed<k>``: the conv family of the comparison matrix
   (utils/matrix.py; main_matrix.py --family conv, fp32 + channels_last: LfF and DisEnt have no autocast, and a
   column must train every method alike), seed-major, in OUT/matrix/conv/, on
   Colored MNIST generated into OUT/matrix_data/ (the layout of scripts/matrix.sh with FAMILY=conv);
5. the reports: scripts/report.py over the finished Table 1 runs (OUT/biased_mnist_table1/report/), the conv matrix
   (OUT/matrix/report/) and OUT/SESSION.md (the steps, the tests' counts, the throughput table, the runs).

Budget: a step starts only while the time left, less a reserve kept for stopping and the report, covers the least it
needs (a training run: one minute); otherwise the sequence stops there and the rest is left for a later session. A
step that reaches its time limit (its own, or the time left) gets SIGTERM: a training run then saves its checkpoint
at the current batch and exits (SIGKILL follows after a grace period).

Resume: a step whose outputs exist is skipped (a training run: every seed's results.json; the tests: a marker written
when they pass; a bench setup: its JSON), and a training run continues from its checkpoint (``--resume auto``).
Checkpoints (last.pth) stay under OUT and are git-ignored: only JSON, logs and reports are for committing.

``--dry_run`` runs the same sequence on the CPU with tiny limits (a 512/256-image MNIST subset written into OUT,
batches of 4, one step per run, 3x3 kernels for f, no torch.compile setup, the matrix for seed 0 only), forking
this interpreter for each step instead of starting a new one, so that it ends within a minute or so; its OUT
defaults to a temporary folder.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Protocol

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from utils.matrix import BENCHMARKS, TRAINED_METHODS  # noqa: E402

RHOS = ("0.997", "0.999", "0.995", "0.99")
SEEDS = (0, 1, 2)
METHOD_FLAGS: dict[str, tuple[str, ...]] = {
    "Vanilla": ("--f_lambda_outer", "0", "--g_lambda_inner", "0"),
    "ReBias": (),
    "LearnedMixin": ("--outer_criterion", "LearnedMixin", "--g_lambda_inner", "0", "--n_g_pretrain_epochs", "5",
                     "--n_g_update", "0"),
    "RUBi": ("--outer_criterion", "RUBi", "--g_lambda_inner", "0"),
}
"""The flags of each Table 1 method, as scripts/biased_mnist_table1.sh passes them (a test keeps the two equal)."""
TRAINING_ORDER: tuple[tuple[str, str], ...] = (
    tuple((method, rho) for rho in RHOS for method in ("ReBias", "Vanilla"))
    + tuple((method, rho) for method in ("LearnedMixin", "RUBi") for rho in RHOS))
TABLE_DIR = "biased_mnist_table1"
REQUIRED_MODULES = ("torch", "torchvision", "numpy", "PIL", "fire", "munch", "adamp", "tqdm", "matplotlib", "sklearn",
                    "scipy", "pytest")
"""What the session's steps import (PyAV, ``av``, only serves the action tests, which are skipped without it)."""
DRY_RUN_PRELOAD = ("torch", "torchvision", "main_biased_mnist", "main_matrix", "datasets.make_disent_data",
                   "bench.throughput_biased_mnist", "matplotlib.pyplot", "pytest")
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Scale:
    """What differs between a GPU session and its CPU dry run."""

    bench_flags: tuple[str, ...]
    bench_setups: tuple[tuple[str, tuple[str, ...]], ...]
    train_flags: tuple[str, ...]
    report_flags: tuple[str, ...]
    tests_max_seconds: float
    bench_max_seconds: float
    train_min_seconds: float
    reserve_seconds: float
    grace_seconds: float
    matrix_flags: tuple[str, ...] = ()
    matrix_seeds: tuple[int, ...] = SEEDS
    data_flags: tuple[str, ...] = ()


BF16_CHANNELS_LAST = ("--amp", "bf16", "--channels_last", "True")
GPU = Scale(
    bench_flags=("--device", "cuda", "--batch_size", "256", "--steps", "20", "--warmup", "5",
                 "--compare_original", "False"),
    bench_setups=(("fp32", ("--amp", "none")), ("bf16", ("--amp", "bf16")),
                  ("bf16_channels_last", (*BF16_CHANNELS_LAST, "--stacked_seeds", "3,12")),
                  ("bf16_channels_last_compile", (*BF16_CHANNELS_LAST, "--compile", "True"))),
    train_flags=BF16_CHANNELS_LAST,
    report_flags=(),
    tests_max_seconds=480, bench_max_seconds=300, train_min_seconds=60, reserve_seconds=150, grace_seconds=60,
    matrix_flags=("--channels_last", "True", "--progress", "False"))
DRY_RUN = Scale(
    bench_flags=("--device", "cpu", "--batch_size", "4", "--steps", "1", "--warmup", "1", "--compare_original",
                 "False", "--f_kernel_size", "3"),
    bench_setups=(("fp32", ("--amp", "none")), ("bf16", ("--amp", "bf16")),
                  ("bf16_channels_last", (*BF16_CHANNELS_LAST, "--stacked_seeds", "3"))),
    train_flags=(*BF16_CHANNELS_LAST, "--device", "cpu", "--n_epochs", "1", "--batch_size", "4",
                 "--limit_train_batches", "1", "--limit_eval_batches", "1", "--f_kernel_size", "3"),
    report_flags=("--include_shortened",),
    tests_max_seconds=300, bench_max_seconds=300, train_min_seconds=0, reserve_seconds=30, grace_seconds=10,
    matrix_flags=("--channels_last", "True", "--device", "cpu", "--progress", "False", "--n_epochs", "1",
                  "--steps_per_epoch", "1", "--batch_size", "4", "--limit_eval_batches", "1"),
    matrix_seeds=(0,), data_flags=("--n_valid", "64"))


@dataclass(frozen=True)
class Step:
    """One child process of the sequence. It is finished when all ``outputs`` exist (none: a marker the session
    writes when the step succeeds); it starts only with ``min_seconds`` of budget left and runs at most
    ``max_seconds``."""

    name: str
    command: tuple[str, ...]
    outputs: tuple[Path, ...] = ()
    max_seconds: float = float("inf")
    min_seconds: float = 0.0


@dataclass
class Outcome:
    """What became of a step in this session: done, failed, stopped (at its time limit), skipped (finished
    before) or left (for a later session: the budget ran out)."""

    step: str
    status: str
    seconds: float = 0.0
    returncode: int | None = None


class Runner(Protocol):
    """Runs a step for at most ``timeout`` seconds, its output also in ``log_path``."""

    def __call__(self, step: Step, timeout: float, log_path: Path) -> Outcome: ...


# ------------------------------------------------------------------------------------------------- the sequence
def tests_step(out: Path, python: str, scale: Scale) -> Step:
    """The CUDA tests; with pytest-timeout installed, a test that hangs (say, in NCCL) is failed after 5 minutes."""
    per_test_limit = ("--timeout", "300") if importlib.util.find_spec("pytest_timeout") else ()
    command = (python, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider", *per_test_limit,
               f"--junitxml={out / 'tests' / 'junit.xml'}")
    return Step("tests", command, max_seconds=scale.tests_max_seconds)


def bench_steps(out: Path, root: Path, python: str, scale: Scale) -> list[Step]:
    steps = []
    for setup, flags in scale.bench_setups:
        rows = out / "bench" / f"{setup}.json"
        command = (python, "bench/throughput_biased_mnist.py", "--root", str(root), *scale.bench_flags, *flags,
                   "--json_out", str(rows))
        steps.append(Step(f"bench_{setup}", command, (rows,), max_seconds=scale.bench_max_seconds))
    return steps


def run_name(method: str, rho: str) -> str:
    return f"biased_mnist_{method}_rho{rho}"


def results_paths(out: Path, method: str, rho: str) -> tuple[Path, ...]:
    """The results.json of every seed of a (method, rho) run, as main_biased_mnist.py --seeds writes them."""
    return tuple(out / TABLE_DIR / f"{run_name(method, rho)}_seed{seed}" / "results.json" for seed in SEEDS)


def checkpoint_path(out: Path, method: str, rho: str) -> Path:
    """The shared checkpoint of a (method, rho) run's stacked seeds."""
    return out / TABLE_DIR / f"{run_name(method, rho)}_seeds{'-'.join(map(str, SEEDS))}" / "last.pth"


def training_step(method: str, rho: str, out: Path, root: Path, python: str, scale: Scale) -> Step:
    """One (method, rho) cell of Table 1: its 3 seeds stacked in one main_biased_mnist.py process, resumable."""
    command = (python, "main_biased_mnist.py", "--root", str(root), "--train_correlation", rho,
               "--seeds", ",".join(map(str, SEEDS)), "--save_dir", str(out / TABLE_DIR),
               "--run_name", run_name(method, rho), "--resume", "auto", "--progress", "False",
               *METHOD_FLAGS[method], *scale.train_flags)
    return Step(f"train_{method}_rho{rho}", command, results_paths(out, method, rho),
                min_seconds=scale.train_min_seconds)


MATRIX_DIR = "matrix"


def matrix_data_dir(out: Path, benchmark: str) -> Path:
    """Where the session generates a Colored MNIST benchmark's data (its folder name under OUT/matrix_data)."""
    return out / "matrix_data" / Path(BENCHMARKS[benchmark].data_dir).name


def matrix_steps(out: Path, root: Path, python: str, scale: Scale) -> list[Step]:
    """The conv family of the comparison matrix: its Colored MNIST data, then every trained cell, seed-major."""
    steps = []
    for name, benchmark in BENCHMARKS.items():
        if benchmark.data_flags is None:
            continue
        data_dir = matrix_data_dir(out, name)
        command = benchmark.data_command(python, str(root), str(data_dir))
        steps.append(Step(f"matrix_data_{data_dir.name}", (*command, *scale.data_flags),
                          (data_dir / "cmnist" / benchmark.percent / "manifest.json",)))
    for seed in scale.matrix_seeds:
        for name, benchmark in BENCHMARKS.items():
            data = ("--data_dir", str(matrix_data_dir(out, name))) if benchmark.data_flags else ()
            for method in TRAINED_METHODS:
                save_dir = out / MATRIX_DIR / "conv" / name
                command = (python, "main_matrix.py", "--family", "conv", "--benchmark", name, "--method", method,
                           "--seed", str(seed), "--root", str(root), *data, "--save_dir", str(save_dir),
                           "--run_name", f"{method}_seed{seed}", "--resume", "auto", *scale.matrix_flags)
                steps.append(Step(f"matrix_conv_{name}_{method}_seed{seed}", command,
                                  (save_dir / f"{method}_seed{seed}" / "results.json",),
                                  min_seconds=scale.train_min_seconds))
    return steps


def build_steps(out: Path, root: Path, python: str, scale: Scale) -> list[Step]:
    """The session's sequence: the CUDA tests, the bench setups, the training runs in TRAINING_ORDER, then the conv
    family of the comparison matrix."""
    return [tests_step(out, python, scale), *bench_steps(out, root, python, scale),
            *(training_step(method, rho, out, root, python, scale) for method, rho in TRAINING_ORDER),
            *matrix_steps(out, root, python, scale)]


def matrix_report_step(out: Path, python: str) -> Step:
    """scripts/report.py matrix over the conv family's finished cells."""
    return Step("report_matrix", (python, "scripts/report.py", "matrix", "--family", "conv", "--root",
                                  str(out / MATRIX_DIR), "--out", str(out / MATRIX_DIR / "report")),
                (out / MATRIX_DIR / "report" / "matrix_conv.md",))


def report_step(out: Path, python: str, scale: Scale) -> Step:
    """scripts/report.py over the training runs (run after the sequence, whatever finished)."""
    table = out / TABLE_DIR
    return Step("report", (python, "scripts/report.py", str(table), "--out", str(table / "report"),
                           *scale.report_flags), (table / "report" / "biased_mnist_table.md",))


# -------------------------------------------------------------------------------------------------- the budget
class Session:
    """Runs steps in order within ``budget_seconds`` of ``clock``, keeping ``reserve_seconds`` for stopping a run and
    for the report; skips finished steps; records every outcome in OUT/session_log.jsonl."""

    def __init__(self, out: Path, budget_seconds: float, reserve_seconds: float, runner: Runner,
                 clock: Callable[[], float] = time.monotonic, echo: Callable[[str], None] = print):
        self.out = out
        self.runner = runner
        self.clock = clock
        self.echo = echo
        self.reserve_seconds = reserve_seconds
        self.start = clock()
        self.deadline = self.start + budget_seconds
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def marker(self, step: Step) -> Path:
        return self.out / "steps" / f"{step.name}.done"

    def finished(self, step: Step) -> bool:
        return all(path.exists() for path in step.outputs or (self.marker(step),))

    def run(self, steps: Sequence[Step]) -> list[Outcome]:
        """Each unfinished step in order while the budget allows; the rest are ``left`` once one does not fit."""
        outcomes: list[Outcome] = []
        for index, step in enumerate(steps):
            if self.finished(step):
                self.echo(f"{self.status_line()} skip {step.name}: finished in an earlier session")
                outcomes.append(Outcome(step.name, "skipped"))
                continue
            available = self.remaining() - self.reserve_seconds
            if available < max(step.min_seconds, 1.0):
                left = [later for later in steps[index:] if not self.finished(later)]
                self.echo(f"{self.status_line()} budget: {max(available, 0) / 60:.1f} min left before the reserve, "
                          f"{step.name} needs {step.min_seconds / 60:.1f}; stopping, {len(left)} steps left for a "
                          "later session")
                outcomes += [Outcome(later.name, "left") for later in left]
                break
            outcomes.append(self.execute(step, min(step.max_seconds, available)))
        return outcomes

    def execute(self, step: Step, timeout: float) -> Outcome:
        """Run one step with ``timeout`` seconds, mark it finished if it succeeded, and record its outcome."""
        self.echo(f"{self.status_line()} run  {step.name} (limit {timeout / 60:.1f} min): {' '.join(step.command)}")
        log_path = self.out / "logs" / f"{step.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        outcome = self.runner(step, timeout, log_path)
        if outcome.status == "done" and not step.outputs:
            self.marker(step).parent.mkdir(parents=True, exist_ok=True)
            self.marker(step).touch()
        self.echo(f"{self.status_line()} {outcome.status} {step.name} in {minutes(outcome.seconds)}"
                  + (f" (exit status {outcome.returncode})" if outcome.returncode else ""))
        with open(self.out / "session_log.jsonl", "a") as log:
            log.write(json.dumps({"session": self.started_at, **asdict(outcome), "command": list(step.command)})
                      + "\n")
        return outcome

    def status_line(self) -> str:
        return (f"[gpu_session {(self.clock() - self.start) / 60:5.1f} min in, {max(self.remaining(), 0) / 60:5.1f} "
                "min left]")


# ------------------------------------------------------------------------------------------- child processes
class Child(Protocol):
    """A child process (:class:`subprocess.Popen` or :class:`ForkedChild`), the leader of its process group."""

    pid: int

    def poll(self) -> int | None: ...


class ForkedChild:
    """A forked copy of this interpreter, with :class:`subprocess.Popen`'s ``poll``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def run_python(args: Sequence[str]) -> int:
    """Run ``python ARGS`` (a script path or ``-m module`` and their arguments) in this interpreter as
    ``__main__``; return its exit status."""
    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(args)
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - the child reports any failure as a traceback and exit status 1
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def fork_python(args: Sequence[str]) -> tuple[Child, IO[bytes]]:
    """Fork this interpreter into a new process group to run ``python ARGS`` there; (child, its output)."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            os.setsid()
            os.dup2(write_fd, 1)
            os.dup2(write_fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            code = run_python(args)
        finally:
            os._exit(code)
    os.close(write_fd)
    return ForkedChild(pid), os.fdopen(read_fd, "rb")


def spawn(command: Sequence[str]) -> tuple[Child, IO[bytes]]:
    """Start ``command`` in a new process group; (child, its output)."""
    process = subprocess.Popen(list(command), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return process, process.stdout


def tee(stream: IO[bytes], log_path: Path) -> None:
    """Copy ``stream`` line by line to the console and to ``log_path``."""
    with stream, open(log_path, "ab") as log:
        for line in iter(stream.readline, b""):
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()
            log.write(line)


def wait(child: Child, seconds: float) -> int | None:
    """The child's exit status once it exits within ``seconds``, else None."""
    end = time.monotonic() + seconds
    while (code := child.poll()) is None and time.monotonic() < end:
        time.sleep(POLL_SECONDS)
    return code


def stop(child: Child, grace_seconds: float) -> int | None:
    """SIGTERM to the child's process group, SIGKILL after ``grace_seconds``; its exit status."""
    for signum, seconds in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass
        if (code := wait(child, seconds)) is not None:
            return code
    return None


class ProcessRunner:
    """Runs a step's command as a child process in its own process group, its output on the console and in the
    step's log; at the time limit the group gets SIGTERM, then SIGKILL after ``grace_seconds``. With ``fork``, a
    Python command runs in a fork of this interpreter (``preload`` modules imported once beforehand) rather than in
    a new one: the dry run's many short steps then skip Python's and torch's start-up. CPU only: CUDA cannot be
    used in a forked child."""

    def __init__(self, grace_seconds: float, fork: bool = False, preload: Sequence[str] = ()):
        self.grace_seconds = grace_seconds
        self.fork = fork
        for module in preload:
            importlib.import_module(module)

    def __call__(self, step: Step, timeout: float, log_path: Path) -> Outcome:
        start = time.monotonic()
        child, output = fork_python(step.command[1:]) if self.fork else spawn(step.command)
        copier = threading.Thread(target=tee, args=(output, log_path), daemon=True)
        copier.start()
        stopped = False
        try:
            code = wait(child, timeout)
            if code is None:
                stopped, code = True, stop(child, self.grace_seconds)
        except KeyboardInterrupt:
            stop(child, self.grace_seconds)
            raise
        copier.join(timeout=10)
        status = "stopped" if stopped else "done" if code == 0 else "failed"
        return Outcome(step.name, status, time.monotonic() - start, code)


# ------------------------------------------------------------------------------------------------- the report
def results_exist(out: Path) -> bool:
    return any((out / TABLE_DIR).glob("*/results.json"))


def tests_summary(out: Path) -> str:
    """Counts of the last CUDA test run, from its JUnit XML."""
    path = out / "tests" / "junit.xml"
    if not path.exists():
        return "not run yet"
    suite = ElementTree.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return (f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, {counts['skipped']} skipped "
            f"({path.relative_to(out)})")


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def bench_table(out: Path, setups: Sequence[str]) -> list[str]:
    """One markdown row per measured variant of every bench setup that has run."""
    lines = ["| setup | variant | img/s | step ms | TFLOP/s | of dense bf16 peak | GPU busy | H<->D copies/step |",
             "|---|---|---|---|---|---|---|---|"]
    for path in (out / "bench" / f"{setup}.json" for setup in setups):
        if not path.exists():
            continue
        for row in json.loads(path.read_text()):
            profile = row["profile"] or {}
            copies = profile.get("host_device_copies_per_step")
            lines.append(f"| {path.stem} | {row['variant']} | {row['images_per_second']:.0f} | {row['step_ms']:.2f} | "
                         f"{row['tflops']:.3g} | {percent(row['peak_fraction'])} | "
                         f"{percent(profile.get('busy_fraction'))} | {'–' if copies is None else f'{copies:g}'} |")
    return lines


def training_lines(out: Path) -> list[str]:
    """Per training run: finished (with each seed's unbiased accuracy), resumable, or not started."""
    lines = []
    for method, rho in TRAINING_ORDER:
        results = results_paths(out, method, rho)
        if all(path.exists() for path in results):
            unbiased = [json.loads(path.read_text())["metrics"]["unbiased"] for path in results]
            state = "finished; unbiased accuracy of the seeds " + ", ".join(f"{value:.1f}" for value in unbiased) + " %"
        elif checkpoint_path(out, method, rho).exists():
            state = "in progress (checkpoint saved; a later session resumes it)"
        else:
            state = "not started"
        lines.append(f"- {method}, rho {rho}: {state}")
    return lines


def matrix_line(out: Path, scale: Scale) -> str:
    """How many conv-family matrix cells are finished, and where their report is."""
    finished = sorted((out / MATRIX_DIR / "conv").glob("*/*/results.json"))
    total = len(BENCHMARKS) * len(TRAINED_METHODS) * len(scale.matrix_seeds)
    return (f"{len(finished)} of {total} runs finished ({MATRIX_DIR}/conv/); report: "
            f"{MATRIX_DIR}/report/matrix_conv.md")


def write_summary(out: Path, device: str, budget_minutes: float, scale: Scale, session: Session,
                  outcomes: Sequence[Outcome]) -> Path:
    """OUT/SESSION.md: this session's steps, the CUDA tests, the throughput table and the state of every run."""
    lines = [f"# GPU session on {device}", "",
             f"Started {session.started_at}; budget {budget_minutes:g} min, used "
             f"{minutes(session.clock() - session.start)}. Command: `bash scripts/gpu_session.sh`.", "",
             "## Steps of this session", "", "| step | status | time |", "|---|---|---|"]
    lines += [f"| {o.step} | {o.status} | {minutes(o.seconds)} |" for o in outcomes]
    lines += ["", "## CUDA tests", "", tests_summary(out), "", "## Throughput (bench/throughput_biased_mnist.py)", "",
              *bench_table(out, [setup for setup, _ in scale.bench_setups]), "",
              "## Biased MNIST runs (Table 1; 3 stacked seeds each)", "", *training_lines(out), "",
              f"Report of the finished runs: {TABLE_DIR}/report/biased_mnist_table.md", "",
              "## Comparison matrix, conv family (main_matrix.py)", "", matrix_line(out, scale), ""]
    path = out / "SESSION.md"
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------------------------------------------- set-up
def missing_modules() -> list[str]:
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def cuda_device_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def slug(name: str) -> str:
    """A folder name for a device: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def mnist_subset(root: Path, destination: Path, n_train: int = 512, n_test: int = 256) -> Path:
    """The first ``n_train`` / ``n_test`` MNIST images of ``root`` in torchvision's layout under ``destination``
    (the dry run's data)."""
    from datasets.mnist_io import MNIST_FILES, load_mnist, write_idx

    raw = destination / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for train, count in ((True, n_train), (False, n_test)):
        images, labels = load_mnist(root, train=train, download=False)
        images_name, labels_name = MNIST_FILES[train]
        write_idx(raw / images_name, images[:count].numpy())
        write_idx(raw / labels_name, labels[:count].numpy())
    return destination


def default_out(dry_run: bool, device: str) -> Path:
    """results/gpu/<device name> (for committing its JSON and reports), or a temporary folder for a dry run."""
    return Path(tempfile.gettempdir()) / "gpu_session_dry_run" if dry_run else Path("results") / "gpu" / slug(device)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: results/gpu/<device name>; dry run: a temporary folder)")
    parser.add_argument("--root", type=Path, default=Path("../shared/data"), help="MNIST root (torchvision layout)")
    parser.add_argument("--budget_min", type=float, default=25.0, help="time budget of the whole session, minutes")
    parser.add_argument("--dry_run", action="store_true", help="the same sequence on the CPU with tiny limits")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs every step")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the session; exit status 0 when no step failed, 1 otherwise, 2 when it cannot start."""
    clock_start = time.monotonic()
    args = parse_args(argv)
    if missing := missing_modules():
        print(f"error: missing Python packages: {', '.join(missing)} (pip install -r requirements.txt; without a "
              "network, carry wheels)", file=sys.stderr)
        return 2
    device = "cpu (dry run)" if args.dry_run else cuda_device_name()
    if device is None:
        print("error: no CUDA device here; --dry_run runs the same sequence on the CPU", file=sys.stderr)
        return 2
    out = (args.out or default_out(args.dry_run, device)).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = args.root.resolve()
    scale = DRY_RUN if args.dry_run else GPU
    try:
        root = mnist_subset(root, out / "mnist_subset") if args.dry_run else root
        if not args.dry_run:
            from datasets.mnist_io import load_mnist

            load_mnist(root, train=False, download=False)
    except Exception as error:  # noqa: BLE001 - DataNotFoundError or an unreadable file: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"[gpu_session] device {device}; OUT {out}; data {root}; budget {args.budget_min:g} min")
    runner = ProcessRunner(scale.grace_seconds, fork=args.dry_run, preload=DRY_RUN_PRELOAD if args.dry_run else ())
    session = Session(out, args.budget_min * 60 - (time.monotonic() - clock_start), scale.reserve_seconds, runner)
    steps = build_steps(out, root, args.python, scale)
    outcomes = session.run(steps)
    if results_exist(out):
        report = report_step(out, args.python, scale)
        outcomes.append(session.execute(report, max(session.remaining(), scale.reserve_seconds / 2)))
    if any((out / MATRIX_DIR / "conv").glob("*/*/results.json")):
        report = matrix_report_step(out, args.python)
        outcomes.append(session.execute(report, max(session.remaining(), scale.reserve_seconds / 2)))
    summary = write_summary(out, device, args.budget_min, scale, session, outcomes)
    print(f"[gpu_session] summary: {summary}")
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())

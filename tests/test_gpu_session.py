"""scripts/gpu_session.py: the sequence and its flags, the budget (a fake clock), resuming a session, the child
processes (time limit, SIGTERM then SIGKILL, forked interpreters) and the CPU dry run end to end."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import gpu_session as gs
from utils.distributed import launched_by_torchrun
from utils.matrix import BENCHMARKS, TRAINED_METHODS

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------- the sequence
def test_sequence_order_and_commands(tmp_path):
    steps = gs.build_steps(tmp_path, Path("/data"), "py", gs.GPU)
    names = [step.name for step in steps]
    assert names[:5] == ["tests", "bench_fp32", "bench_bf16", "bench_bf16_channels_last",
                         "bench_bf16_channels_last_compile"]
    assert names[5:13] == ["train_ReBias_rho0.997", "train_Vanilla_rho0.997", "train_ReBias_rho0.999",
                           "train_Vanilla_rho0.999", "train_ReBias_rho0.995", "train_Vanilla_rho0.995",
                           "train_ReBias_rho0.99", "train_Vanilla_rho0.99"]
    assert names[13:21] == [f"train_{method}_rho{rho}" for method in ("LearnedMixin", "RUBi") for rho in gs.RHOS]
    assert names[21:23] == ["matrix_data_cmnist_lff_paper", "matrix_data_cmnist_lff_lff"]
    assert names[23:] == [f"matrix_conv_{benchmark}_{method}_seed{seed}" for seed in (0, 1, 2)
                          for benchmark in BENCHMARKS for method in TRAINED_METHODS]
    disent = next(step for step in steps if step.name == "matrix_conv_cmnist_disent_1pct_disent_seed1")
    command = " ".join(disent.command)
    assert "main_matrix.py --family conv --benchmark cmnist_disent_1pct --method disent --seed 1" in command
    assert f"--data_dir {tmp_path / 'matrix_data' / 'cmnist_lff_lff'}" in command and "--amp" not in command
    assert disent.outputs == (tmp_path / "matrix" / "conv" / "cmnist_disent_1pct" / "disent_seed1" / "results.json",)
    assert "--preset lff_paper" in " ".join(steps[21].command)
    assert steps[0].command[1:5] == ("-m", "pytest", "-m", "cuda") and not steps[0].outputs
    compile_bench = " ".join(steps[4].command)
    assert "--compile True" in compile_bench and "--amp bf16" in compile_bench and "--device cuda" in compile_bench
    assert "--stacked_seeds 3,12" in " ".join(steps[3].command)
    mixin = steps[13]
    command = " ".join(mixin.command)
    assert "--seeds 0,1,2" in command and "--resume auto" in command and "--outer_criterion LearnedMixin" in command
    assert f"--save_dir {tmp_path / 'biased_mnist_table1'}" in command and "--amp bf16" in command
    assert mixin.outputs == tuple(tmp_path / "biased_mnist_table1" / f"biased_mnist_LearnedMixin_rho0.997_seed{seed}"
                                  / "results.json" for seed in (0, 1, 2))
    assert mixin.min_seconds == gs.GPU.train_min_seconds


@pytest.mark.parametrize("method", list(gs.METHOD_FLAGS))
def test_method_flags_match_the_table1_script(method):
    """The session's runs train what scripts/biased_mnist_table1.sh trains."""
    script = (REPO / "scripts" / "biased_mnist_table1.sh").read_text()
    function = script[script.index("method_flags() {"):script.index("\n}\n", script.index("method_flags() {")) + 3]
    result = subprocess.run(["bash", "-c", f"G_PRETRAIN=5\n{function}\nmethod_flags {method}"], capture_output=True,
                            text=True, check=True)
    assert tuple(shlex.split(result.stdout)) == gs.METHOD_FLAGS[method]


def test_slug_and_default_out():
    assert gs.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert gs.default_out(False, "NVIDIA H200") == Path("results/gpu/nvidia-h200")
    assert gs.default_out(True, "cpu (dry run)").name == "gpu_session_dry_run"


# --------------------------------------------------------------------------------------------------- the budget
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeRunner:
    """Advances the fake clock by each step's duration (at most its time limit) and writes its outputs when it
    finishes; ``fail`` names steps that exit with status 1."""

    def __init__(self, clock: FakeClock, durations: dict[str, float], fail: tuple[str, ...] = ()):
        self.clock, self.durations, self.fail = clock, durations, fail
        self.calls: list[tuple[str, float]] = []

    def __call__(self, step: gs.Step, timeout: float, log_path: Path) -> gs.Outcome:
        self.calls.append((step.name, timeout))
        needed = self.durations[step.name]
        self.clock.now += min(needed, timeout)
        if needed > timeout:
            return gs.Outcome(step.name, "stopped", timeout, -15)
        if step.name in self.fail:
            return gs.Outcome(step.name, "failed", needed, 1)
        for path in step.outputs:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")
        return gs.Outcome(step.name, "done", needed, 0)


def fake_steps(out: Path) -> list[gs.Step]:
    return [gs.Step("tests", ("py",), max_seconds=400), gs.Step("bench", ("py",), (out / "bench.json",)),
            *(gs.Step(f"train_{name}", ("py",), (out / f"{name}.json",), min_seconds=60) for name in "abc")]


DURATIONS = {"tests": 300, "bench": 200, "train_a": 400, "train_b": 600, "train_c": 100}


def run_session(out: Path, runner_factory, budget: float = 1200, reserve: float = 120) -> tuple[list, FakeRunner]:
    clock = FakeClock()
    runner = runner_factory(clock)
    session = gs.Session(out, budget, reserve, runner, clock=clock, echo=lambda _: None)
    return session.run(fake_steps(out)), runner


def test_budget_stops_the_sequence_between_runs_and_a_resumed_session_skips_finished_runs(tmp_path):
    outcomes, runner = run_session(tmp_path, lambda clock: FakeRunner(clock, DURATIONS))
    # 20 min, 2 kept in reserve: tests (5) + bench (3.3) + train_a (6.7) leave 3 min, train_b needs 10: stopped at
    # its limit; then 0 min are left, less than train_c's least (1 min): the sequence stops.
    assert runner.calls == [("tests", 400), ("bench", 780), ("train_a", 580), ("train_b", 180)]
    assert [(o.step, o.status) for o in outcomes] == [("tests", "done"), ("bench", "done"), ("train_a", "done"),
                                                      ("train_b", "stopped"), ("train_c", "left")]
    assert (tmp_path / "steps" / "tests.done").exists() and not (tmp_path / "steps" / "bench.done").exists()

    outcomes, runner = run_session(tmp_path, lambda clock: FakeRunner(clock, DURATIONS))
    assert [name for name, _ in runner.calls] == ["train_b", "train_c"]
    assert [(o.step, o.status) for o in outcomes] == [("tests", "skipped"), ("bench", "skipped"),
                                                      ("train_a", "skipped"), ("train_b", "done"), ("train_c", "done")]
    log = [json.loads(line) for line in (tmp_path / "session_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == ["tests", "bench", "train_a", "train_b", "train_b", "train_c"]
    assert log[3]["status"] == "stopped" and log[3]["command"] == ["py"]


def test_failed_steps_are_run_again_by_the_next_session(tmp_path):
    outcomes, _ = run_session(tmp_path, lambda clock: FakeRunner(clock, DURATIONS, fail=("tests",)), budget=10_000)
    assert outcomes[0].status == "failed" and all(o.status == "done" for o in outcomes[1:])
    _, runner = run_session(tmp_path, lambda clock: FakeRunner(clock, DURATIONS), budget=10_000)
    assert [name for name, _ in runner.calls] == ["tests"]


def test_no_step_starts_once_the_budget_is_spent(tmp_path):
    outcomes, runner = run_session(tmp_path, lambda clock: FakeRunner(clock, DURATIONS), budget=100, reserve=120)
    assert runner.calls == [] and {o.status for o in outcomes} == {"left"}


# --------------------------------------------------------------------------------------------- child processes
def run_command(tmp_path: Path, command: tuple[str, ...], timeout: float = 60, **runner_flags) -> tuple:
    runner = gs.ProcessRunner(grace_seconds=runner_flags.pop("grace_seconds", 5), **runner_flags)
    log = tmp_path / "step.log"
    outcome = runner(gs.Step("step", command), timeout, log)
    return outcome, log.read_text()


def test_runner_shows_and_logs_the_output(tmp_path, capsys):
    outcome, log = run_command(tmp_path, (sys.executable, "-c", "print('hello from the step')"))
    assert (outcome.status, outcome.returncode) == ("done", 0) and "hello from the step" in log
    assert "hello from the step" in capsys.readouterr().out


def test_runner_stops_a_step_at_its_time_limit_with_sigterm(tmp_path):
    """A training run saves its checkpoint on SIGTERM and exits: the runner waits for it."""
    outcome, log = run_command(tmp_path, ("bash", "-c", 'trap "echo checkpoint saved; exit 3" TERM; sleep 60 & wait'),
                               timeout=1)
    assert (outcome.status, outcome.returncode) == ("stopped", 3) and "checkpoint saved" in log
    assert outcome.seconds < 30


def test_runner_kills_a_step_that_ignores_sigterm(tmp_path):
    outcome, _ = run_command(tmp_path, ("bash", "-c", 'trap "" TERM; sleep 60 & wait'), timeout=0.5,
                             grace_seconds=0.5)
    assert (outcome.status, outcome.returncode) == ("stopped", -9)


def test_forked_runner_runs_scripts_and_modules_in_this_interpreter(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint('argv', sys.argv[1:])\nsys.exit(4)\n")
    outcome, log = run_command(tmp_path, (sys.executable, str(script), "a", "b"), fork=True)
    assert (outcome.status, outcome.returncode) == ("failed", 4) and "argv ['a', 'b']" in log
    outcome, log = run_command(tmp_path, (sys.executable, "-m", "json.tool", "--help"), fork=True)
    assert outcome.status == "done" and "usage" in log


def test_torchrun_with_one_process_counts_as_distributed(monkeypatch):
    """The CUDA tests' one-process torchrun run joins a process group (NCCL) rather than running plain."""
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched_by_torchrun()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    assert launched_by_torchrun()
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_by_torchrun()


# ------------------------------------------------------------------------------------------------- the dry run
@pytest.mark.slow
def test_dry_run_runs_the_whole_sequence_on_the_cpu(tmp_path, mnist_root):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "ROOT": str(mnist_root), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", "scripts/gpu_session.sh", "--dry_run"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "skipped" in gs.tests_summary(out) and "0 failed" in gs.tests_summary(out)
    assert {path.stem for path in (out / "bench").glob("*.json")} == {setup for setup, _ in gs.DRY_RUN.bench_setups}
    for method, rho in gs.TRAINING_ORDER:
        for path in gs.results_paths(out, method, rho):
            assert json.loads(path.read_text())["config"]["amp"] == "bf16"
    assert (out / "biased_mnist_table1" / "report" / "biased_mnist_table.md").exists()
    summary = (out / "SESSION.md").read_text()
    assert "| report | done |" in summary and "ReBias, rho 0.997: finished" in summary
    assert "run  train_RUBi_rho0.99 " in result.stdout and "min left]" in result.stdout
    matrix_runs = sorted((out / "matrix" / "conv").glob("*/*_seed0/results.json"))
    assert len(matrix_runs) == len(BENCHMARKS) * len(TRAINED_METHODS)
    assert all(json.loads(path.read_text())["family"] == "conv" for path in matrix_runs)
    assert "| report_matrix | done |" in summary and (out / "matrix" / "report" / "matrix_conv.md").exists()

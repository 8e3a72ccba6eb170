"""The launchers (launchers/): the run lock shared with the sweep and entry scripts, skip and resume, the local pool,
multi_gpu's one run per device from a shared queue (fake devices), and Slurm through submitit's local executor,
including a requeue that resumes from last.pth. A stand-in entry script trains in "steps" of a few milliseconds."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from launchers import LocalLauncher, MultiGpuLauncher, SlurmLauncher
from launchers.base import FINISHED, IN_USE, SKIPPED, execute
from reports.tables import Run
from utils.run_lock import lock_path

FAKE_ENTRY = r'''
"""Stand-in entry script: --save_dir D --run_name N --steps K [--sleep S] [--device X] --resume auto."""
import fcntl, json, os, signal, sys, time
from pathlib import Path
sys.path.insert(0, os.environ["REPO"])
from utils.run_lock import lock_path, run_dir_lock

args = sys.argv[1:]
flag = lambda name, default=None: args[args.index(name) + 1] if name in args else default
run_dir = Path(flag("--save_dir")) / flag("--run_name")
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
probe = os.open(lock_path(run_dir), os.O_RDWR)
try:  # a second open file of the lock must find it held: the launcher holds it and passed it down
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    held = False
except BlockingIOError:
    held = True
os.close(probe)
with run_dir_lock(run_dir):  # what the entry scripts do (experiment.run_experiment)
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "last.pth"
    start = json.loads(checkpoint.read_text())["step"] if flag("--resume") == "auto" and checkpoint.exists() else 0
    with open(run_dir / "attempts.jsonl", "a") as log:
        log.write(json.dumps({"start": start, "begin": time.time(), "device": flag("--device"),
                              "threads": os.environ.get("OMP_NUM_THREADS"), "lock_held": held}) + "\n")
    for step in range(start, int(flag("--steps"))):
        time.sleep(float(flag("--sleep", "0.01")))
        checkpoint.write_text(json.dumps({"step": step + 1}))
        if stop:
            print("stopped by SIGTERM; checkpoint saved")
            sys.exit(2)
    (run_dir / "results.json").write_text(json.dumps({"resumed_from": start, "end": time.time()}))
print("done")
'''


@pytest.fixture
def fake_entry(tmp_path, monkeypatch) -> Path:
    script = tmp_path / "fake_entry.py"
    script.write_text(FAKE_ENTRY)
    monkeypatch.setenv("REPO", str(Path(__file__).resolve().parents[1]))
    return script


def fake_run(script: Path, root: Path, name: str, steps: int = 3, sleep: float = 0.01) -> Run:
    argv = (str(script), "--save_dir", str(root), "--run_name", name, "--steps", str(steps), "--sleep", str(sleep),
            "--resume", "auto")
    return Run(name, str(root / name), argv, steps)


def attempts(run: Run) -> list[dict]:
    return [json.loads(line) for line in (Path(run.run_dir) / "attempts.jsonl").read_text().splitlines()]


def test_local_pool_trains_holding_the_lock_and_leaves_held_and_finished_runs_alone(fake_entry, tmp_path):
    runs = [fake_run(fake_entry, tmp_path / "out", f"run{k}") for k in range(4)]
    held = lock_path(runs[1].run_dir)
    held.parent.mkdir(parents=True)
    descriptor = os.open(held, os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another launcher or sweep trains run1
    Path(runs[2].run_dir).mkdir()
    runs[2].results_path.write_text("{}")  # finished after the plan was made
    try:
        results = LocalLauncher(jobs=2).launch(runs)
    finally:
        os.close(descriptor)
    assert [result.status for result in results] == [FINISHED, IN_USE, SKIPPED, FINISHED]
    assert not Path(runs[1].run_dir).exists()
    for run in (runs[0], runs[3]):
        (attempt,) = attempts(run)
        assert attempt["lock_held"] and attempt["threads"] == str(max(1, (os.cpu_count() or 1) // 2))
        assert (Path(run.run_dir) / "launcher.log").read_text().endswith("done\n")
    assert not lock_path(runs[0].run_dir).exists()


def test_an_interrupted_run_continues_from_its_last_checkpoint(fake_entry, tmp_path):
    run = fake_run(fake_entry, tmp_path, "interrupted", steps=5)
    Path(run.run_dir).mkdir()
    (Path(run.run_dir) / "last.pth").write_text(json.dumps({"step": 3}))
    assert run.resumable()
    result = execute(run)
    assert result.status == FINISHED and result.returncode == 0
    assert json.loads(run.results_path.read_text())["resumed_from"] == 3 and not run.resumable()


def test_a_failing_run_is_reported_with_its_log(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import sys\nprint('error: no data here')\nsys.exit(2)\n")
    run = Run("broken", str(tmp_path / "broken"), (str(script),), 1)
    result = execute(run)
    assert result.status == "failed" and result.returncode == 2
    assert result.log.read_text().splitlines()[-1] == "error: no data here"


def test_multi_gpu_keeps_both_fake_devices_busy_and_never_shares_one(fake_entry, tmp_path):
    lengths = [6, 1, 1, 1, 4, 2, 1]
    runs = [fake_run(fake_entry, tmp_path / "out", f"run{k}", steps=n, sleep=0.05) for k, n in enumerate(lengths)]
    results = MultiGpuLauncher(["cpu", "cpu"]).launch(runs)
    assert [result.status for result in results] == [FINISHED] * len(runs)
    assert {result.slot for result in results} == {0, 1}
    for run, result in zip(runs, results):
        assert attempts(run)[0]["device"] == "cpu" and result.run.argv[-2:] == ("--device", "cpu")
    for slot in (0, 1):
        spans = sorted((r.started, r.ended) for r in results if r.slot == slot)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    events = sorted([(r.started, 1) for r in results] + [(r.ended, -1) for r in results], key=lambda e: (e[0], e[1]))
    running, peak = 0, 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2
    # the long first run kept slot 0 while slot 1 drained the short ones
    first = results[0].slot
    assert sum(result.slot != first for result in results) >= 4


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (those of every one of its threads)."""
    children = []
    for thread in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (thread / "children").read_text().split()]
        except OSError:
            continue
    return children


def _job_training(name: str) -> int | None:
    """The submitit task (test -> local controller -> task -> training process) that trains run ``name``."""
    for controller in _children(os.getpid()):
        for task in _children(controller):
            for child in _children(task):
                try:
                    if f"\0--run_name\0{name}\0" in Path(f"/proc/{child}/cmdline").read_text():
                        return task
                except OSError:
                    continue
    return None


@pytest.mark.slow
def test_slurm_array_through_submitit_requeues_and_resumes(fake_entry, tmp_path):
    """Two runs as a job array on submitit's local executor; the long one gets the preemption signal (SIGUSR2) once
    it has a checkpoint: the job stops its training process, is requeued, and the same command resumes."""
    quick = fake_run(fake_entry, tmp_path / "out", "quick", steps=2)
    long = fake_run(fake_entry, tmp_path / "out", "long", steps=60, sleep=0.05)
    launcher = SlurmLauncher(tmp_path / "submitit", timeout_min=10, gpus_per_job=0, cluster="local")
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(launcher.launch([quick, long])))
    thread.start()
    checkpoint = Path(long.run_dir) / "last.pth"
    deadline = time.time() + 60
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), "the long run never started"
    task = _job_training("long")
    assert task is not None
    os.kill(task, signal.SIGUSR2)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert [result.status for result in results] == [FINISHED, FINISHED]
    tries = attempts(long)
    assert len(tries) == 2 and tries[0]["start"] == 0 and 0 < tries[1]["start"] < 60
    assert json.loads(long.results_path.read_text())["resumed_from"] == tries[1]["start"]
    log = (Path(long.run_dir) / "launcher.log").read_text()
    assert log.count("$ python") == 2 and "stopped by SIGTERM; checkpoint saved" in log
    assert len(attempts(quick)) == 1 and any((tmp_path / "submitit").iterdir())

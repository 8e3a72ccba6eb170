"""A run cannot be silently mislabelled: a resume continues only a checkpoint of the same flags, nothing on disk
changes before every check has passed (a refused run leaves no file behind), one process at a time holds a run
directory (the lock the sweep scripts take too), and wall time adds up over every process that trained a run."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from munch import Munch

import main_biased_mnist
from experiment import COMMON_DEFAULTS, refuse_other_flags, resume_point
from methods.rebias import ReBias
from tasks.biased_mnist import BiasedMNISTTask
from trainer import Trainer, TrainerState, TrainingInterrupted
from utils.io import CheckpointError, atomic_torch_save
from utils.run_lock import RunLockedError, lock_path, run_dir_lock
from utils.seed import rng_states

REPO = Path(__file__).resolve().parents[1]
TINY = dict(batch_size=16, n_epochs=1, limit_train_batches=4, limit_eval_batches=1, f_kernel_size=3, progress=False,
            device="cpu", train_correlation=0.99)


def train(root: Path, save_dir: Path, run_name: str, **flags) -> dict:
    main_biased_mnist.main(**{**TINY, "root": str(root), "save_dir": str(save_dir), "run_name": run_name, **flags})
    return json.loads((save_dir / run_name / "results.json").read_text())


def cli_args(root: Path, save_dir: Path, run_name: str, **flags) -> list[str]:
    merged = {**TINY, "root": root, "save_dir": save_dir, "run_name": run_name, **flags}
    return ["main_biased_mnist.py", *(f"--{key}={value}" for key, value in merged.items())]


def run(args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in run_dir.iterdir()}


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_resume_under_other_flags_is_refused_before_anything_is_written(tmp_path, fake_mnist_root):
    save_dir = tmp_path / "runs"
    train(fake_mnist_root, save_dir, "rho0.99")
    finished = snapshot(save_dir / "rho0.99")
    refused = run(cli_args(fake_mnist_root, save_dir, "rho0.99", train_correlation=0.995, resume=True))
    assert "--train_correlation 0.99 (checkpoint) vs 0.995 (this run)" in one_error_line(refused)
    assert snapshot(save_dir / "rho0.99") == finished
    with pytest.raises(CheckpointError, match=r"--lr 0.001 \(checkpoint\) vs 0.01 \(this run\), --train_correlation "
                                              r"0.99 \(checkpoint\) vs 0.995"):
        train(fake_mnist_root, save_dir, "other", train_correlation=0.995, lr=0.01,
              resume=str(save_dir / "rho0.99" / "last.pth"))
    assert sorted(path.name for path in save_dir.iterdir()) == ["rho0.99"]
    copied = train(fake_mnist_root, save_dir, "copy", resume=str(save_dir / "rho0.99" / "last.pth"),
                   checkpoint_every_steps=2, tensorboard=False)
    assert copied["config"]["train_correlation"] == 0.99 and copied["global_step"] == 4


def test_a_resume_under_other_flags_reads_no_data(tmp_path, fake_mnist_root, monkeypatch):
    """The task and the flags are checked before the task is built (a large dataset is not listed for a refused
    run); the method and data fingerprint once it is."""
    save_dir = tmp_path / "runs"
    train(fake_mnist_root, save_dir, "run")
    built = []
    real_init = BiasedMNISTTask.__init__
    monkeypatch.setattr(BiasedMNISTTask, "__init__", lambda *args: built.append(1) or real_init(*args))
    with pytest.raises(CheckpointError, match=r"'\S+last.pth' \(task biased_mnist, method ReBias\) was trained with "
                                              r"other flags: --lr 0.001 \(checkpoint\) vs 0.01"):
        train(fake_mnist_root, save_dir, "run", lr=0.01, resume=True)
    assert built == []
    checkpoint = torch.load(save_dir / "run" / "last.pth", weights_only=True)
    atomic_torch_save({**checkpoint, "meta": {**checkpoint["meta"], "task": "imagenet"}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="has task='imagenet' but this run needs task='biased_mnist'"):
        train(fake_mnist_root, save_dir, "other", resume=str(tmp_path / "other.pth"))
    assert built == []
    checkpoint["meta"]["method"] = "Vanilla"
    atomic_torch_save(checkpoint, save_dir / "run" / "last.pth")
    with pytest.raises(CheckpointError, match="has method='Vanilla' but this run needs method='ReBias'"):
        train(fake_mnist_root, save_dir, "run", resume=True, overwrite=True)
    assert built == [1]


def test_a_flag_newer_than_the_checkpoint_counts_as_its_default():
    defaults = {**COMMON_DEFAULTS, "lr": 0.001, "swap_inner_sigma": False}
    saved = {key: value for key, value in defaults.items() if key != "swap_inner_sigma"}
    refuse_other_flags(Path("old.pth"), saved, {**defaults, "save_dir": "elsewhere", "progress": False}, defaults)
    with pytest.raises(CheckpointError, match=r"--swap_inner_sigma False \(checkpoint\) vs True \(this run\);"):
        refuse_other_flags(Path("old.pth"), saved, {**defaults, "swap_inner_sigma": True}, defaults)
    with pytest.raises(CheckpointError, match=r"--extra unset \(checkpoint\) vs 1 \(this run\)"):
        refuse_other_flags(Path("old.pth"), saved, {**defaults, "extra": 1}, defaults)


def test_seed_stacked_resume_is_checked_against_its_flags(tmp_path, fake_mnist_root):
    save_dir = tmp_path / "runs"

    def stacked(**flags) -> dict:
        main_biased_mnist.main(**{**TINY, "root": str(fake_mnist_root), "save_dir": str(save_dir),
                                  "run_name": "stack", "seeds": "0,1", **flags})
        return json.loads((save_dir / "stack_seeds0-1" / "summary.json").read_text())

    first = stacked()
    finished = {name: snapshot(save_dir / name) for name in ("stack_seed0", "stack_seed1", "stack_seeds0-1")}
    with pytest.raises(CheckpointError, match=r"--lr 0.001 \(checkpoint\) vs 0.002 \(this run\)"):
        stacked(lr=0.002, resume=True)
    assert {name: snapshot(save_dir / name) for name in finished} == finished
    assert len(stacked(resume=True)["segments"]) == len(first["segments"]) + 1


HOLDER = """
import sys, time
from utils.run_lock import run_dir_lock
with run_dir_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_process_into_a_held_run_directory_is_refused_naming_the_holder(tmp_path, fake_mnist_root):
    save_dir = tmp_path / "runs"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(save_dir / "run")], cwd=REPO, text=True,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_error_line(run(cli_args(fake_mnist_root, save_dir, "run")))
        assert f"is in use by pid {holder.pid} on " in line and "started" in line
        assert sorted(path.name for path in save_dir.iterdir()) == ["run.lock"]
        sweep_lock = subprocess.run(["flock", "-n", "-E", "75", str(lock_path(save_dir / "run")), "true"])
        assert sweep_lock.returncode == 75
    finally:
        holder.kill()
        holder.wait()


def test_a_run_started_under_the_sweep_scripts_flock_uses_that_lock(tmp_path, fake_mnist_root):
    """``flock -n <run_dir>.lock python ...`` (scripts/matrix.sh, scripts/disent_sweep.sh): the child holds the
    shell's lock through the descriptor it inherited, and an in-process lock of the same directory is refused."""
    save_dir = tmp_path / "runs"
    save_dir.mkdir()
    lock = lock_path(save_dir / "run")
    result = subprocess.run(["flock", "-n", "-E", "75", str(lock), sys.executable,
                             *cli_args(fake_mnist_root, save_dir, "run")], cwd=REPO, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    assert (save_dir / "run" / "results.json").exists()
    # the holder waits for the lock (no -n): a poll below may hold it for an instant when the holder starts
    shell = subprocess.Popen(["flock", str(lock), "sleep", "300"], start_new_session=True)
    try:
        deadline = time.time() + 120  # a loaded 2-core machine can take seconds to start the holder
        while subprocess.run(["flock", "-n", "-E", "75", str(lock), "true"]).returncode != 75:
            assert shell.poll() is None, f"the shell's flock exited with {shell.returncode}"
            assert time.time() < deadline
            time.sleep(0.05)
        with pytest.raises(RunLockedError, match="in use by"):
            with run_dir_lock(save_dir / "run"):
                pass
    finally:
        os.killpg(shell.pid, signal.SIGKILL)  # flock and its sleep, which holds the lock too
        shell.wait()


def test_the_lock_is_released_and_removed_with_the_folders_it_made(tmp_path, fake_mnist_root):
    with run_dir_lock(tmp_path / "new" / "deeper" / "run"):
        assert lock_path(tmp_path / "new" / "deeper" / "run").exists()
    assert list(tmp_path.iterdir()) == []
    train(fake_mnist_root, tmp_path / "runs", "run")
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["run"]


def test_wall_seconds_add_up_over_an_interrupted_and_resumed_run(tmp_path, fake_mnist_root, monkeypatch):
    """The first process trains 2 slowed steps and stops (as on SIGTERM); the second trains the other 2."""
    real_step = ReBias.training_step

    def slow_step(self, batch, phase):
        time.sleep(0.3)
        return real_step(self, batch, phase)

    with monkeypatch.context() as patch:
        patch.setattr(ReBias, "training_step", slow_step)
        patch.setattr(Trainer, "_stop_requested", lambda self: self.state.global_step >= 2)
        with pytest.raises(TrainingInterrupted):
            train(fake_mnist_root, tmp_path, "run")
    results = train(fake_mnist_root, tmp_path, "run", resume=True)
    first, second = results["segments"]
    assert first["first_step"] == 0 and first["last_step"] == second["first_step"] == 2
    assert second["last_step"] == results["global_step"] == 4
    assert first["seconds"] >= 0.6 and first["host"] and first["started"]
    assert results["wall_seconds"] == pytest.approx(first["seconds"] + second["seconds"])


class RecordingMethod:
    name = "Recording"

    def load_state_dict(self, state):
        self.state = state


def test_resume_loads_on_the_cpu_and_restores_on_any_device(tmp_path, monkeypatch):
    """On a GPU, loading with ``map_location=<device>`` put the RNG states there and ``torch.set_rng_state``
    refused them: the checkpoint is loaded on the CPU (the method moves its tensors), so a resume works on the
    ``meta`` device too."""
    config = Munch({**COMMON_DEFAULTS, "save_dir": str(tmp_path), "run_name": "run", "resume": True})
    atomic_torch_save({"meta": {"task": "toy", "method": "Recording"}, "trainer": asdict(TrainerState(epoch=1)),
                       "method": {"weight": torch.ones(2)}, "rng": rng_states(), "config": dict(config)},
                      tmp_path / "run" / "last.pth")
    locations = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: locations.append(kwargs["map_location"])
                        or real_load(*args, **kwargs))
    point = resume_point(config, COMMON_DEFAULTS)
    assert locations == ["cpu"]
    assert point.checkpoint["rng"]["torch"].device.type == "cpu"
    assert point.checkpoint["rng"]["torch"].dtype == torch.uint8
    trainer = Trainer(config, SimpleNamespace(name="toy"), RecordingMethod(), tmp_path / "run", torch.device("meta"))
    trainer._restore(point.checkpoint)
    assert trainer.state.epoch == 1 and torch.equal(trainer.method.state["weight"], torch.ones(2))

"""Opening a checkpoint runs no code: a pickle whose ``__reduce__`` would create a file gets one line (exit 2) from
every entry point that opens checkpoints, and the file is never created; checkpoints hold only tensors and plain
data, and those written in the earlier layout (NumPy's RNG state as an array) still load."""
import importlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import experiment
from datasets.make_disent_data import cmnist
from methods.base import Method
from tasks import Task
from utils.io import CheckpointError, atomic_torch_save, load_checkpoint, safe_torch_load
from utils.seed import rng_states, set_rng_states

REPO = Path(__file__).resolve().parents[1]
TINY_BIASED_MNIST = ["--batch_size", "16", "--n_epochs", "1", "--limit_train_batches", "1", "--limit_eval_batches",
                     "1", "--f_kernel_size", "3", "--progress", "False", "--device", "cpu"]


class CreatesFile:
    """Unpickling this object runs ``touch <path>``."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def plant(path: Path, marker: Path, **meta) -> Path:
    """A checkpoint-shaped file at ``path`` that would create ``marker`` when unpickled by ``torch.load``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "config": {}, "payload": CreatesFile(marker)}, path)
    return path


def assert_refused(result: subprocess.CompletedProcess, marker: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "could run code" in lines[0], result.stderr
    assert "system" in lines[0]
    assert not marker.exists()


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "WANDB_MODE": "offline"})


def test_a_malicious_pickle_is_refused_in_one_line_without_running(tmp_path):
    marker = tmp_path / "pwned"
    zipped = plant(tmp_path / "zip.pth", marker)
    legacy = tmp_path / "legacy.pth"
    torch.save({"payload": CreatesFile(marker)}, legacy, _use_new_zipfile_serialization=False)
    for path in (zipped, legacy):
        with pytest.raises(CheckpointError, match=r"holds a Python object of type \S*system that a checkpoint may "
                                                  r"not contain; refusing to open it \(it could run code\)"):
            safe_torch_load(path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(zipped)
    assert not marker.exists()


def test_truncated_and_missing_files_are_one_line_errors(tmp_path):
    path = tmp_path / "last.pth"
    torch.save({"meta": {}, "blob": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        safe_torch_load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        safe_torch_load(tmp_path / "absent.pth")


def test_checkpoints_hold_only_tensors_and_plain_data(tmp_path):
    path = tmp_path / "rng.pth"
    atomic_torch_save({"rng": rng_states(), "config": {"lr": 0.1}}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # a cached Gaussian is part of NumPy's state
    torch.manual_seed(3)
    atomic_torch_save(rng_states(), path)
    expected = (random.random(), np.random.randn(), torch.rand(1))
    set_rng_states(torch.load(path, weights_only=True))
    assert (random.random(), np.random.randn(), torch.rand(1)) == expected


def test_checkpoints_of_the_earlier_layout_still_load_and_restore(tmp_path):
    """Before, the RNG states were Python's and NumPy's own tuples (NumPy's holds a uint32 array): readable with the
    allow-list of the four NumPy globals they need, and nothing more (another array type is refused)."""
    np.random.seed(5)
    old = {"meta": {"task": "t"}, "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                                          "torch": torch.get_rng_state()}}
    torch.save(old, tmp_path / "old.pth")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_states(load_checkpoint(tmp_path / "old.pth")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    torch.save({"meta": {}, "array": np.zeros(3)}, tmp_path / "float_array.pth")
    with pytest.raises(CheckpointError, match=r"of type numpy\.[\w.]+ that a checkpoint may not contain"):
        load_checkpoint(tmp_path / "float_array.pth")


@pytest.fixture(scope="module")
def disent_data(tmp_path_factory, fake_mnist_root) -> Path:
    out = tmp_path_factory.mktemp("disent_data")
    cmnist(str(fake_mnist_root), str(out), percents="5", n_valid=100)
    return out


def test_biased_mnist_resume_path_and_resume_auto_run_nothing(tmp_path, fake_mnist_root):
    marker = tmp_path / "pwned"
    evil = plant(tmp_path / "evil.pth", marker, task="biased_mnist", method="ReBias")
    common = ["main_biased_mnist.py", "--root", str(fake_mnist_root), "--save_dir", str(tmp_path / "runs"),
              *TINY_BIASED_MNIST]
    assert_refused(run(*common, "--run_name", "a", "--resume", str(evil)), marker)
    plant(tmp_path / "runs" / "b" / "last.pth", marker, task="biased_mnist", method="ReBias")
    assert_refused(run(*common, "--run_name", "b", "--resume", "auto"), marker)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["b"]


def test_matrix_resume_runs_nothing(tmp_path, fake_mnist_root):
    marker = tmp_path / "pwned"
    evil = plant(tmp_path / "evil.pth", marker, task="matrix", method="Vanilla")
    result = run("main_matrix.py", "--benchmark", "biased_mnist_rho0.997", "--method", "vanilla", "--root",
                 str(fake_mnist_root), "--save_dir", str(tmp_path / "runs"), "--n_epochs", "1", "--steps_per_epoch",
                 "1", "--limit_eval_batches", "1", "--progress", "False", "--device", "cpu", "--resume", str(evil))
    assert_refused(result, marker)
    assert not (tmp_path / "runs").exists()


def test_train_disent_resume_and_test_py_run_nothing(tmp_path, disent_data):
    marker = tmp_path / "pwned"
    evil = plant(tmp_path / "evil.pth", marker, task="disent_cmnist", method="Vanilla")
    result = run("train_disent.py", "--train_vanilla", "--dataset", "cmnist", "--percent", "5pct", "--data_dir",
                 str(disent_data), "--log_dir", str(tmp_path / "log"), "--num_steps", "2", "--valid_freq", "1",
                 "--batch_size", "16", "--device", "cpu", "--progress", "False", "--resume", str(evil))
    assert_refused(result, marker)
    assert_refused(run("test.py", "--pretrained_path", str(evil), "--device", "cpu"), marker)
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize("bench", ["bench/denormals.py", "bench/hsic_kernel_scale.py"])
def test_benches_run_nothing(tmp_path, bench):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    plant(run_dir / "last.pth", marker, task="matrix", method="Vanilla")
    (run_dir / "config.json").write_text(json.dumps({"seed": 0, "benchmark": "biased_mnist_rho0.997"}))
    assert_refused(run(bench, str(run_dir)), marker)


@pytest.mark.parametrize("script, task, flags", [
    ("main_imagenet", "imagenet", {"train_root": ".", "val_root": "."}),
    ("main_action", "action", {"train_root": ".", "train_annotation_file": "a.json", "eval_root": "."}),
])
def test_imagenet_and_action_resume_runs_nothing(tmp_path, monkeypatch, script, task, flags):
    """main_imagenet.py and main_action.py open ``--resume`` through run_experiment like every entry script; their
    datasets are not built here (stand-ins for the task and the method), only the checkpoint is opened."""
    marker = tmp_path / "pwned"
    evil = plant(tmp_path / "evil.pth", marker, task=task, method="ReBias")
    monkeypatch.setitem(experiment.TASKS, task, type("StandInTask", (Task,), {
        "name": task, "__init__": lambda self, config, device: None}))
    monkeypatch.setitem(experiment.METHODS, "rebias", type("StandInMethod", (Method,), {
        "name": "ReBias", "__init__": lambda self, config, task, device, autocast: None}))
    with pytest.raises(CheckpointError, match="could run code"):
        importlib.import_module(script).main(**flags, save_dir=str(tmp_path / "runs"), device="cpu",
                                             resume=str(evil))
    assert not marker.exists() and not (tmp_path / "runs").exists()

"""End-to-end DisEnt / LfF / Vanilla runs on a small generated Colored MNIST, test.py, resume and the sweep script."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test as disent_test
import train_disent
from trainer import Trainer
from utils.io import CheckpointError, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
RUN = dict(dataset="cmnist", percent="5pct", lr=0.01, batch_size=64, num_steps=60, valid_freq=20, curr_step=20,
           lambda_dis_align=10, lambda_swap_align=10, use_lr_decay=True, lr_decay_step=20, lr_gamma=0.5,
           device="cpu", progress=False)


def train(tmp_path: Path, data_dir: Path, exp: str, **flags) -> dict:
    train_disent.main(**{**RUN, "data_dir": str(data_dir), "log_dir": str(tmp_path), "exp": exp, **flags})
    return json.loads((tmp_path / "cmnist" / exp / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("method_flag, name, predictors", [
    ("train_vanilla", "Vanilla", {"f"}), ("train_lff", "LfF", {"f", "bias"}), ("train_ours", "DisEnt", {"f", "bias"})])
def test_short_runs_learn_and_report_group_accuracies(tmp_path, data_dir, method_flag, name, predictors):
    results = train(tmp_path, data_dir, method_flag, **{method_flag: True})
    assert results["task"] == "disent_cmnist" and results["method"] == name and results["percent"] == 5.0
    assert set(results["predictor_metrics"]) == predictors
    metrics = results["metrics"]
    for key in ("valid", "test", "test_aligned", "test_conflicting", "test_cell_mean"):
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["valid"] > 40.0
    assert results["selected"]["by"] == "valid/f" and results["selected"]["step"] in (20, 40, 60)
    assert len(results["history"]) == 3 and results["global_step"] == 60
    first, last = results["history"][0]["train"]["loss"], results["history"][-1]["train"]["loss"]
    assert last < first
    if name == "DisEnt":
        assert "loss_swap_conflict" in results["history"][-1]["train"]
        assert "loss_swap_conflict" not in results["history"][0]["train"]
        assert results["history"][-1]["lr_intrinsic"] == pytest.approx(0.01 * 0.5 ** 2)


@pytest.mark.slow
def test_test_py_round_trip_and_bad_checkpoints(tmp_path, data_dir):
    results = train(tmp_path, data_dir, "ours", train_ours=True)
    run_dir = tmp_path / "cmnist" / "ours"
    tested = disent_test.main(pretrained_path=str(run_dir), dataset="cmnist", percent="5pct", device="cpu")
    assert tested["metrics"] == results["metrics"]
    assert json.loads((run_dir / "test_results.json").read_text())["metrics"] == results["metrics"]
    last = disent_test.main(pretrained_path=str(run_dir / "last.pth"), device="cpu")
    assert last["metrics"] == results["final_metrics"]
    with pytest.raises(CheckpointError, match="not --dataset cifar10c"):
        disent_test.main(pretrained_path=str(run_dir), dataset="cifar10c")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes((run_dir / "best.pth").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        disent_test.main(pretrained_path=str(corrupt))


@pytest.mark.slow
def test_select_on_test_and_seed_determinism(tmp_path, data_dir):
    first = train(tmp_path, data_dir, "a", train_lff=True, select_on_test=True)
    second = train(tmp_path, data_dir, "b", train_lff=True, select_on_test=True)
    assert first["selected"]["by"] == "test/f"
    assert first["metrics"] == second["metrics"]


@pytest.mark.slow
def test_sigkill_and_resume_gives_identical_metrics(tmp_path, data_dir):
    flags = {**RUN, "num_steps": 600, "valid_freq": 100, "curr_step": 150, "lr_decay_step": 100, "save_freq": 30,
             "data_dir": data_dir, "log_dir": tmp_path / "killed", "exp": "run", "train_ours": True}
    argv = [f"--{key}={value}" for key, value in flags.items()]
    train_disent.main(**{**flags, "data_dir": str(data_dir), "log_dir": str(tmp_path / "reference")})
    reference = json.loads((tmp_path / "reference" / "cmnist" / "run" / "results.json").read_text())
    process = subprocess.Popen([sys.executable, "train_disent.py", *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "killed" / "cmnist" / "run" / "last.pth"
    deadline = time.time() + 240
    while not checkpoint.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    resumed = subprocess.run([sys.executable, "train_disent.py", *argv, "--resume"], cwd=REPO, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "WANDB_MODE": "offline"})
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((checkpoint.parent / "results.json").read_text())
    assert results["metrics"] == reference["metrics"] and results["final_metrics"] == reference["final_metrics"]
    assert results["global_step"] == reference["global_step"]
    assert [record["train"] for record in results["history"]] == [record["train"] for record in reference["history"]]


def test_save_freq_checkpoints_between_evaluations(tmp_path, data_dir, monkeypatch):
    saved = []
    original = Trainer._save_checkpoint

    def record(self, path):
        saved.append((path.name, self.state.global_step, self.state.batch_in_epoch))
        original(self, path)

    monkeypatch.setattr(Trainer, "_save_checkpoint", record)
    train(tmp_path, data_dir, "every", train_vanilla=True, num_steps=20, valid_freq=10, save_freq=4,
          limit_eval_batches=1)
    last = [(step, in_epoch) for name, step, in_epoch in saved if name == "last.pth"]
    assert last == [(4, 4), (8, 8), (10, 0), (12, 2), (16, 6), (20, 0)]
    state = load_checkpoint(tmp_path / "cmnist" / "every" / "last.pth")
    assert state["trainer"]["global_step"] == 20 and state["trainer"]["epoch_loss_sums"] == {}


class StopAfterCheckpoint(Exception):
    """Stands for a crash right after a checkpoint was written."""


def test_num_steps_need_not_be_a_multiple_of_valid_freq_and_resume_inside_the_last_evaluation(
        tmp_path, data_dir, monkeypatch):
    """25 steps with --valid_freq 10: evaluations at steps 10, 20 and 25 (the original accepts any step count); a run
    stopped inside the short last interval resumes to the same results."""
    flags = dict(train_vanilla=True, num_steps=25, valid_freq=10, limit_eval_batches=1)
    reference = train(tmp_path / "reference", data_dir, "run", **flags)
    assert [record["step"] for record in reference["history"]] == [10, 20, 25]
    assert reference["global_step"] == 25 and reference["final_metrics"] == reference["history"][-1]["metrics"]["f"]
    original = Trainer._save_checkpoint

    def crash_at_step_22(self, path):
        original(self, path)
        if self.state.global_step == 22:
            raise StopAfterCheckpoint

    monkeypatch.setattr(Trainer, "_save_checkpoint", crash_at_step_22)
    with pytest.raises(StopAfterCheckpoint):
        train(tmp_path / "resumed", data_dir, "run", save_freq=11, **flags)
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    resumed = train(tmp_path / "resumed", data_dir, "run", save_freq=11, resume=True, **flags)
    assert resumed["history"] == reference["history"] and resumed["metrics"] == reference["metrics"]
    assert resumed["global_step"] == 25


def test_flag_errors(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "train_disent.py", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=60)

    for args, flag in ((["--train_ours", "--dataset", "mnist"], "--dataset"),
                       (["--train_ours", "--percent", "3pct"], "--percent"),
                       (["--dataset", "cmnist"], "--train_ours"),
                       (["--train_ours", "--num_steps", "0"], "--num_steps")):
        result = run(*args)
        assert result.returncode == 2 and flag in result.stderr and "Traceback" not in result.stderr
    missing = run("--train_ours", "--data_dir", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and str(tmp_path) in missing.stderr


def test_sweep_script_flags_and_skip(tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                    "open(os.environ['CALL_LOG'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(0o755)
    done = tmp_path / "logs" / "cifar10c" / "cifar10c_1pct_ours_seed0"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    env = {**os.environ, "PYTHON": str(fake), "CALL_LOG": str(tmp_path / "calls"), "LOG_DIR": str(tmp_path / "logs"),
           "SEEDS": "0 1"}
    result = subprocess.run(["bash", "scripts/disent_cifar10c_ours.sh"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in (tmp_path / "calls").read_text().splitlines()]
    runs = {c[c.index("--exp") + 1]: c for c in calls if c[0] == "train_disent.py"}
    assert len(runs) == 7 and "cifar10c_1pct_ours_seed0" not in runs
    half = runs["cifar10c_0.5pct_ours_seed0"]
    assert half[half.index("--lr") + 1] == "0.0005" and half[half.index("--lambda_swap_align") + 1] == "1"
    one = runs["cifar10c_1pct_ours_seed1"]
    assert one[one.index("--lambda_dis_align") + 1] == "5" and "--use_lr_decay" in one
    assert calls[-1][0] == "scripts/report.py"

"""End-to-end runs of main_biased_mnist.py on real MNIST (or generated MNIST-format files) with the limit flags."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import main_biased_mnist
from utils.io import CheckpointError, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(batch_size=16, n_epochs=3, limit_train_batches=4, limit_eval_batches=2, f_kernel_size=3,
             progress=False, device="cpu")


def run_in_process(tmp_path: Path, root: Path, **flags) -> dict:
    flags = {"root": str(root), "save_dir": str(tmp_path), "run_name": "run", **flags}
    main_biased_mnist.main(**flags)
    return json.loads((tmp_path / flags["run_name"] / "results.json").read_text())


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "main_biased_mnist.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def cli_flags(root: Path, save_dir: Path, **overrides) -> list[str]:
    flags = {**SMALL, "root": root, "save_dir": save_dir, "run_name": "run", **overrides}
    return [f"--{key}={value}" for key, value in flags.items()]


@pytest.mark.slow
def test_short_run_learns_and_writes_results(tmp_path, mnist_root):
    results = run_in_process(tmp_path, mnist_root, train_correlation=0.99, batch_size=32, n_epochs=2,
                             limit_train_batches=15, limit_eval_batches=3, progress=False, device="cpu",
                             tensorboard=True)
    run_dir = tmp_path / "run"
    assert {"config.json", "last.pth", "results.json"} <= {p.name for p in run_dir.iterdir()}
    assert any((run_dir / "tensorboard").iterdir())
    for key in ("task", "method", "train_correlation", "seed", "epoch", "metrics", "wall_seconds",
                "train_images_per_second"):
        assert key in results
    assert results["task"] == "biased_mnist" and results["method"] == "ReBias" and results["epoch"] == 2
    assert set(results["metrics"]) == {"biased", "unbiased", "rho0"}
    losses = [record["train"]["f_loss"] for record in results["history"]]
    assert losses[1] < losses[0]
    assert results["metrics"]["biased"] > 30.0
    assert results["train_images_per_second"] > 0
    assert len(results["per_cell_accuracy"]["unbiased"]) == 10
    assert json.loads((run_dir / "config.json").read_text())["train_correlation"] == 0.99


@pytest.mark.slow
def test_same_seed_same_metrics_and_vanilla_reports_g(tmp_path, fake_mnist_root):
    flags = dict(SMALL, f_lambda_outer=0, g_lambda_inner=0, n_epochs=1)
    first = run_in_process(tmp_path / "a", fake_mnist_root, **flags)
    second = run_in_process(tmp_path / "b", fake_mnist_root, **flags)
    assert first["method"] == "Vanilla"
    assert first["metrics"] == second["metrics"] and first["g_metrics"] == second["g_metrics"]
    assert len(first["g_metrics"]) == 1 and set(first["g_metrics"][0]) == {"biased", "unbiased", "rho0"}
    third = run_in_process(tmp_path / "c", fake_mnist_root, **dict(flags, seed=1))
    assert third["per_cell_accuracy"] != first["per_cell_accuracy"] or third["metrics"] != first["metrics"]


@pytest.mark.slow
def test_frozen_g_after_pretraining_keeps_g_weights(tmp_path, fake_mnist_root):
    run_in_process(tmp_path, fake_mnist_root, **dict(SMALL, n_epochs=0, n_g_pretrain_epochs=1, run_name="pre"))
    pretrained = load_checkpoint(tmp_path / "pre" / "last.pth")["method"]["g_nets"][0]
    run_in_process(tmp_path, fake_mnist_root, **dict(SMALL, n_epochs=1, n_g_pretrain_epochs=1, n_g_update=0,
                                                      g_lambda_inner=0, run_name="frozen"))
    frozen = load_checkpoint(tmp_path / "frozen" / "last.pth")["method"]["g_nets"][0]
    weights = [key for key in pretrained if key.endswith("weight")]
    assert weights and all(torch.equal(pretrained[key], frozen[key]) for key in weights)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_killed_run_resumes_to_identical_metrics(tmp_path, fake_mnist_root, how):
    save_dir = tmp_path / "killed"
    flags = cli_flags(fake_mnist_root, save_dir, limit_train_batches=12, checkpoint_every_steps=5)
    reference = run_in_process(tmp_path / "reference", fake_mnist_root, **dict(SMALL, limit_train_batches=12))
    process = subprocess.Popen([sys.executable, "main_biased_mnist.py", *flags], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(save_dir / "run" / "last.pth", process)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert not (save_dir / "run" / "results.json").exists()
    if how == "sigterm":
        assert "resume with --resume" in stderr
        assert "Traceback" not in stderr
    load_checkpoint(save_dir / "run" / "last.pth")
    resumed = cli(*flags, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    results = json.loads((save_dir / "run" / "results.json").read_text())
    assert results["metrics"] == reference["metrics"]
    assert results["per_cell_accuracy"] == reference["per_cell_accuracy"]
    assert results["global_step"] == reference["global_step"]
    assert [record["train"] for record in results["history"]] == [record["train"] for record in reference["history"]]


def test_truncated_checkpoint_is_detected(tmp_path):
    path = tmp_path / "last.pth"
    torch.save({"meta": {"task": "biased_mnist"}, "blob": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


@pytest.mark.parametrize("args, flag", [
    (["--train_correlation", "1.5"], "--train_correlation"),
    (["--train_correlation", "0"], "--train_correlation"),
    (["--optim", "SGD"], "--optim"),
    (["--outer_criterion", "Nope"], "--outer_criterion"),
    (["--no_such_flag", "1"], "--no_such_flag"),
    (["--n_epochs", "abc"], "--n_epochs"),
    (["--checkpoint_every_steps", "0"], "--checkpoint_every_steps"),
    (["--seeds", "0,0"], "--seeds"),
    (["--seeds", "0,1", "--optim", "AdamP"], "--seeds"),
])
def test_bad_flags_give_one_line_error(args, flag, mnist_root):
    result = cli("--root", str(mnist_root), *args, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and flag in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_root_and_missing_data_give_one_line_error(tmp_path):
    result = cli(timeout=60)
    assert result.returncode == 2 and "--root" in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "empty"
    result = cli("--root", str(empty), "--device", "cpu", timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "MNIST not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_resume_with_mismatched_checkpoint_is_refused(tmp_path, fake_mnist_root):
    bad = tmp_path / "other.pth"
    torch.save({"meta": {"task": "imagenet", "method": "ReBias"}}, bad)
    result = cli(*cli_flags(fake_mnist_root, tmp_path), f"--resume={bad}", timeout=120)
    assert result.returncode == 2 and "task='imagenet'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_median_sigma_adamp_cosine_and_wandb_offline(tmp_path, fake_mnist_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    results = run_in_process(tmp_path, fake_mnist_root, **dict(
        SMALL, n_epochs=2, rbf_sigma_x="median", rbf_sigma_y="median", update_sigma_per_epoch=True,
        rbf_sigma_scale_x=2.0, optim="AdamP", scheduler="CosineAnnealingLR", wandb=True))
    sigmas = results["sigmas"]
    assert sigmas["outer_sigma_x"] > 0 and sigmas["outer_sigma_x"] != 1.0
    assert sigmas["inner_sigma_x"] == sigmas["outer_sigma_y"] and sigmas["inner_sigma_y"] == sigmas["outer_sigma_x"]
    assert results["history"][-1]["lr_f"] == pytest.approx(0.0, abs=1e-12)
    assert any((tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_nan_loss_stops_with_term_named_and_checkpoint(tmp_path, fake_mnist_root, monkeypatch):
    import torch.nn.functional as F

    from trainer import NonFiniteLossError, Trainer, TrainingInterrupted

    real_cross_entropy = F.cross_entropy
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_cross_entropy(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 12 else loss

    flags = dict(SMALL, n_epochs=2, f_lambda_outer=0, g_lambda_inner=0, limit_train_batches=12)
    with monkeypatch.context() as patch:  # stopped after the first epoch, as by SIGTERM
        patch.setattr(Trainer, "_stop_requested", lambda self: self.state.epoch >= 1)
        with pytest.raises(TrainingInterrupted):
            run_in_process(tmp_path, fake_mnist_root, **flags)
    good = load_checkpoint(tmp_path / "run" / "last.pth")
    monkeypatch.setattr(F, "cross_entropy", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"step \d+.*f_cls=nan"):
        run_in_process(tmp_path, fake_mnist_root, **dict(flags, resume=True))
    assert list((tmp_path / "run").glob("nonfinite_step*.pth"))
    after = load_checkpoint(tmp_path / "run" / "last.pth")
    assert after["trainer"]["global_step"] == good["trainer"]["global_step"]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path, fake_mnist_root):
    single = run_in_process(tmp_path / "single", fake_mnist_root, **dict(SMALL, n_epochs=1))
    flags = cli_flags(fake_mnist_root, tmp_path / "ddp", n_epochs=1)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "main_biased_mnist.py", *flags], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    ddp = json.loads((tmp_path / "ddp" / "run" / "results.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert set(ddp["metrics"]) == set(single["metrics"])
    assert len(ddp["g_metrics"]) == len(single["g_metrics"])
    assert result.stdout.count("results:") == 1


@pytest.mark.parametrize("script", ["main_biased_mnist.py", "train_disent.py", "main_imagenet.py", "main_action.py",
                                    "test.py"])
def test_help_lists_flags(script):
    result = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--" in result.stdout and "Traceback" not in result.stderr


MEDIAN = dict(SMALL, n_epochs=2, limit_train_batches=2, limit_eval_batches=1, rbf_sigma_x="median",
              rbf_sigma_y="median", update_sigma_per_epoch=True)


def test_median_radii_are_updated_after_each_evaluation_as_in_the_original(tmp_path, fake_mnist_root, monkeypatch):
    """The original evaluates an epoch, then recomputes the radii (a train-mode pass that moves BatchNorm statistics):
    no evaluation, the final one included, sees a radius pass made after its epoch's training."""
    import trainer as trainer_module
    from methods.rebias import ReBias

    events = []
    update_sigmas, evaluate = ReBias.update_sigmas, trainer_module.evaluate
    monkeypatch.setattr(ReBias, "update_sigmas",
                        lambda self, loader: events.append("radii") or update_sigmas(self, loader))
    monkeypatch.setattr(trainer_module, "evaluate",
                        lambda *args, **kwargs: events.append("evaluate") or evaluate(*args, **kwargs))
    results = run_in_process(tmp_path, fake_mnist_root, **MEDIAN)
    assert events == ["radii", "evaluate", "radii", "evaluate", "evaluate"]
    assert results["final_metrics"] == results["history"][-1]["metrics"]["f"]


class StopAfterCheckpoint(Exception):
    """Stands for a crash right after a checkpoint was written."""


def test_median_radii_run_resumed_after_an_epoch_matches_a_straight_run(tmp_path, fake_mnist_root, monkeypatch):
    from trainer import Trainer

    straight = run_in_process(tmp_path / "straight", fake_mnist_root, **MEDIAN)
    save = Trainer._save_checkpoint

    def crash_after_first_epoch(self, path):
        save(self, path)
        if self.state.epoch == 1:
            raise StopAfterCheckpoint

    monkeypatch.setattr(Trainer, "_save_checkpoint", crash_after_first_epoch)
    with pytest.raises(StopAfterCheckpoint):
        run_in_process(tmp_path / "resumed", fake_mnist_root, **MEDIAN)
    monkeypatch.setattr(Trainer, "_save_checkpoint", save)
    resumed = run_in_process(tmp_path / "resumed", fake_mnist_root, **dict(MEDIAN, resume=True))
    for key in ("metrics", "sigmas", "per_cell_accuracy", "global_step"):
        assert resumed[key] == straight[key], key
    assert [record["train"] for record in resumed["history"]] == [record["train"] for record in straight["history"]]


def test_fractional_limit_eval_batches_evaluates_that_share(tmp_path, fake_mnist_root):
    """The audit's command (--limit_eval_batches 0.5, documented as allowed) crashed after the first epoch."""
    results = run_in_process(tmp_path, fake_mnist_root, limit_train_batches=1, limit_eval_batches=0.5, n_epochs=1,
                             batch_size=32, device="cpu", progress=False)
    assert results["epoch"] == 1 and len(results["history"]) == 1
    assert set(results["metrics"]) == {"biased", "unbiased", "rho0"}


def test_shortened_run_summary_explains_near_chance_accuracy_and_gives_the_paper_figure():
    config = main_biased_mnist.build_config(main_biased_mnist.DEFAULTS, {"root": "data", "train_correlation": 0.99,
                                                                         "n_epochs": 2, "limit_train_batches": 40})
    note = main_biased_mnist.shortened_run_note(config, "ReBias", [9.3])
    assert "near chance" in note and "not a failure" in note and "88.1 % unbiased accuracy for ReBias" in note
    assert note.endswith("python main_biased_mnist.py --root data --train_correlation 0.99")
    learned = main_biased_mnist.shortened_run_note(config, "Vanilla", [55.0])
    assert "near chance" not in learned and "89.1 %" in learned

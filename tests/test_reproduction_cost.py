"""bench/reproduction_cost.py: every estimator runs, the extrapolation follows the papers' protocols, bad names fail."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import reproduction_cost
from bench.reproduction_cost import COST_ESTIMATORS, Settings, main
from utils.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY: dict[str, dict[str, Any]] = {
    "imagenet": {"shrink": {"image_size": 32}},
    "action": {"shrink": {"num_frames": 2, "crop_size": 32, "test_crop_size": 32, "resnet_base_width": 4}},
}
"""Smaller inputs and networks so that the CPU test stays fast (the protocol's counts are unchanged)."""

STEP, EVAL_SAMPLE, SIGMA_BATCH = 0.5, 1e-3, 0.25
MAX_BATCH = 8


def tiny_settings(root: Path, datasets: tuple[str, ...] = ("cmnist", "cifar10c")) -> Settings:
    return Settings(torch.device("cpu"), steps=1, warmup=0, max_batch=MAX_BATCH, root=str(root), datasets=datasets)


@pytest.mark.parametrize("task", sorted(COST_ESTIMATORS))
def test_every_estimator_runs(task: str, fake_mnist_root: Path, capsys: pytest.CaptureFixture) -> None:
    seconds = COST_ESTIMATORS[task](tiny_settings(fake_mnist_root), **TINY.get(task, {}))
    assert math.isfinite(seconds) and seconds > 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all("step" in line and "runs =" in line for line in lines)


@pytest.fixture
def fixed_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every measured step takes STEP s, every evaluated sample EVAL_SAMPLE s, every radius-update batch
    SIGMA_BATCH s (at the measured batch of MAX_BATCH)."""
    monkeypatch.setattr(reproduction_cost, "time_steps", lambda *args, **kwargs: STEP)
    monkeypatch.setattr(reproduction_cost, "time_evaluation",
                        lambda method, task, *args: {name: EVAL_SAMPLE for name in task.eval_loaders})
    monkeypatch.setattr(reproduction_cost, "time_sigma_update", lambda *args: SIGMA_BATCH)


def step_at(paper_batch: int) -> float:
    """A step at the paper's batch, scaled from the measured batch."""
    return STEP * paper_batch / MAX_BATCH


@pytest.mark.usefixtures("fixed_timers")
def test_biased_mnist_extrapolation(fake_mnist_root: Path) -> None:
    # 4 rho x 3 seeds; 235 batches of 256 per epoch; 80 epochs (+5 of g pre-training for LearnedMixin);
    # evaluations after every epoch and at the end, on 3 x 10,000 test images.
    expected = 4 * 3 * (step_at(256) * 235 * (3 * 80 + 85) + (3 * 81 + 86) * 30_000 * EVAL_SAMPLE)
    assert COST_ESTIMATORS["biased_mnist"](tiny_settings(fake_mnist_root)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.usefixtures("fixed_timers")
def test_disent_extrapolation(tmp_path: Path) -> None:
    # 3 methods x 5 seeds x (4, 4, 1) ratios; 50,000 steps; 100 evaluations every 500 steps and a final one on the
    # valid and test sets (5,000 + 10,000 images; BFFHQ 1,000 + 1,000).
    expected = (3 * 4 * 5 * (50_000 * step_at(256) + 101 * 15_000 * EVAL_SAMPLE) * 2
                + 3 * 1 * 5 * (50_000 * step_at(64) + 101 * 2_000 * EVAL_SAMPLE))
    settings = tiny_settings(tmp_path, datasets=("cmnist", "cifar10c", "bffhq"))
    assert COST_ESTIMATORS["disent"](settings) == pytest.approx(expected, rel=1e-12)


@pytest.mark.usefixtures("fixed_timers")
def test_imagenet_extrapolation(tmp_path: Path) -> None:
    # 4 methods x 3 seeds; 427 batches of 128 per epoch (54,600 images assumed); 120 epochs, LearnedMixin +30 of g
    # pre-training; ReBias recomputes the median radii at start and between epochs (120 times) on 107 batches;
    # evaluations every epoch and at the end (LearnedMixin: also after each pre-training epoch) on 2,100 + 787 images.
    expected = 3 * (step_at(128) * 427 * (3 * 120 + 150) + 120 * 107 * SIGMA_BATCH * 128 / MAX_BATCH
                    + (3 * 121 + 151) * (2_100 + 787) * EVAL_SAMPLE)
    assert COST_ESTIMATORS["imagenet"](tiny_settings(tmp_path), **TINY["imagenet"]) == pytest.approx(expected,
                                                                                                      rel=1e-12)


@pytest.mark.usefixtures("fixed_timers")
def test_action_extrapolation(tmp_path: Path) -> None:
    # 4 methods x 3 seeds; 48 batches of 128 clips per epoch (6,160 videos assumed, drop_last); 120 epochs,
    # LearnedMixin +30 of g pre-training; evaluations every 20 epochs, at each phase's end and at the end
    # (7; LearnedMixin 9) on 136 Mimetics-10 + 500 Kinetics-10 val videos.
    expected = 3 * (step_at(128) * 48 * (3 * 120 + 150) + (3 * 7 + 9) * (136 + 500) * EVAL_SAMPLE)
    assert COST_ESTIMATORS["action"](tiny_settings(tmp_path), **TINY["action"]) == pytest.approx(expected, rel=1e-12)


def test_shrink_refuses_protocol_flags(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shrink accepts"):
        COST_ESTIMATORS["imagenet"](tiny_settings(tmp_path), shrink={"n_epochs": 1})


@pytest.mark.parametrize(("flags", "message"), [({"tasks": "biased_mnist,nope"}, "--tasks: unknown task 'nope'"),
                                                ({"tasks": "disent", "datasets": "mnist"},
                                                 "--datasets: unknown dataset 'mnist'"),
                                                ({"tasks": "disent", "max_batch": 2}, "--max_batch must be at least 4")])
def test_bad_names_fail_before_measuring(flags: dict[str, Any], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match=message):
        main(device="cpu", **flags)
    assert capsys.readouterr().out == ""


def test_command_line_error_is_one_line() -> None:
    result = subprocess.run([sys.executable, "bench/reproduction_cost.py", "--tasks", "nope", "--device", "cpu"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --tasks: unknown task 'nope'; choose from biased_mnist, disent, "
                                     "imagenet, action")

"""CUDA tests (``python -m pytest -m cuda``; skipped where CUDA is absent): each entry script's shortened run with
bf16 autocast and channels_last, and with torch.compile on top; seed-stacked Biased MNIST against separate runs;
``--deterministic`` twice; a one-process NCCL torchrun run; no host<->device copy in the training steps of the
device-resident Biased MNIST; the throughput bench with its FLOP count and profile."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import main_biased_mnist
from bench import throughput_biased_mnist as bench
from test_imagenet import imagenet, run_main as run_imagenet  # noqa: F401 (imagenet is a fixture)
from test_seed_stacking import METHOD_FLAGS, SMALL as STACKING_SMALL, assert_same_run, load
from test_train_biased_mnist import cli, cli_flags
from test_train_disent import train as run_disent
from trainer import autocast_factory

if importlib.util.find_spec("av"):  # PyAV decodes the action videos; without it only the action tests are skipped
    from test_action import action_data, run_main as run_action  # noqa: F401 (action_data is a fixture)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

REPO = Path(__file__).resolve().parents[1]
MODES: dict[str, dict[str, Any]] = {
    "bf16_channels_last": {"amp": "bf16", "channels_last": True},
    "bf16_channels_last_compile": {"amp": "bf16", "channels_last": True, "compile": True},
}
BIASED_MNIST = dict(batch_size=64, n_epochs=2, limit_train_batches=5, limit_eval_batches=2, progress=False,
                    device="cuda")
BF16_METRIC_POINTS = 4 * 100 / 32
"""bf16 tolerance of a stacked run's accuracies: four of the 32 evaluated images per loader."""
BF16_LOSS_RTOL, BF16_LOSS_ATOL, BF16_SIGMA_RTOL = 5e-2, 5e-3, 2e-2


def assert_cuda_run(results: dict[str, Any], mode: dict[str, Any]) -> None:
    """Ran on this GPU with the mode's flags; accuracies in [0, 100] and finite training losses."""
    assert results["device"] == torch.cuda.get_device_name(0)
    assert all(results["config"][flag] == value for flag, value in mode.items())
    assert all(0.0 <= value <= 100.0 for value in results["metrics"].values())
    losses = [value for record in results["history"] for value in record["train"].values()]
    assert losses and all(math.isfinite(value) for value in losses)


# ------------------------------------------------------------------ every entry script in bf16 (compiled: at the end)
def run_entry_script(script: str, mode: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest) -> dict:
    """A shortened run of ``script`` on the GPU with ``mode``'s flags; its results.json."""
    flags = {"device": "cuda", **mode}
    if script == "biased_mnist":
        root = request.getfixturevalue("mnist_root")
        main_biased_mnist.main(root=str(root), save_dir=str(tmp_path), run_name="run", **BIASED_MNIST, **mode)
        return load(tmp_path / "run" / "results.json")
    if script == "imagenet":
        return run_imagenet(tmp_path, request.getfixturevalue("imagenet"), **flags)
    if script == "action":
        pytest.importorskip("av")
        return run_action(tmp_path, request.getfixturevalue("action_data"), **flags)
    return run_disent(tmp_path, request.getfixturevalue("data_dir"), "ours", train_ours=True, num_steps=20,
                      valid_freq=10, curr_step=10, lr_decay_step=10, **flags)


ENTRY_SCRIPTS = {"biased_mnist": ("ReBias", {"biased", "unbiased", "rho0"}),
                 "imagenet": ("ReBias", {"biased", "unbiased"}), "action": ("ReBias", {"unbiased", "biased"}),
                 "disent": ("DisEnt", {"valid", "test", "test_aligned", "test_conflicting", "test_cell_mean"})}


def check_entry_script(script: str, mode: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The script's shortened run trains its default method and reports its metrics, on this GPU."""
    results = run_entry_script(script, mode, tmp_path, request)
    method, metrics = ENTRY_SCRIPTS[script]
    assert results["method"] == method and metrics <= set(results["metrics"])
    assert_cuda_run(results, mode)


@pytest.mark.parametrize("script", list(ENTRY_SCRIPTS))
def test_short_run_bf16_channels_last(tmp_path, request, script):
    check_entry_script(script, MODES["bf16_channels_last"], tmp_path, request)


class StopAfterFirstEpoch(Exception):
    """Stands for a crash right after the first epoch's checkpoint was written."""


def test_resume_on_cuda_continues_to_the_uninterrupted_run(tmp_path, fake_mnist_root, monkeypatch):
    """A checkpoint written on the GPU resumes on the GPU (its RNG states are loaded to the CPU first, where
    ``torch.set_rng_state`` needs them) and the resumed run ends where an uninterrupted one does."""
    from trainer import Trainer

    flags = dict(BIASED_MNIST, root=str(fake_mnist_root), deterministic=True, run_name="run")
    save = Trainer._save_checkpoint

    def crash_after_first_epoch(self, path):
        save(self, path)
        if self.state.epoch == 1:
            raise StopAfterFirstEpoch

    try:
        main_biased_mnist.main(save_dir=str(tmp_path / "straight"), **flags)
        monkeypatch.setattr(Trainer, "_save_checkpoint", crash_after_first_epoch)
        with pytest.raises(StopAfterFirstEpoch):
            main_biased_mnist.main(save_dir=str(tmp_path / "resumed"), **flags)
        monkeypatch.setattr(Trainer, "_save_checkpoint", save)
        main_biased_mnist.main(save_dir=str(tmp_path / "resumed"), resume=True, **flags)
    finally:
        torch.use_deterministic_algorithms(False)  # --deterministic set it for this whole process
    straight, resumed = (load(tmp_path / name / "run" / "results.json") for name in ("straight", "resumed"))
    assert resumed["global_step"] == straight["global_step"]
    assert resumed["metrics"] == straight["metrics"]


# ---------------------------------------------------------------------------------------------- seed stacking
def assert_bf16_close(stacked: dict[str, Any], separate: dict[str, Any]) -> None:
    """A stacked seed's run against the separate run, within bf16 rounding (bf16 keeps 8 bits of mantissa, and the
    grouped and plain convolutions round in different orders)."""
    for mine, theirs in zip([stacked["metrics"], *stacked["g_metrics"]], [separate["metrics"], *separate["g_metrics"]],
                            strict=True):
        assert mine.keys() == theirs.keys()
        assert all(abs(mine[key] - theirs[key]) <= BF16_METRIC_POINTS for key in theirs), (mine, theirs)
    for mine, theirs in zip(stacked["history"], separate["history"], strict=True):
        assert mine["train"].keys() == theirs["train"].keys()
        for key, value in theirs["train"].items():
            assert math.isclose(mine["train"][key], value, rel_tol=BF16_LOSS_RTOL, abs_tol=BF16_LOSS_ATOL), key
    for key, value in separate["sigmas"].items():
        assert math.isclose(stacked["sigmas"][key], value, rel_tol=BF16_SIGMA_RTOL), key


@pytest.mark.parametrize("amp", ["none", "bf16"])
@pytest.mark.parametrize("method", list(METHOD_FLAGS))
def test_seed_stacking_matches_separate_runs(tmp_path, fake_mnist_root, monkeypatch, method, amp):
    """fp32 with TF32 off: as exact as on the CPU (test_seed_stacking's tolerances); bf16: within bf16 rounding."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    flags = {**STACKING_SMALL, "device": "cuda", "amp": amp, **METHOD_FLAGS[method]}
    main_biased_mnist.main(root=str(fake_mnist_root), save_dir=str(tmp_path / "stacked"), run_name="m",
                           seeds="0,1", **flags)
    for seed in (0, 1):
        main_biased_mnist.main(root=str(fake_mnist_root), save_dir=str(tmp_path / "separate"),
                               run_name=f"m_seed{seed}", seed=seed, **flags)
        stacked = load(tmp_path / "stacked" / f"m_seed{seed}" / "results.json")
        separate = load(tmp_path / "separate" / f"m_seed{seed}" / "results.json")
        (assert_same_run if amp == "none" else assert_bf16_close)(stacked, separate)


# ---------------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("flags", [{}, {"amp": "bf16", "channels_last": True},
                                   {"amp": "bf16", "channels_last": True, "seeds": "0,1"}],
                         ids=["fp32", "bf16_channels_last", "stacked_seeds"])
def test_deterministic_runs_give_identical_metrics(tmp_path, fake_mnist_root, flags):
    """Two processes with --deterministic (torch's deterministic algorithms: every CUDA kernel of training and
    evaluation must have a deterministic implementation, or the run fails) give bit-identical results."""
    runs = []
    for name in ("first", "second"):
        result = cli(*cli_flags(fake_mnist_root, tmp_path / name, device="cuda", deterministic=True, **flags))
        assert result.returncode == 0, result.stderr[-3000:]
        seed_dir = "run_seed0" if "seeds" in flags else "run"
        runs.append(load(tmp_path / name / seed_dir / "results.json"))
    first, second = runs
    for key in ("metrics", "g_metrics", "per_cell_accuracy", "sigmas", "global_step"):
        assert first[key] == second[key], key
    assert [record["train"] for record in first["history"]] == [record["train"] for record in second["history"]]


# ---------------------------------------------------------------------------------------------------- NCCL
def test_one_process_nccl_torchrun(tmp_path, fake_mnist_root):
    """torchrun with one process joins a process group of one (NCCL) and trains under DistributedDataParallel."""
    flags = cli_flags(fake_mnist_root, tmp_path, device="cuda", amp="bf16", channels_last=True, n_epochs=1)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
                             "main_biased_mnist.py", *flags], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NCCL_DEBUG": "INFO"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NCCL INFO" in result.stdout + result.stderr
    results = load(tmp_path / "run" / "results.json")
    assert results["world_size"] == 1 and results["device"] == torch.cuda.get_device_name(0)
    assert result.stdout.count("results:") == 1


# ------------------------------------------------------------------------------ data never leaves the device
def test_profiler_counts_host_device_copies():
    """The control for the next test: copies to and from the GPU are seen."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        torch.ones(8).cuda().cpu()
        torch.cuda.synchronize()
    assert bench.host_device_copies(list(prof.events())) >= 2


@pytest.mark.parametrize("method_name, seeds, mode", [("Vanilla", 1, {}), ("ReBias", 1, MODES["bf16_channels_last"]),
                                                      ("ReBias", 3, MODES["bf16_channels_last"])])
def test_training_steps_make_no_host_device_copy(mnist_root, method_name, seeds, mode):
    """Batches are index slices of the GPU-resident tensors and a step syncs nothing back: after the epoch's order
    is drawn (one copy per epoch), profiled steps contain no host<->device memory copy."""
    device = torch.device("cuda")
    setup = bench.Setup(str(mnist_root), device, torch.cuda.get_device_name(0), 128, 0.99, mode.get("amp", "none"),
                        mode.get("channels_last", False), False, 7, None)
    config = bench.variant_config(bench.Variant(method_name, method_name, seeds), setup)
    task = bench.build_task(config, device)
    loaders = task.train_loader.loaders if seeds > 1 else [task.train_loader]
    assert all(loader.images.device.type == "cuda" and loader.targets.device.type == "cuda" for loader in loaders)
    method = bench.build_method(config, task, device, autocast_factory(device, setup.amp))
    method.train()
    batches = iter(task.train_loader)
    bench.timed_steps(method, batches, 2, device, False, setup.channels_last)
    profile = bench.profile_time(method, batches, 5, device, False, setup.channels_last)
    assert profile["host_device_copies_per_step"] == 0
    assert profile["top"] and 0 < profile["busy_fraction"] <= 1.5


# ------------------------------------------------------------------------------------------------ the bench
def test_throughput_bench(tmp_path, mnist_root, capsys):
    rows_path = tmp_path / "rows.json"
    bench.main(root=str(mnist_root), device="cuda", batch_size=64, steps=2, warmup=1, amp="bf16", channels_last=True,
               stacked_seeds=3, profile=True, profile_steps=2, json_out=str(rows_path))
    rows = json.loads(rows_path.read_text())
    assert [row["stacked_seeds"] for row in rows] == [1, 1, 1, 3, 3]
    peak = bench.peak_tflops_for(torch.cuda.get_device_name(0))
    for row in rows:
        assert row["images_per_second"] > 0 and row["flops_per_step"] > 0 and row["peak_tflops"] == peak
        assert (row["peak_fraction"] is None) == (peak is None)
        assert row["profile"]["top"] and row["profile"]["host_device_copies_per_step"] == 0
    assert "target (>= 40% of dense bf16 peak)" in capsys.readouterr().out


@pytest.mark.parametrize("script", list(ENTRY_SCRIPTS))
def test_short_run_compiled(tmp_path, request, script):
    """Last in this file: torch.compile takes the longest (a minute or so per script)."""
    check_entry_script(script, MODES["bf16_channels_last_compile"], tmp_path, request)

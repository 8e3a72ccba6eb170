"""Every entry script refuses bad flags (unknown names, wrong types, out-of-range values, missing or damaged
inputs) with exit code 2, exactly one line on stderr and no file written, before any work."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MNIST = "{mnist}"
"""Placeholder of the generated MNIST root in the cases below; ``{truncated}`` and ``{meta_only}`` likewise."""

CASES = {
    "main_biased_mnist.py": [
        ["--root", MNIST, "--bogus", "3"],
        ["--root", MNIST, "--n_epochs", "abc"],
        ["--root", MNIST, "--n_epochs", "0"],
        ["--root", MNIST, "--limit_train_batches", "1.5"],
        ["--root", MNIST, "--train_correlation", "1.5"],
        ["--root", "missing/data"],
        ["--root", "{truncated}"],
    ],
    "main_matrix.py": [
        ["--benchmark", "nope", "--method", "vanilla"],
        ["--benchmark", "cmnist_lff_1pct", "--method", "vanilla", "--n_epochs", "0"],
    ],
    "train_disent.py": [
        ["--train_vanilla", "--percent", "3pct"],
        ["--num_steps", "10"],
        ["--train_vanilla", "--bogus", "1"],
        ["--train_vanilla", "--limit_eval_batches", "2.5"],
    ],
    "test.py": [
        ["--pretrained_path", "run", "--bogus", "3"],
        [],
        ["--pretrained_path", "{meta_only}"],
        ["--pretrained_path", "run", "--checkpoint", "middle"],
    ],
    "-m datasets.make_disent_data": [
        ["cmnist", "--mnist_root", MNIST, "--out", "out", "--preset", "bogus"],
        ["cmnist", "--mnist_root", MNIST, "--out", "out", "--percents", "abc"],
        ["cmnist", "--mnist_root", MNIST, "--out", "out", "--percents", "150"],
        ["cmnist", "--mnist_root", MNIST, "--out", "out", "--percents", "3"],
        ["cmnist", "--out", "out"],
        ["cmnist", "--mnist_root", MNIST, "--out", "out", "--n_valid", "500", "--limit", "100"],
        ["cmnist", "--mnist_root", MNIST, "--out", "out", "--bogus", "1"],
        ["cmnist", "--mnist_root", "{truncated}", "--out", "out"],
    ],
    "scripts/report.py": [
        ["cmnist", "results", "--bogus"],
        [],
    ],
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, fake_mnist_root) -> dict[str, str]:
    """The generated MNIST root, a copy with a truncated train-images file, a checkpoint with only a ``meta``."""
    root = tmp_path_factory.mktemp("fuzz_inputs")
    truncated = Path(shutil.copytree(fake_mnist_root, root / "truncated"))
    images = truncated / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    torch.save({"meta": {"task": "disent_cmnist"}}, root / "meta_only.pth")
    return {"mnist": str(fake_mnist_root), "truncated": str(truncated), "meta_only": str(root / "meta_only.pth")}


def files_under(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*"))


@pytest.mark.slow
@pytest.mark.parametrize("script, args", [(script, args) for script, cases in CASES.items() for args in cases],
                         ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(tmp_path, inputs, script, args):
    command = script.split() if script.startswith("-m") else [str(REPO / script)]
    argv = [arg.format(**inputs) for arg in args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline"}
    result = subprocess.run([sys.executable, *command, *argv], cwd=tmp_path, capture_output=True, text=True,
                            timeout=180, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert files_under(tmp_path) == []

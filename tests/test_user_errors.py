"""Bad inputs end in one line, not a traceback, and are refused before any work: truncated MNIST, unwritable
outputs and full disks, incomplete checkpoints, bad results files, silently accepted flags, directories created
for missing data, empty report tables; limited evaluations sample the whole split."""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import main_biased_mnist
import test as disent_test
import train_disent
from datasets import mnist_io
from datasets.loaders import DeviceLoader
from datasets.make_disent_data import cmnist
from datasets.mnist_io import CorruptDataError, load_mnist
from datasets.tensor_loader import TensorLoader
from evaluator import evaluate, limited
from experiment import USER_ERRORS
from scripts import report
from utils import config as config_module
from utils.config import ConfigError, resolve_limit, run_cli
from utils.io import CheckpointError, atomic_torch_save

SMALL = dict(batch_size=16, n_epochs=1, limit_train_batches=2, limit_eval_batches=1, f_kernel_size=3,
             progress=False, device="cpu")


def run_entry(monkeypatch, capsys, entry, *argv: str) -> tuple[int, list[str]]:
    """Run ``entry`` as its script's ``run_cli`` would with ``argv``; (exit status, stderr lines)."""
    monkeypatch.setattr(sys, "argv", ["script", *argv])
    with pytest.raises(SystemExit) as stopped:
        run_cli(entry, user_errors=USER_ERRORS)
    return stopped.value.code, capsys.readouterr().err.strip().splitlines()


# ---------------------------------------------------------------------------------------------- 8: truncated MNIST
def test_a_truncated_idx_file_names_the_file_and_the_expected_size(fake_mnist_root, tmp_path):
    root = Path(shutil.copytree(fake_mnist_root, tmp_path / "mnist"))
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(CorruptDataError, match=r"train-images-idx3-ubyte' is truncated .*5000 bytes.*1568016 bytes"):
        load_mnist(root, train=True)
    assert CorruptDataError in USER_ERRORS


# ------------------------------------------------------------------------------ 12: nothing created for missing data
def test_a_missing_root_creates_nothing_when_the_download_fails(tmp_path, monkeypatch):
    import torchvision.datasets

    class OfflineMNIST:
        """torchvision's MNIST offline: it makes ``root/MNIST/raw`` before its download fails."""

        def __init__(self, root: str, train: bool, download: bool):
            (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    with pytest.raises(mnist_io.DataNotFoundError):
        load_mnist(tmp_path / "missing" / "data", train=True)
    assert not (tmp_path / "missing").exists()


# ------------------------------------------------------------------------------- 7: unwritable outputs, full disks
def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    path = tmp_path / "last.pth"
    atomic_torch_save({"step": 1}, path)
    before = path.read_bytes()
    real_save = torch.save

    def full_disk(obj, stream):
        real_save(obj, stream)
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed") from error

    monkeypatch.setattr(torch, "save", full_disk)
    status, lines = run_entry(monkeypatch, capsys, lambda: atomic_torch_save({"step": 2}, path))
    assert status == 2 and lines == ["error: No space left on device while writing the outputs"]
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]

    def bug() -> None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "x")

    with pytest.raises(FileNotFoundError):  # other OSErrors keep their traceback
        run_cli(bug)

    def bug_while_handling_a_full_disk() -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise KeyError("a bug in the handler")

    with pytest.raises(KeyError):  # not reported as a full disk
        run_cli(bug_while_handling_a_full_disk)


def test_a_read_only_save_dir_is_one_line(tmp_path, fake_mnist_root, monkeypatch, capsys):
    read_only = tmp_path / "read_only"
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        """The system's mkdir as in a folder without write permission (this test may run as root)."""
        if read_only in (Path(path), *Path(path).parents):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    flags = [f"--{key}={value}" for key, value in {**SMALL, "root": fake_mnist_root, "save_dir": read_only}.items()]
    status, lines = run_entry(monkeypatch, capsys, main_biased_mnist.main, *flags)
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: Permission denied: ")
    assert str(read_only) in lines[0]


@pytest.fixture(scope="module")
def disent_run(tmp_path_factory, fake_mnist_root) -> Path:
    """A train_disent.py run directory (2 steps on tiny Colored MNIST)."""
    root = tmp_path_factory.mktemp("disent_run")
    cmnist(str(fake_mnist_root), str(root / "data"), percents="5", n_valid=100, limit=600)
    train_disent.main(train_vanilla=True, data_dir=str(root / "data"), percent="5pct", num_steps=2, valid_freq=2,
                      batch_size=32, log_dir=str(root / "log"), exp="run", device="cpu", progress=False)
    return root / "log" / "cmnist" / "run"


def test_test_py_checks_out_before_evaluating(disent_run, tmp_path, monkeypatch):
    out = tmp_path / "read_only" / "metrics.json"
    (tmp_path / "read_only").mkdir()
    real_access = config_module.os.access
    monkeypatch.setattr(config_module.os, "access",
                        lambda path, mode: Path(path) != out.parent and real_access(path, mode))
    monkeypatch.setattr(disent_test, "evaluate", lambda *args, **kwargs: pytest.fail("evaluated before --out"))
    with pytest.raises(ConfigError, match=f"--out {out}: cannot write into '{out.parent}'"):
        disent_test.main(pretrained_path=str(disent_run), device="cpu", out=str(out))


# ------------------------------------------------------------------------------------- 9: incomplete inputs
def test_test_py_on_a_checkpoint_without_config(tmp_path):
    path = tmp_path / "meta_only.pth"
    torch.save({"meta": {"task": "disent_cmnist", "method": "Vanilla"}, "method": {}}, path)
    with pytest.raises(CheckpointError, match=f"'{path}' has no 'config' entry"):
        disent_test.main(pretrained_path=str(path), device="cpu")


def disent_results(method: str, preset: str | None, seed: int = 0) -> dict:
    metrics = {"test": 50.0, "test_cell_mean": 50.0}
    return {"task": "disent_cmnist", "method": method, "percent": 1.0, "seed": seed, "config": {"preset": preset},
            "history": [{"metrics": {"f": metrics}}], "global_step": 23_500, "final_metrics": metrics,
            "per_cell_accuracy": {"test": [[50.0]]}, "protocol": {"paper_length": True}}


@pytest.mark.parametrize("which", ["cmnist", "lff"])
@pytest.mark.parametrize("content", ["{not json", "[1, 2]", json.dumps({"task": "disent_cmnist", "method": "LfF"})])
def test_reproduction_reports_name_a_bad_results_file(tmp_path, capsys, which, content):
    bad = tmp_path / "runs" / "bad" / "results.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    assert report.main([which, str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- 13: every run left out of the tables
@pytest.mark.parametrize("which, preset, reason", [("cmnist", "lff_paper", "of LfF's protocol"),
                                                    ("lff", None, "of DisEnt's protocol")])
def test_reproduction_reports_say_when_every_run_was_left_out(tmp_path, capsys, which, preset, reason):
    for seed in (0, 1):
        path = tmp_path / "runs" / f"seed{seed}" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(disent_results("LfF", preset, seed)))
    assert report.main([which, str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "every one of the 2 Colored MNIST runs was left out" in lines[0]
    assert f"2 run(s) {reason}" in lines[0] and not (tmp_path / "out").exists()


def test_reproduction_report_counts_the_runs_it_left_out(tmp_path, capsys):
    for name, method, preset in (("disent", "LfF", None), ("lff", "LfF", "lff_paper"),
                                 ("ce", "LfF[bias_loss=ce]", None)):
        path = tmp_path / "runs" / name / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(disent_results(method, preset)))
    assert report.main(["cmnist", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("3 runs, 1 in the tables (left out: 1 run(s) of LfF's protocol")
    assert "1 run(s) of LfF[bias_loss=ce], which the tables have no row for" in summary


def test_a_folder_of_method_variants_only_is_left_out_with_its_reason(tmp_path, capsys):
    results = disent_results("LfF[bias_loss=ce]", None)
    shortened = {**results, "protocol": {"paper_length": False}}
    for name, content in (("full", results), ("short", shortened)):
        path = tmp_path / "runs" / name / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(content))
    assert report.main(["cmnist", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 1
    line = capsys.readouterr().err.strip()
    assert "every one of the 2 Colored MNIST runs was left out" in line
    assert "2 run(s) of LfF[bias_loss=ce], which the tables have no row for" in line


def test_lff_table_counts_runs_of_other_data_variants_as_left_out(tmp_path, capsys):
    for name, palette in (("lff", "lff"), ("hues", "hues")):
        content = disent_results("LfF", "lff_paper")
        content["config"].update(palette=palette, render="lff")
        path = tmp_path / "runs" / name / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(content))
    assert report.main(["lff", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("2 runs, 1 in the tables (left out: 1 run(s) of data variant hues:lff")


# ------------------------------------------------------------------------------------ 11: silently accepted flags
@pytest.mark.parametrize("limit", [1.5, 2.0, 0, -1, 0.0, True, "3"])
def test_batch_limits_are_an_int_from_1_or_a_fraction_in_0_1(limit):
    with pytest.raises(ConfigError):
        resolve_limit(limit, 10)
    with pytest.raises(ConfigError, match="--limit_train_batches"):
        main_biased_mnist.validate(main_biased_mnist.build_config(main_biased_mnist.DEFAULTS, {
            "root": "r", "limit_train_batches": limit}))


def test_test_py_refuses_flags_the_original_does_not_have(tmp_path):
    with pytest.raises(ConfigError, match="unknown flag --bogus"):
        disent_test.main(pretrained_path=str(tmp_path), bogus=3)
    with pytest.raises(CheckpointError, match="does not exist"):  # the original's flags pass
        disent_test.main(pretrained_path=str(tmp_path / "none.pth"), lambda_swap=1, train_ours=True, exp="Test")


def test_zero_training_length_is_refused_but_pretraining_alone_is_not():
    def validate(**flags):
        main_biased_mnist.validate(main_biased_mnist.build_config(main_biased_mnist.DEFAULTS, {"root": "r", **flags}))

    with pytest.raises(ConfigError, match="--n_epochs 0 without pre-training epochs trains nothing"):
        validate(n_epochs=0)
    validate(n_epochs=0, n_g_pretrain_epochs=1)


# ----------------------------------------------------------------------------- 14: limited evaluation is a sample
def class_sorted_loader(seed: int = 0) -> TensorLoader:
    targets = torch.arange(10).repeat_interleave(50)
    return TensorLoader(targets.float().unsqueeze(1), targets, targets, batch_size=20, shuffle=False,
                        transform=lambda x: x, seed=seed)


def test_a_limited_evaluation_samples_the_whole_class_sorted_split():
    loader = class_sorted_loader()
    first = torch.cat([batch.target for batch in limited(loader, 2)])
    assert len(first) == 40 and len(set(first.tolist())) >= 8
    assert torch.equal(first, torch.cat([batch.target for batch in limited(loader, 2)]))
    assert torch.equal(torch.cat([batch.index for batch in limited(loader, 0.1)]),
                       torch.cat([batch.index for batch in limited(class_sorted_loader(), 2)]))
    other = torch.cat([batch.index for batch in limited(class_sorted_loader(seed=5), 2)])
    assert not torch.equal(other, torch.cat([batch.index for batch in limited(loader, 2)]))
    assert limited(loader, None) is loader and limited(loader, 25) is loader and limited(loader, 1.0) is loader


def test_a_limited_evaluation_scores_every_class_of_the_split():
    """A perfect classifier of class 0 only: the first batches (all class 0) would give 100 %, a sample ~10 %."""

    class ClassZero(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()

    cells = evaluate({"f": ClassZero()}, {"test": class_sorted_loader()}, 10, 10, limit_batches=3)
    assert cells["test"]["f"].accuracy() < 30.0


class Items(Dataset):
    def __init__(self, targets: torch.Tensor):
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return torch.zeros(1), int(self.targets[index]), int(self.targets[index]), index


def test_dataloader_based_loaders_sample_the_same_way():
    targets = torch.arange(10).repeat_interleave(50)
    loader = DeviceLoader(Items(targets), batch_size=20, shuffle=False, device=torch.device("cpu"), num_workers=0)
    indices = torch.cat([batch.index for batch in limited(loader, 2)])
    expected = torch.cat([batch.index for batch in limited(class_sorted_loader(), 2)])
    assert torch.equal(indices, expected) and len(set(targets[indices].tolist())) >= 8
    assert torch.equal(torch.cat([batch.index for batch in limited(loader, None)]), torch.arange(500))

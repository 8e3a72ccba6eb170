"""Your own biased dataset (issue #25): every layout of datasets/folder_data.py from tiny fixtures, label mapping,
missing bias labels, every method through main_folder.py, and the worker loader against the tensor loader."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import main_folder
from datasets.folder_data import (UNKNOWN, FolderImageDataset, FolderLoader, ImageCache, InputTransform, decode_all,
                                  read_folder)
from datasets.make_folder_example import textures
from datasets.tensor_loader import TensorLoader
from tasks.folder import FolderTask, check_table
from utils.config import ConfigError
from utils import folder_report

SIZE = 28
SHORT = dict(f="mlp", g="colour_histogram", n_epochs=2, steps_per_epoch=10, batch_size=8, progress=False,
             device="cpu")


def write_image(path: Path, value: int, size: int = SIZE) -> None:
    """A flat image whose colour encodes ``value`` (so decoded batches can be told apart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def csv_dataset(root: Path, train_bias: bool = True, valid_bias: bool = True) -> Path:
    """24 train (cat/dog x indoor/outdoor, 10 aligned per class), 8 valid, 8 test images; string labels, test
    listed before train so that the mapping cannot depend on the order of rows."""
    rows = []
    groups = {"train": [("cat", "indoor")] * 10 + [("cat", "outdoor")] * 2 + [("dog", "outdoor")] * 10
              + [("dog", "indoor")] * 2,
              "valid": [("cat", "indoor"), ("cat", "outdoor"), ("dog", "outdoor"), ("dog", "indoor")] * 2,
              "test": [("dog", "indoor"), ("cat", "outdoor"), ("dog", "outdoor"), ("cat", "indoor")] * 2}
    for split in ("test", "valid", "train"):
        for index, (target, bias) in enumerate(groups[split]):
            relative = f"img/{split}_{index}.png"
            write_image(root / relative, len(rows))
            keep = {"train": train_bias, "valid": valid_bias, "test": True}[split]
            rows.append([relative, split, target, bias if keep else ""])
    write_csv(root / "metadata.csv", ["path", "split", "target", "bias"], rows)
    return root


def test_csv_layout_counts_and_string_labels_mapped_consistently(tmp_path):
    table = read_folder(csv_dataset(tmp_path))
    assert table.layout == "csv"
    assert table.target_names == ["cat", "dog"] and table.bias_names == ["indoor", "outdoor"]
    assert table.label_names == {"target": {"cat": 0, "dog": 1}, "bias": {"indoor": 0, "outdoor": 1}}
    assert [len(table.splits[s]) for s in ("train", "valid", "test")] == [24, 8, 8]
    assert table.group_counts("train").tolist() == [[10, 2], [2, 10]]
    assert table.splits["test"].targets[:4].tolist() == [1, 0, 1, 0]
    assert table.splits["test"].biases[:4].tolist() == [0, 1, 1, 0]
    assert table.aligned_groups() == {0: 0, 1: 1}


def test_integer_labels_keep_numeric_order(tmp_path):
    rows = []
    for index, (split, target) in enumerate([("train", "10"), ("train", "2"), ("valid", "2"), ("test", "10")]):
        write_image(tmp_path / f"{index}.png", index)
        rows.append([f"{index}.png", split, target, "0"])
    write_csv(tmp_path / "metadata.csv", ["path", "split", "target", "bias"], rows)
    table = read_folder(tmp_path)
    assert table.target_names == ["2", "10"]
    assert table.splits["train"].targets.tolist() == [1, 0]


def test_disent_file_names(tmp_path):
    files = ["align/0/3_0_0.png", "align/1/1_1_1.png", "conflict/0/2_0_1.png", "valid/4_1_0.png",
             "test/0/5_0_0.png", "test/1/6_1_0.png"]
    for index, name in enumerate(files):
        write_image(tmp_path / name, index)
    table = read_folder(tmp_path)
    assert table.layout == "disent"
    train = table.splits["train"]
    assert [p.name for p in train.paths] == ["3_0_0.png", "1_1_1.png", "2_0_1.png"]
    assert train.targets.tolist() == [0, 1, 0] and train.biases.tolist() == [0, 1, 1]
    assert table.splits["valid"].targets.tolist() == [1] and table.splits["valid"].biases.tolist() == [0]
    assert table.splits["test"].biases.tolist() == [0, 0]


def test_waterbirds_metadata(tmp_path):
    rows = []
    for index, (y, split, place) in enumerate([(0, 0, 0), (1, 0, 1), (1, 0, 0), (0, 1, 0), (1, 2, 1), (0, 2, 1)]):
        name = f"001.Bird/{index}.jpg"
        write_image(tmp_path / name, index)
        rows.append([str(index), name, str(y), str(split), str(place), f"places/{index}.jpg"])
    write_csv(tmp_path / "metadata.csv", ["img_id", "img_filename", "y", "split", "place", "place_filename"], rows)
    table = read_folder(tmp_path)
    assert table.layout == "waterbirds"
    assert table.target_names == ["landbird", "waterbird"] and table.bias_names == ["land", "water"]
    assert [len(table.splits[s]) for s in ("train", "valid", "test")] == [3, 1, 2]
    assert table.splits["train"].targets.tolist() == [0, 1, 1]
    assert table.splits["train"].biases.tolist() == [0, 1, 0]
    assert table.splits["test"].biases.tolist() == [1, 1]


def test_celeba_attribute_lists(tmp_path):
    attributes = ["5_o_Clock_Shadow", "Blond_Hair", "Male"]
    entries = [("000001.jpg", "-1 1 -1", 0), ("000002.jpg", "1 -1 1", 0), ("000003.jpg", "-1 1 1", 0),
               ("000004.jpg", "-1 -1 -1", 1), ("000005.jpg", "-1 1 -1", 2)]
    lines = [str(len(entries)), " ".join(attributes)]
    for index, (name, values, partition) in enumerate(entries):
        write_image(tmp_path / "img_align_celeba" / name, index)
        lines.append(f"{name}  {values}")
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, _, p in entries))
    table = read_folder(tmp_path, target_attr="Blond_Hair", bias_attr="Male")
    assert table.layout == "celeba"
    assert table.target_names == ["Blond_Hair", "no_Blond_Hair"] and table.bias_names == ["Male", "no_Male"]
    assert table.splits["train"].targets.tolist() == [0, 1, 0]
    assert table.splits["train"].biases.tolist() == [1, 0, 0]
    assert [len(table.splits[s]) for s in ("train", "valid", "test")] == [3, 1, 1]
    with pytest.raises(ConfigError, match="--bias_attr 'Smiling' is not an attribute"):
        read_folder(tmp_path, bias_attr="Smiling")
    with pytest.raises(ConfigError, match="celeba layout only"):
        read_folder(tmp_path, layout="csv", target_attr="Blond_Hair")


def test_refusals_are_one_line(tmp_path):
    root = csv_dataset(tmp_path)
    rows = list(csv.reader(open(root / "metadata.csv")))
    write_csv(root / "metadata.csv", rows[0], [row for row in rows[1:] if row[1] != "valid"])
    with pytest.raises(ConfigError, match="the valid split of this csv dataset has no images"):
        check_table(read_folder(root), "valid_worst_group")
    write_csv(root / "metadata.csv", rows[0], rows[1:] + [["img/test_0.png", "valid", "bird", "indoor"]])
    with pytest.raises(ConfigError, match=r"class\(es\) \['bird'\] have no training image"):
        check_table(read_folder(root), "valid_worst_group")


def test_missing_bias_labels_refused_only_where_needed(tmp_path):
    """No method trains on bias labels: without them on train every method runs; only the selection on the valid
    worst group needs valid's."""
    root = csv_dataset(tmp_path / "no_train_bias", train_bias=False)
    table = read_folder(root)
    assert table.splits["train"].biases.tolist() == [UNKNOWN] * 24
    assert table.aligned_groups() == {0: 0, 1: 0}  # from valid's counts, tied: the first bias value
    check_table(table, "valid_worst_group")
    root = csv_dataset(tmp_path / "no_valid_bias", valid_bias=False)
    with pytest.raises(ConfigError, match="--select_on valid_worst_group needs bias labels on the valid split"):
        check_table(read_folder(root), "valid_worst_group")
    check_table(read_folder(root), "valid_average")


@pytest.mark.slow
@pytest.mark.parametrize("method", list(main_folder.METHODS))
def test_every_method_writes_worst_group_accuracy(tmp_path, method):
    root = csv_dataset(tmp_path / "data", train_bias=False)
    main_folder.main(data_dir=str(root), method=method, save_dir=str(tmp_path / "runs"), **SHORT)
    [path] = (tmp_path / "runs").glob("*/results.json")
    results = json.loads(path.read_text())
    assert results["task"] == "folder" and results["global_step"] >= 20
    assert results["method"] == {"vanilla": "Vanilla", "biased": "Biased", "rebias": "ReBias", "rubi": "RUBi",
                                 "learnedmixin": "LearnedMixin", "lff": "LfF", "disent": "DisEnt"}[method]
    for split in ("valid", "test"):
        assert 0 <= results["metrics"][f"{split}_worst_group"] <= results["metrics"][f"{split}_cell_mean"] <= 100
    assert results["selected"]["by"] == "valid_worst_group/f"
    assert results["label_names"]["target"] == {"cat": 0, "dog": 1}
    assert results["group_counts"]["test"] == [[2, 2], [2, 2]]
    assert results["bias_labelled_splits"] == ["valid", "test"]
    assert len(results["per_cell_accuracy"]["test"]) == 2


def test_select_on_valid_average_without_valid_bias(tmp_path):
    root = csv_dataset(tmp_path / "data", valid_bias=False)
    main_folder.main(data_dir=str(root), method="vanilla", save_dir=str(tmp_path / "runs"), select_on="valid_average",
                     **{**SHORT, "n_epochs": 1, "steps_per_epoch": 2})
    [path] = (tmp_path / "runs").glob("*/results.json")
    results = json.loads(path.read_text())
    assert results["selected"]["by"] == "valid/f"
    assert "valid_worst_group" not in results["metrics"] and "test_worst_group" in results["metrics"]


def test_entry_point_refuses_flags_the_method_ignores(tmp_path):
    with pytest.raises(ConfigError, match="--method rubi does not read --q"):
        main_folder.resolve({"data_dir": str(tmp_path), "method": "rubi", "q": 0.5})
    with pytest.raises(ConfigError, match="--method must be one of"):
        main_folder.resolve({"data_dir": str(tmp_path), "method": "groupdro"})


@pytest.mark.parametrize("drop_last", [False, True])
def test_worker_loader_gives_the_tensor_loaders_batches(tmp_path, drop_last):
    table = read_folder(csv_dataset(tmp_path))
    split = table.splits["train"]
    transform = InputTransform("imagenet")
    dataset = FolderImageDataset(split, SIZE, resize=False)
    reference = TensorLoader(decode_all(dataset), split.targets, split.biases, 5, shuffle=True, transform=transform,
                             seed=3, drop_last=drop_last)
    for workers, cache in ((0, None), (2, None), (2, ImageCache(len(split), SIZE))):
        loader = FolderLoader(FolderImageDataset(split, SIZE, False, cache=cache), 5, True, torch.device("cpu"),
                              transform, seed=3, num_workers=workers, drop_last=drop_last)
        assert len(loader) == len(reference)
        for epoch in (0, 1, 2):
            loader.set_epoch(epoch)
            reference.set_epoch(epoch)
            for ours, theirs in zip(loader, reference, strict=True):
                for a, b in zip(ours, theirs, strict=True):
                    assert torch.equal(a, b)
        if cache is not None:
            assert bool(cache.filled.all())


def test_resize_and_augmentation_keep_the_batch_shape(tmp_path):
    root = textures(str(tmp_path / "tex"), n_train=16, n_valid=8, n_test=8, size=20)
    config = main_folder.resolve({"data_dir": root, "method": "lff", "image_size": 24, "augment": "crop_flip",
                                  "normalize": "cifar", "f": "simple_conv", "batch_size": 8, "device": "cpu"})[0]
    task = FolderTask(config, torch.device("cpu"))
    batch = next(iter(task.train_loader))
    assert batch.x.shape == (8, 3, 24, 24) and batch.x.dtype == torch.float32
    assert task.num_classes == 4 and task.table.target_names == ["circle", "cross", "square", "triangle"]
    assert task.build_g()(batch.x)[0].shape == (8, 4)


def test_init_weights_from_a_local_file(tmp_path):
    root = csv_dataset(tmp_path / "data")
    source = main_folder.resolve({"data_dir": str(root), "method": "lff", "f": "mlp", "device": "cpu"})[0]
    net = FolderTask(source, torch.device("cpu")).build_model(disentangle=False)
    torch.save({key: value for key, value in net.state_dict().items() if not key.startswith("classifier")},
               tmp_path / "weights.pth")
    config = main_folder.resolve({"data_dir": str(root), "method": "disent", "f": "mlp", "device": "cpu",
                                  "init_weights": str(tmp_path / "weights.pth")})[0]
    encoder = FolderTask(config, torch.device("cpu")).build_model(disentangle=True)
    assert torch.equal(encoder.feature[0].weight, net.feature[0].weight)
    config.f = "simple_conv"
    with pytest.raises(ConfigError, match="does not fit --f simple_conv"):
        FolderTask(config, torch.device("cpu"))


def test_report_table(tmp_path):
    for method, worst in (("vanilla", 10.0), ("lff", 40.0)):
        for seed in (0, 1):
            run = tmp_path / f"{method}_seed{seed}"
            run.mkdir()
            metrics = {"test": 80.0, "test_cell_mean": 50.0, "test_worst_group": worst + seed,
                       "test_aligned": 90.0, "test_conflicting": 30.0, "valid_worst_group": 5.0}
            (run / "results.json").write_text(json.dumps({
                "task": "folder", "method": method, "seed": seed, "config": {"method": method}, "metrics": metrics,
                "per_cell_accuracy": {"test": [[90.0, None], [20.0, 70.0]]},
                "label_names": {"target": {"cat": 0, "dog": 1}, "bias": {"indoor": 0, "outdoor": 1}}}))
    runs = folder_report.collect(tmp_path)
    assert list(runs) == ["vanilla", "lff"]
    table = folder_report.render(runs)
    assert "| Vanilla | 80.0 ± 0.0 (n=2) | 50.0 ± 0.0 (n=2) | 10.5 ± 0.7 (n=2)" in table
    assert table.index("Vanilla") < table.index("LfF")
    folder_report.plot_cells(runs, tmp_path / "cells.png")
    assert (tmp_path / "cells.png").stat().st_size > 0


def test_train_disent_routes_folder_datasets_to_the_folder_task(tmp_path):
    import train_disent

    root = csv_dataset(tmp_path / "data")
    train_disent.main(dataset="folder", data_dir=str(root), train_lff=True, num_steps=4, valid_freq=2,
                      log_dir=str(tmp_path / "log"), exp="lff_folder", f="mlp", g="colour_histogram", batch_size=8,
                      progress=False, device="cpu")
    results = json.loads((tmp_path / "log" / "folder" / "lff_folder" / "results.json").read_text())
    assert results["method"] == "LfF" and results["global_step"] == 4 and len(results["history"]) == 2
    assert results["config"]["weight_decay"] == 0.0
    with pytest.raises(ConfigError, match="multiples of --valid_freq"):
        train_disent.main(dataset="folder", data_dir=str(root), train_lff=True, num_steps=5, valid_freq=2)


def test_damaged_layouts_are_one_line_errors(tmp_path):
    from datasets.folder_data import DataNotFoundError, image_size_of
    from datasets.image_io import UnreadableImageError

    root = csv_dataset(tmp_path / "short")
    with open(root / "metadata.csv", "a") as handle:
        handle.write("a.png,train\n")
    with pytest.raises(ConfigError, match=r"metadata.csv' line \d+: fewer fields"):
        read_folder(root)
    celeba = tmp_path / "celeba"
    celeba.mkdir()
    (celeba / "list_attr_celeba.txt").write_text("1\nBlond_Hair Male\n000001.jpg 1 1\n")
    with pytest.raises(DataNotFoundError, match="list_eval_partition.txt' not found"):
        read_folder(celeba, target_attr="Blond_Hair", bias_attr="Male")
    (celeba / "list_eval_partition.txt").write_text("000001.jpg\n")
    with pytest.raises(ConfigError, match="list_eval_partition.txt' line 1: expected an image name"):
        read_folder(celeba, target_attr="Blond_Hair", bias_attr="Male")
    unreadable = csv_dataset(tmp_path / "unreadable")
    table = read_folder(unreadable)
    table.splits["train"].paths[0].write_bytes(b"not an image")
    with pytest.raises(UnreadableImageError, match="cannot read image"):
        image_size_of(table, None)


def test_train_disent_folder_flags_checked_and_logging_flags_ignored(tmp_path):
    import train_disent

    root = csv_dataset(tmp_path / "data")
    with pytest.raises(ConfigError, match="--valid_freq must be a positive integer"):
        train_disent.main(dataset="folder", data_dir=str(root), train_lff=True, num_steps=4, valid_freq=0)
    flags = main_folder.from_train_disent({"dataset": "folder", "train_lff": True, "num_steps": 4, "valid_freq": 2,
                                           "log_freq": 10, "save_freq": 10})
    assert "log_freq" not in flags and "save_freq" not in flags and flags["n_epochs"] == 2


@pytest.mark.slow
def test_folder_sweep_skips_finished_and_busy_runs(tmp_path):
    import fcntl
    import subprocess

    root = csv_dataset(tmp_path / "data")
    out = tmp_path / "out"
    flags = " ".join(f"--{key} {value}" for key, value in SHORT.items())
    env = {**__import__("os").environ, "DATA": str(root), "OUT": str(out), "METHODS": "vanilla lff", "FLAGS": flags}
    out.mkdir()
    with open(out / "lff_seed0.lock", "w") as held:  # another sweep trains lff_seed0
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        first = subprocess.run(["bash", "scripts/folder_sweep.sh"], env=env, capture_output=True, text=True,
                               timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert first.returncode == 0, first.stderr[-2000:]
    assert (out / "vanilla_seed0" / "results.json").is_file() and not (out / "lff_seed0").exists()
    assert f"busy {out}/lff_seed0" in first.stdout
    second = subprocess.run(["bash", "scripts/folder_sweep.sh"], env={**env, "METHODS": "vanilla"}, capture_output=True,
                            text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    assert second.returncode == 0 and f"done {out}/vanilla_seed0" in second.stdout


def test_resume_refuses_a_checkpoint_trained_on_other_data(tmp_path):
    """The flags name a folder, not its contents: a folder run continues only a checkpoint of the same data."""
    from utils.io import CheckpointError

    first, second = csv_dataset(tmp_path / "a" / "data"), csv_dataset(tmp_path / "b" / "data")
    rows = list(csv.reader(open(second / "metadata.csv")))
    rows[1][2] = "dog" if rows[1][2] == "cat" else "cat"  # one label differs
    write_csv(second / "metadata.csv", rows[0], rows[1:])
    runs = dict(save_dir=str(tmp_path / "runs"), run_name="lff", method="lff", **{**SHORT, "n_epochs": 1})
    main_folder.main(data_dir=str(first), **runs)
    (tmp_path / "runs" / "lff" / "results.json").unlink()  # as if interrupted after its checkpoint
    with pytest.raises(CheckpointError, match="data_fingerprint="):
        main_folder.main(data_dir=str(second), resume="auto", **runs)
    moved = tmp_path / "moved"
    (tmp_path / "a" / "data").rename(moved)  # the same data elsewhere: continues
    main_folder.main(data_dir=str(moved), resume="auto", **runs)
    assert json.loads((tmp_path / "runs" / "lff" / "results.json").read_text())["global_step"] == 10

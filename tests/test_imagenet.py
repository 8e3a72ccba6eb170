"""9-class ImageNet (ReBias Table 2): data mapping and cluster labels, the unbiased metric, BagNet's receptive field,
end-to-end runs (single process and torchrun), make_clusters, the sweep script and the report table."""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from munch import Munch
from PIL import Image

import main_imagenet
import make_clusters
from datasets.imagenet import (CLASS_NAMES, SUPER_CLASSES, WNID_TO_LABEL, NineClassImageNet, build_transform,
                               find_images)
from datasets.mnist_io import DataNotFoundError
from evaluator import CellAccuracy, evaluate
from models.imagenet_models import BagNet18, ResNet18
from tasks.imagenet import ImageNetTask

REPO = Path(__file__).resolve().parents[1]
IMAGENET_A_WNIDS = ("n02085620", "n02123394", "n01641577", "n01819313", "n02607072")
SMALL = dict(image_size=32, batch_size=8, n_epochs=1, limit_train_batches=2, limit_eval_batches=2, num_workers=0,
             min_cell_count=1, device="cpu", progress=False)


def write_images(folder: Path, wnids, per_wnid: int, name: str, rng: np.random.Generator) -> None:
    for wnid in wnids:
        (folder / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(per_wnid):
            pixels = (rng.random((32, 32, 3)) * 80 + 20 * WNID_TO_LABEL.get(wnid, 0)).astype(np.uint8)
            Image.fromarray(pixels).save(folder / wnid / name.format(wnid=wnid, i=i))


def write_cluster_csv(val_root: Path, path: Path) -> dict[str, tuple[int, int, int]]:
    """Clusters (i mod 9, 2i mod 9, 5i mod 9) of the i-th val image in path order, in the published CSV format."""
    paths = sorted(p.relative_to(val_root).as_posix() for p in val_root.rglob("*.JPEG"))
    clusters = {p: (i % 9, 2 * i % 9, 5 * i % 9) for i, p in enumerate(paths)}
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["path", "category", "cluster1", "cluster2", "cluster3"])
        for p, labels in clusters.items():
            writer.writerow([p, CLASS_NAMES[WNID_TO_LABEL[p.split("/")[0]]], *labels])
    return clusters


@pytest.fixture(scope="session")
def imagenet(tmp_path_factory) -> Munch:
    """Tiny ImageNet-style folders with the real wnids: train (2 per wnid, plus a foreign class), val (2 per wnid)
    with a cluster CSV, and an ImageNet-A folder holding 5 of the 42 wnids."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    write_images(root / "train", WNID_TO_LABEL, 2, "{wnid}_{i}.JPEG", rng)
    write_images(root / "train", ["n09999999"], 2, "{wnid}_{i}.JPEG", rng)
    write_images(root / "val", WNID_TO_LABEL, 2, "ILSVRC2012_val_{wnid}{i}.JPEG", rng)
    write_images(root / "imagenet_a", IMAGENET_A_WNIDS, 1, "a_{i}.jpg", rng)
    clusters = write_cluster_csv(root / "val", root / "clusters.csv")
    return Munch(root=root, train=root / "train", val=root / "val", imagenet_a=root / "imagenet_a",
                 csv=root / "clusters.csv", clusters=clusters)


def task_config(imagenet: Munch, **overrides) -> Munch:
    flags = {**SMALL, "train_root": str(imagenet.train), "val_root": str(imagenet.val),
             "cluster_csv": str(imagenet.csv), **overrides}
    return main_imagenet.build_config(main_imagenet.DEFAULTS, flags, untyped=main_imagenet.REBIAS_UNTYPED_FLAGS)


# ------------------------------------------------------------------------------------------------------ data
def test_class_mapping_42_wnids_to_9_labels(imagenet):
    assert len(WNID_TO_LABEL) == 42 and sorted(set(WNID_TO_LABEL.values())) == list(range(9))
    assert [len(wnids) for _, wnids in SUPER_CLASSES] == [5, 5, 3, 5, 5, 5, 5, 4, 5]
    assert CLASS_NAMES == ("dog", "cat", "frog", "turtle", "bird", "monkey", "fish", "crab", "insect")
    assert WNID_TO_LABEL["n01641577"] == 2 and WNID_TO_LABEL["n02219486"] == 8 and WNID_TO_LABEL["n01981276"] == 7
    items, missing = find_images(imagenet.train)
    assert missing == [] and len(items) == 84
    assert [path for path, _ in items] == sorted(path for path, _ in items)
    assert not any(path.startswith("n09999999") for path, _ in items)
    assert all(label == WNID_TO_LABEL[path.split("/")[0]] for path, label in items)
    assert np.bincount([label for _, label in items]).tolist() == [10, 10, 6, 10, 10, 10, 10, 8, 10]


def test_missing_wnids_are_listed(imagenet, tmp_path):
    partial = tmp_path / "partial"
    write_images(partial, list(WNID_TO_LABEL)[2:], 1, "{i}.JPEG", np.random.default_rng(1))
    with pytest.raises(DataNotFoundError, match="lacks 2 of the 42") as error:
        find_images(partial)
    assert all(wnid in str(error.value) for wnid in list(WNID_TO_LABEL)[:2])
    with pytest.raises(DataNotFoundError, match="does not exist"):
        find_images(tmp_path / "nowhere")


def test_imagenet_a_uses_present_wnids_only(imagenet):
    dataset = NineClassImageNet(imagenet.imagenet_a, train=False, image_size=32, require_all_wnids=False)
    assert len(dataset) == 5 and len(dataset.missing_wnids) == 37
    assert sorted(dataset.targets.tolist()) == sorted(WNID_TO_LABEL[w] for w in IMAGENET_A_WNIDS)
    x, target, bias, index = dataset[3]
    assert x.shape == (3, 32, 32) and bias == target and index == 3


def test_val_bias_is_the_three_cluster_labels_by_file_name(imagenet, tmp_path):
    dataset = NineClassImageNet(imagenet.val, train=False, image_size=32, cluster_csv=imagenet.csv)
    assert dataset.clusters.shape == (84, 3) and dataset.clusters.dtype == torch.long
    for index in (0, 17, 83):
        _, target, bias, _ = dataset[index]
        assert bias.tolist() == list(imagenet.clusters[dataset.paths[index]])
        assert target == WNID_TO_LABEL[dataset.paths[index].split("/")[0]]
    lines = imagenet.csv.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataNotFoundError, match="not in the texture-cluster CSV"):
        NineClassImageNet(imagenet.val, train=False, image_size=32, cluster_csv=short)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        NineClassImageNet(imagenet.val, train=False, cluster_csv=tmp_path / "none.csv")


def test_transforms_give_the_image_size():
    image = Image.fromarray(np.zeros((50, 70, 3), dtype=np.uint8))
    assert build_transform(True, 48)(image).shape == (3, 48, 48)
    assert build_transform(False, 48)(image).shape == (3, 48, 48)
    assert "Resize(size=256" in repr(build_transform(False, 224))


# ---------------------------------------------------------------------------------------------------- metric
def test_unbiased_metric_hand_example(imagenet):
    """Two classes x two clusters per clustering; cells with fewer than min_count samples are left out, and the
    three clusterings' cell means are averaged (spec §9)."""
    targets = torch.tensor([0, 0, 0, 1, 1, 1])
    predictions = torch.tensor([0, 0, 1, 1, 0, 1])
    biases = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [1, 1, 1]])
    cells = CellAccuracy.zeros(2, 2, num_tables=3)
    cells.update(predictions, targets, biases)
    assert cells.total.tolist() == [[[2, 1], [1, 2]], [[2, 1], [0, 3]], [[0, 3], [2, 1]]]
    # clustering 1: cells 100, 0, 100, 50; clustering 2: 50, 100, (empty), 66.7; clustering 3: (empty), 66.7, 50, 100
    assert cells.cell_mean(1) == pytest.approx((62.5 + (50 + 100 + 200 / 3) / 3 + (200 / 3 + 50 + 100) / 3) / 3)
    # min count 2: clustering 1: cells (0,0)=100, (1,1)=50 -> 75; 2: (0,0)=50, (1,1)=66.7; 3: (0,1)=66.7, (1,0)=50
    assert cells.cell_mean(2) == pytest.approx((75 + (50 + 200 / 3) / 2 + (200 / 3 + 50) / 2) / 3)
    assert cells.accuracy() == pytest.approx(400 / 6)
    assert len(cells.per_cell()) == 3 and cells.per_cell()[1][1] == [None, pytest.approx(200 / 3)]

    task = ImageNetTask(task_config(imagenet, min_cell_count=2), torch.device("cpu"))
    assert task.metric("unbiased", cells) == pytest.approx(cells.cell_mean(2))
    assert task.extra_metrics("unbiased", cells) == {"biased": pytest.approx(400 / 6)}
    assert task.metric("imagenet-a", cells) == pytest.approx(400 / 6)
    assert task.criterion_extras == {"feat_dim": 512, "num_classes": 9}


def test_evaluate_builds_one_table_per_bias_column():
    net = torch.nn.Linear(2, 3)
    x = torch.randn(5, 2)
    loader = [(x, torch.tensor([0, 1, 2, 0, 1]), torch.tensor([[0, 1, 2]] * 5))]
    result = evaluate({"f": net}, {"val": loader, "plain": [(x, torch.zeros(5, dtype=torch.long),
                                                              torch.zeros(5, dtype=torch.long))]}, 3, 3)
    assert result["val"]["f"].total.shape == (3, 3, 3) and int(result["val"]["f"].total[2].sum()) == 5
    assert result["plain"]["f"].total.shape == (3, 3)


# ---------------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("size, bagnet_map", [(224, 28), (64, 8)])
def test_model_output_shapes(size, bagnet_map):
    x = torch.randn(2, 3, size, size)
    for net in (ResNet18(9), BagNet18(9)):
        logits, features = net(x)
        assert logits.shape == (2, 9) and features.shape == (2, 512)
        assert net(x, logits_only=True).shape == (2, 9)
    assert BagNet18(9).feature_map(x).shape == (2, 512, bagnet_map, bagnet_map)
    assert BagNet18(9, feature_pos="pre")(x)[1].shape == (2, 512, bagnet_map, bagnet_map)
    assert ResNet18(9, feature_pos="logits")(x)[1].shape == (2, 9)


def test_bagnet_stem_and_blocks_follow_the_spec():
    net = BagNet18(9)
    assert net.conv1.kernel_size == (1, 1) and net.conv2.kernel_size == (3, 3) and net.conv2.padding == (0, 0)
    assert net.bn1.momentum == 0.001
    kernels = [[block.conv1.kernel_size[0] for block in layer] for layer in (net.layer1, net.layer2, net.layer3,
                                                                             net.layer4)]
    assert kernels == [[3, 1], [1, 1], [1, 1], [1, 1]]
    assert [layer[0].conv1.stride[0] for layer in (net.layer1, net.layer2, net.layer3, net.layer4)] == [2, 2, 2, 1]


def changed_positions(net, x: torch.Tensor, row: int, col: int) -> set[tuple[int, int]]:
    perturbed = x.clone()
    perturbed[:, :, row, col] += 5.0
    with torch.no_grad():
        difference = (net.feature_map(perturbed) - net.feature_map(x)).abs().amax(dim=(0, 1))
    return {tuple(position) for position in (difference > 1e-6).nonzero().tolist()}


def test_bagnet_receptive_field_is_a_5x5_patch():
    """A BagNet-18 output location (p, q) sees input pixels 8p..8p+4 x 8q..8q+4 (stride 8, 5x5 patch): one pixel
    changes at most one location; ResNet-18 features change everywhere around it."""
    torch.manual_seed(0)
    bagnet, resnet = BagNet18(9).eval(), ResNet18(9).eval()
    x = torch.randn(1, 3, 64, 64)
    assert changed_positions(bagnet, x, 17, 18) == {(2, 2)}
    assert changed_positions(bagnet, x, 40, 36) == {(5, 4)}
    assert changed_positions(bagnet, x, 44, 44) == {(5, 5)}
    assert changed_positions(bagnet, x, 21, 21) == set()
    assert len(changed_positions(resnet, x, 17, 18)) == 4


# ---------------------------------------------------------------------------------------------- end to end
def run_main(tmp_path: Path, imagenet: Munch, **flags) -> dict:
    flags = {**SMALL, "train_root": str(imagenet.train), "val_root": str(imagenet.val),
             "cluster_csv": str(imagenet.csv), "save_dir": str(tmp_path), "run_name": "run", **flags}
    main_imagenet.main(**flags)
    return json.loads((tmp_path / flags["run_name"] / "results.json").read_text())


def cli_flags(imagenet: Munch, save_dir: Path, **overrides) -> list[str]:
    flags = {**SMALL, "train_root": imagenet.train, "val_root": imagenet.val, "cluster_csv": imagenet.csv,
             "save_dir": save_dir, "run_name": "run", **overrides}
    return [f"--{key}={value}" for key, value in flags.items()]


@pytest.mark.slow
def test_short_run_writes_biased_unbiased_and_imagenet_a(tmp_path, imagenet, capsys):
    results = run_main(tmp_path, imagenet, imageneta_root=str(imagenet.imagenet_a), n_epochs=2)
    assert "37 of the 42 wnids absent" in capsys.readouterr().out
    assert results["task"] == "imagenet" and results["method"] == "ReBias" and results["image_size"] == 32
    assert set(results["metrics"]) == {"biased", "unbiased", "imagenet-a"}
    assert all(0.0 <= value <= 100.0 for value in results["metrics"].values())
    assert set(results["g_metrics"][0]) == {"biased", "unbiased", "imagenet-a"}
    assert np.array(results["per_cell_accuracy"]["unbiased"], dtype=float).shape == (3, 9, 9)
    assert results["sigmas"]["outer_sigma_x"] != 1.0
    assert [record["epoch"] for record in results["history"]] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("method, flags", [
    ("Vanilla", dict(f_lambda_outer=0, g_lambda_inner=0, rbf_sigma_x=1, rbf_sigma_y=1)),
    ("LearnedMixin", dict(outer_criterion="LearnedMixin", n_g_pretrain_epochs=1, n_g_update=0, rbf_sigma_x=1,
                          rbf_sigma_y=1)),
    ("RUBi", dict(outer_criterion="RUBi", g_lambda_inner=0, rbf_sigma_x=1, rbf_sigma_y=1)),
])
def test_readme_recipes_run(tmp_path, imagenet, method, flags):
    results = run_main(tmp_path, imagenet, limit_train_batches=1, limit_eval_batches=1, **flags)
    assert results["method"] == method and set(results["metrics"]) == {"biased", "unbiased"}


@pytest.mark.slow
def test_torchrun_two_processes_match_single_process_keys(tmp_path, imagenet):
    single = run_main(tmp_path / "single", imagenet, limit_eval_batches=1)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "main_imagenet.py", *cli_flags(imagenet, tmp_path / "ddp", limit_eval_batches=1)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    ddp = json.loads((tmp_path / "ddp" / "run" / "results.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert set(ddp["metrics"]) == set(single["metrics"]) == {"biased", "unbiased"}
    assert len(ddp["g_metrics"]) == len(single["g_metrics"]) == 1
    assert result.stdout.count("results:") == 1


def test_missing_wnids_and_bad_flags_are_one_line_errors(tmp_path, imagenet):
    partial = tmp_path / "partial"
    write_images(partial, list(WNID_TO_LABEL)[1:], 1, "{i}.JPEG", np.random.default_rng(2))
    for args, expected in (([f"--train_root={partial}", f"--val_root={imagenet.val}"], "n02085620"),
                           ([f"--train_root={imagenet.train}"], "--val_root is required"),
                           ([f"--train_root={imagenet.train}", f"--val_root={imagenet.val}", "--num_classes=10"],
                            "--num_classes must be 9"),
                           ([f"--train_root={imagenet.train}", f"--val_root={imagenet.val}", "--rbf_sigma_x=1"],
                            "both be 'median'")):
        result = subprocess.run([sys.executable, "main_imagenet.py", *args, "--device=cpu"], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr


# ------------------------------------------------------------------------------------------- make_clusters
def test_make_clusters_writes_the_published_csv_format(tmp_path, imagenet):
    out = tmp_path / "clusters" / "val.csv"
    make_clusters.main(val_root=str(imagenet.val), out=str(out), random_weights=True, image_size=32,
                       num_workers=0, device="cpu", progress=False)
    with open(out, newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["path", "category", "cluster1", "cluster2", "cluster3"]
    paths = [row[0] for row in rows[1:]]
    assert len(paths) == 84 and paths == sorted(paths) == sorted(imagenet.clusters)
    assert all(row[1] == CLASS_NAMES[WNID_TO_LABEL[row[0].split("/")[0]]] for row in rows[1:])
    assert all(0 <= int(value) <= 8 for row in rows[1:] for value in row[2:])
    assert NineClassImageNet(imagenet.val, train=False, image_size=32, cluster_csv=out).clusters.shape == (84, 3)


def test_make_clusters_gram_descriptor_and_missing_weights(tmp_path):
    features = torch.randn(2, 4, 3, 3)
    descriptors = make_clusters.gram_descriptors(features)
    flat = features[0].reshape(4, 9).double()
    expected = (flat @ flat.T / 36).flatten()
    # float32 result against a float64 reference: a few float32 ulps of the unit-norm vector, for any summation order
    torch.testing.assert_close(descriptors[0].double(), expected / expected.norm(), rtol=0, atol=1e-6)
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2), rtol=0, atol=1e-6)
    extractor = make_clusters.conv3_3_extractor(random_weights=True)
    assert len(extractor) == 15 and isinstance(extractor[-1], torch.nn.Conv2d) and extractor[-1].out_channels == 256
    with pytest.raises(DataNotFoundError, match="--weights PATH"):
        make_clusters.conv3_3_extractor(weights=str(tmp_path / "none.pth"))


# ------------------------------------------------------------------------------------------ sweep and report
FAKE_PYTHON = r'''#!/usr/bin/env python3
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["CALL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if "main_imagenet.py" in args:
    run_dir = Path(args[args.index("--save_dir") + 1]) / args[args.index("--run_name") + 1]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text("{}")
'''


def run_sweep(tmp_path: Path, **env_overrides: str) -> list[list[str]]:
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PYTHON": str(fake), "CALL_LOG": str(log), "OUT": str(tmp_path / "out"), "SEEDS": "0 1",
           "EPOCHS": "2", "TRAIN_ROOT": "/data/train", "VAL_ROOT": "/data/val", **env_overrides}
    result = subprocess.run(["bash", "scripts/imagenet_table2.sh"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def flag(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def test_sweep_script_runs_the_readme_commands(tmp_path):
    calls = run_sweep(tmp_path, IMAGENETA_ROOT="/data/imagenet-a")
    training = [call for call in calls if "main_imagenet.py" in call]
    assert len(training) == 4 * 2 and all(call[0] == "main_imagenet.py" for call in training)
    by_name = {flag(call, "--run_name"): call for call in training}
    vanilla = by_name["imagenet_Vanilla_seed1"]
    assert [flag(vanilla, f) for f in ("--f_lambda_outer", "--g_lambda_inner", "--rbf_sigma_x")] == ["0", "0", "1"]
    mixin = by_name["imagenet_LearnedMixin_seed0"]
    assert flag(mixin, "--n_g_pretrain_epochs") == "30" and flag(mixin, "--n_g_update") == "0"
    assert flag(by_name["imagenet_RUBi_seed0"], "--outer_criterion") == "RUBi"
    rebias = by_name["imagenet_ReBias_seed0"]
    assert "--rbf_sigma_x" not in rebias and flag(rebias, "--imageneta_root") == "/data/imagenet-a"
    assert all(flag(call, "--resume") == "auto" and flag(call, "--n_epochs") == "2" for call in training)
    assert calls[-1][0] == "scripts/report.py"
    rerun = run_sweep(tmp_path, METHODS="ReBias RUBi", NPROC="2")
    assert rerun[0][0] == "scripts/report.py"


def test_sweep_script_uses_torchrun_with_nproc(tmp_path):
    calls = run_sweep(tmp_path, METHODS="ReBias", SEEDS="0", NPROC="4")
    assert calls[0][:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "4", "main_imagenet.py"]
    assert "--imageneta_root" not in calls[0]


def load_report_module():
    if "report" not in sys.modules:
        spec = importlib.util.spec_from_file_location("report", REPO / "scripts" / "report.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["report"] = module
        spec.loader.exec_module(module)
    return sys.modules["report"]


def write_imagenet_run(root: Path, method: str, seed: int, metrics: dict, g_metrics: dict,
                       image_size: int = 224) -> None:
    path = root / f"{method}_{image_size}_{seed}" / "results.json"
    path.parent.mkdir(parents=True)
    per_cell = {"unbiased": [[[50.0] * 9] * 9] * 3, "biased": [[None] * 9] * 9}
    protocol = {"name": "rebias_imagenet", "unit": "epochs", "trained": 120, "paper": 120, "paper_length": True}
    path.write_text(json.dumps({"task": "imagenet", "method": method, "image_size": image_size, "seed": seed,
                                "metrics": metrics, "g_metrics": [g_metrics], "per_cell_accuracy": per_cell,
                                "protocol": protocol}))


def test_report_builds_table2(tmp_path):
    report = load_report_module()
    root = tmp_path / "results"
    for seed, value in enumerate((90.0, 92.0)):
        write_imagenet_run(root, "ReBias", seed, {"biased": value, "unbiased": value - 2, "imagenet-a": 30.0},
                           {"biased": 60.0, "unbiased": 58.0, "imagenet-a": 20.0})
    write_imagenet_run(root, "Vanilla", 0, {"biased": 91.0, "unbiased": 89.0},
                       {"biased": 68.0, "unbiased": 66.0})
    write_imagenet_run(root, "RUBi", 0, {"biased": 40.0, "unbiased": 35.0}, {"biased": 30.0, "unbiased": 25.0},
                       image_size=64)
    result = report.build_report(root, tmp_path / "out")
    rows = {}
    for line in result.markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| Model"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    assert list(rows) == ["Vanilla", "Biased", "LearnedMixin", "RUBi", "ReBias", "Vanilla (image size=64)",
                          "Biased (image size=64)", "LearnedMixin (image size=64)", "RUBi (image size=64)",
                          "ReBias (image size=64)"]
    assert rows["ReBias"] == ["91.0 ± 1.4 (n=2)", "91.9", "-0.9", "89.0 ± 1.4 (n=2)", "90.5", "-1.5",
                              "30.0 ± 0.0 (n=2)", "29.6", "+0.4", "–"]  # last: worst-group, not computed here
    assert rows["Biased"][:6] == ["68.0 ± – (n=1)", "67.7", "+0.3", "66.0 ± – (n=1)", "65.9", "+0.1"]
    assert rows["Biased"][6:9] == ["–", "19.5", "–"]
    assert rows["LearnedMixin"] == ["–", "67.9", "–", "–", "65.9", "–", "–", "18.8", "–", "–"]
    assert rows["RUBi (image size=64)"][:3] == ["40.0 ± – (n=1)", "–", "–"]
    with open(tmp_path / "out" / "imagenet_table.csv", newline="") as stream:
        csv_rows = list(csv.DictReader(stream))
    assert {row["image_size"] for row in csv_rows} == {"224", "64"} and "avg" not in {r["image_size"] for r in csv_rows}


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image_is_a_one_line_error(tmp_path, imagenet, workers):
    broken = tmp_path / "train"
    shutil.copytree(imagenet.train, broken)
    for image in broken.rglob("*.JPEG"):
        image.write_bytes(b"not a jpeg")
    result = subprocess.run([sys.executable, "main_imagenet.py",
                             *cli_flags(imagenet, tmp_path / "out", train_root=broken, num_workers=workers)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: cannot read image") and str(broken) in lines[0]


@pytest.mark.slow
def test_same_seed_same_metrics_with_loader_workers(tmp_path, imagenet):
    first = run_main(tmp_path / "a", imagenet, num_workers=2, limit_eval_batches=1)
    second = run_main(tmp_path / "b", imagenet, num_workers=2, limit_eval_batches=1)
    assert first["metrics"] == second["metrics"] and first["history"][0]["train"] == second["history"][0]["train"]

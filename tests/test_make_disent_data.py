"""Generating DisEnt's folders (tiny Colored MNIST and Corrupted CIFAR-10) and reading them back."""
from __future__ import annotations

import json
import pickle

import fire
import numpy as np
import pytest
import torch
from PIL import Image

from datasets.corruptions import FROST_FILES
from datasets.disent_data import DisEntDataset, load_split_tensor, parse_labels, split_files
from datasets.lff_protocols import DEFAULT_PALETTE, TEST_ALIGNED_RATIO, aligned_ratio, make_attr_labels, palette_colours
from datasets.make_disent_data import cifar10c, cmnist, load_cifar10, parse_percents
from datasets.mnist_io import DataNotFoundError, load_mnist

LIMIT, N_VALID = 400, 40


def run_cli(*args: str) -> None:
    fire.Fire({"cmnist": cmnist, "cifar10c": cifar10c}, command=list(args))


def generate_cmnist(mnist_root, out, seed=0):
    run_cli("cmnist", "--mnist_root", str(mnist_root), "--out", str(out), "--percents", "1,5", "--seed", str(seed),
            "--n_valid", str(N_VALID), "--limit", str(LIMIT))
    return out / "cmnist"


@pytest.fixture(scope="module")
def cmnist_dir(fake_mnist_root, tmp_path_factory):
    return generate_cmnist(fake_mnist_root, tmp_path_factory.mktemp("disent"))


def file_labels(paths):
    return np.array([parse_labels(p) for p in paths])


def test_cmnist_layout_and_labels(cmnist_dir, fake_mnist_root):
    assert sorted(p.name for p in cmnist_dir.iterdir()) == ["1pct", "5pct", "test"]
    assert sorted(p.name for p in (cmnist_dir / "5pct").iterdir()) == ["align", "conflict", "manifest.json", "valid"]
    digits, labels = load_mnist(fake_mnist_root, train=True)
    labels = labels.numpy()[:LIMIT]
    align = sorted((cmnist_dir / "5pct" / "align").glob("*/*.png"))
    conflict = sorted((cmnist_dir / "5pct" / "conflict").glob("*/*.png"))
    valid = sorted((cmnist_dir / "5pct" / "valid").glob("*.png"))  # flat for cmnist
    assert len(align) + len(conflict) + len(valid) == LIMIT and len(valid) == N_VALID
    assert all(p.parent.name == str(parse_labels(p)[0]) for p in align + conflict)
    assert np.all(file_labels(align)[:, 0] == file_labels(align)[:, 1])
    assert np.all(file_labels(conflict)[:, 0] != file_labels(conflict)[:, 1])
    # targets are the MNIST labels of the source index; bias labels follow LfF's protocol on the train part
    train_files = sorted(align + conflict, key=lambda p: int(p.name.split("_")[0]))
    indices = np.array([int(p.name.split("_")[0]) for p in train_files])
    parsed = file_labels(train_files)
    assert np.array_equal(parsed[:, 0], labels[indices])
    assert np.array_equal(parsed[:, 1], make_attr_labels(labels[indices], aligned_ratio(5)))
    valid_labels = file_labels(valid)
    assert np.array_equal(valid_labels[:, 1], make_attr_labels(valid_labels[:, 0], aligned_ratio(5)))
    # the pixels carry the bias colour
    sample = conflict[0]
    image = np.asarray(Image.open(sample).convert("RGB")).astype(float)
    index, _, bias = (int(t) for t in sample.stem.split("_"))
    foreground = digits.numpy()[index] > 0
    assert np.all(image[~foreground] == 0)
    colour = image[foreground].sum(0) / digits.numpy()[index][foreground].sum()
    assert np.allclose(colour, palette_colours(DEFAULT_PALETTE)[bias], atol=0.03)


def test_cmnist_test_split_and_manifest(cmnist_dir):
    test = sorted((cmnist_dir / "test").glob("*/*.png"))
    assert len(test) == LIMIT
    labels = file_labels(test)
    by_index = labels[np.argsort([int(p.name.split("_")[0]) for p in test])]
    assert np.array_equal(by_index[:, 1], make_attr_labels(by_index[:, 0], TEST_ALIGNED_RATIO))
    manifest = json.loads((cmnist_dir / "1pct" / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["generator"] and manifest["settings"]["palette"] == DEFAULT_PALETTE
    for split, pattern in (("align", "align/*/*.png"), ("conflict", "conflict/*/*.png"), ("valid", "valid/*.png")):
        assert manifest["splits"][split]["count"] == len(list((cmnist_dir / "1pct").glob(pattern)))
        assert len(manifest["splits"][split]["sha256"]) == 64
    assert json.loads((cmnist_dir / "test" / "manifest.json").read_text())["splits"]["test"]["count"] == LIMIT


def test_same_seed_gives_identical_files(cmnist_dir, fake_mnist_root, tmp_path):
    again = generate_cmnist(fake_mnist_root, tmp_path / "again")
    for group in ("1pct", "5pct", "test"):
        assert (again / group / "manifest.json").read_text() == (cmnist_dir / group / "manifest.json").read_text()
    first = sorted((cmnist_dir / "5pct").rglob("*.png"))
    assert [p.read_bytes() for p in first] == [(again / p.relative_to(cmnist_dir)).read_bytes() for p in first]
    other = generate_cmnist(fake_mnist_root, tmp_path / "other", seed=1)
    assert (json.loads((other / "5pct" / "manifest.json").read_text())["splits"]["align"]["sha256"]
            != json.loads((cmnist_dir / "5pct" / "manifest.json").read_text())["splits"]["align"]["sha256"])
    (tmp_path / "foreign" / "cmnist" / "test").mkdir(parents=True)
    (tmp_path / "foreign" / "cmnist" / "test" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="manifest"):
        generate_cmnist(fake_mnist_root, tmp_path / "foreign")
    assert (tmp_path / "foreign" / "cmnist" / "test" / "mine.txt").exists()


def test_dataset_reads_generated_cmnist(cmnist_dir):
    train = DisEntDataset(cmnist_dir.parent, "cmnist", "train", "5pct")
    image, target, bias, index = train[len(train) - 1]
    assert image.shape == (3, 28, 28) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert index == len(train) - 1 and target != bias  # conflict files come after align files
    assert train.num_classes == 10 and len(train) == LIMIT - N_VALID
    images, targets, biases = load_split_tensor(cmnist_dir.parent, "cmnist", "valid", 5)
    assert images.shape == (N_VALID, 3, 28, 28) and images.dtype == torch.uint8
    valid = DisEntDataset(cmnist_dir.parent, "cmnist", "valid", "5pct")
    assert torch.equal(targets, valid.targets) and torch.equal(biases, valid.biases)
    assert torch.allclose(valid[0][0], images[0].float() / 255)


def test_percent_parsing():
    assert parse_percents("0.5,1,2,5") == [0.5, 1.0, 2.0, 5.0]
    assert parse_percents((0.5, 1)) == [0.5, 1.0] and parse_percents(2) == [2.0]


def write_fake_cifar(root, n_per_batch=20):
    batch_dir = root / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=n_per_batch).tolist()}
        with open(batch_dir / name, "wb") as handle:
            pickle.dump(batch, handle)
    return root


def test_cifar10c_generation(tmp_path):
    cifar_root = write_fake_cifar(tmp_path / "cifar")
    frost_dir = tmp_path / "frost"
    frost_dir.mkdir()
    for name in FROST_FILES:
        Image.fromarray(np.full((200, 240, 3), 230, dtype=np.uint8)).save(frost_dir / name)
    run_cli("cifar10c", "--cifar_root", str(cifar_root), "--frost_dir", str(frost_dir), "--out",
            str(tmp_path / "out"), "--percents", "5", "--n_valid", "10")
    root = tmp_path / "out" / "cifar10c"
    train_x, train_y, _, _ = load_cifar10(cifar_root)
    valid = sorted((root / "5pct" / "valid").glob("*/*.png"))  # nested for cifar10c
    assert len(valid) == 10 and len(list((root / "test").glob("*/*.png"))) == 20
    train = DisEntDataset(tmp_path / "out", "cifar10c", "train", 5, augment=False)
    assert len(train) == 90 and train[0][0].shape == (3, 32, 32)
    indices = np.array([int(p.name.split("_")[0]) for p in train.files])
    assert np.array_equal(train.targets.numpy(), train_y[indices])
    sample = train.files[0]
    assert not np.array_equal(np.asarray(Image.open(sample)), train_x[int(sample.name.split("_")[0])])
    manifest = json.loads((root / "5pct" / "manifest.json").read_text())
    assert manifest["settings"]["cifar10c_level"] == 5 and manifest["splits"]["valid"]["count"] == 10
    assert DisEntDataset(tmp_path / "out", "cifar10c", "valid", 5)[0][0].shape == (3, 32, 32)


def test_missing_sources_give_clear_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        cifar10c(str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(DataNotFoundError, match="MNIST"):
        cmnist(str(tmp_path), str(tmp_path / "out"))


def test_wrong_layouts_name_the_path(tmp_path):
    with pytest.raises(DataNotFoundError, match="1pct.*align"):
        DisEntDataset(tmp_path, "cmnist", "train", 1)
    bad = tmp_path / "cmnist" / "1pct" / "valid"
    bad.mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(bad / "digit_seven.png")
    with pytest.raises(ValueError, match="digit_seven.png"):
        DisEntDataset(tmp_path, "cmnist", "valid", 1)
    with pytest.raises(ValueError):
        split_files(tmp_path, "mnist", "train")


def test_bffhq_layout(tmp_path):
    root = tmp_path / "bffhq"
    for folder, names in (("0.5pct/align/0", ["1_0_0.png", "2_1_1.png"]), ("0.5pct/conflict/0", ["3_0_1.png"]),
                          ("valid", ["4_0_0.png", "5_0_1.png"]), ("test", ["6_0_0.png", "7_1_0.png", "8_0_1.png"])):
        (root / folder).mkdir(parents=True)
        for name in names:
            Image.fromarray(np.full((16, 16, 3), 90, dtype=np.uint8)).save(root / folder / name)
    train = DisEntDataset(tmp_path, "bffhq", "train", 0.5)
    assert [parse_labels(p) for p in train.files] == [(0, 0), (1, 1), (0, 1)]
    image, target, bias, index = train[2]
    assert image.shape == (3, 224, 224) and (target, bias, index) == (0, 1, 2)
    test = DisEntDataset(tmp_path, "bffhq", "test", 0.5)
    assert [p.name for p in test.files] == ["7_1_0.png", "8_0_1.png"]  # bias-conflicting only
    assert len(DisEntDataset(tmp_path, "bffhq", "valid", 0.5)) == 2

"""Generated DisEnt data are verified against their manifests: counts always, the per-split sha256 on first use
(verdict cached by file sizes and mtimes), the manifest against its own digest; results.json records the digests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import train_disent
from datasets import manifests
from datasets.make_disent_data import cmnist
from datasets.manifests import DataMismatchError, manifest_digest, verify_generated_data


@pytest.fixture(scope="module")
def generated(tmp_path_factory, fake_mnist_root) -> Path:
    """Tiny Colored MNIST at 5 pct (hues palette), never modified: tests copy it before tampering."""
    out = tmp_path_factory.mktemp("manifest_data")
    cmnist(str(fake_mnist_root), str(out), percents="5", n_valid=100, limit=600, palette="hues")
    return out


@pytest.fixture
def data(generated, tmp_path) -> Path:
    """A private copy of the generated data (``--data_dir``)."""
    return Path(shutil.copytree(generated, tmp_path / "data"))


def manifest_of(data: Path, group: str = "5pct") -> dict:
    return json.loads((data / "cmnist" / group / "manifest.json").read_text())


def train(data: Path, log_dir: Path, **flags) -> dict:
    train_disent.main(**{"train_vanilla": True, "data_dir": str(data), "percent": "5pct", "palette": "hues",
                         "num_steps": 2, "valid_freq": 2, "batch_size": 32, "log_dir": str(log_dir), "exp": "run",
                         "device": "cpu", "progress": False, **flags})
    return json.loads((log_dir / "cmnist" / "run" / "results.json").read_text())


def test_manifests_record_their_own_digest_and_results_record_it(data, tmp_path):
    group, test = manifest_of(data), manifest_of(data, "test")
    assert group["manifest_sha256"] == manifest_digest(group) and test["manifest_sha256"] == manifest_digest(test)
    results = train(data, tmp_path / "log")
    assert results["data_manifests"] == {"5pct": group["manifest_sha256"], "test": test["manifest_sha256"]}


def test_a_deleted_image_is_refused_before_training(data, tmp_path):
    victim = next((data / "cmnist" / "5pct" / "conflict").rglob("*.png"))
    victim.unlink()
    with pytest.raises(DataMismatchError, match=r"conflict' holds \d+ images but .*records"):
        train(data, tmp_path / "log")
    assert not (tmp_path / "log").exists()


def test_an_edited_manifest_palette_is_refused(data, tmp_path):
    """The LfF-palette data relabelled 'hues' by editing the manifest: refused, not recorded as hues."""
    path = data / "cmnist" / "5pct" / "manifest.json"
    manifest = manifest_of(data)
    manifest["settings"]["palette"] = "lff"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with pytest.raises(DataMismatchError, match="edited after it was written.*regenerate"):
        train(data, tmp_path / "log", palette="lff")


def test_a_replaced_image_is_refused_even_after_a_cached_verdict(data):
    assert verify_generated_data(data / "cmnist", "5pct") is not None
    first, second = sorted((data / "cmnist" / "5pct" / "align").rglob("*.png"))[:2]
    first.write_bytes(second.read_bytes())
    with pytest.raises(DataMismatchError, match="sha256 mismatch"):
        verify_generated_data(data / "cmnist", "5pct")


def test_verdict_is_cached_so_a_second_run_hashes_nothing(data, monkeypatch):
    digests = verify_generated_data(data / "cmnist", "5pct")
    assert (data / "cmnist" / "5pct" / ".verified.json").exists()
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"hashed {self} again"))
    assert verify_generated_data(data / "cmnist", "5pct") == digests


def test_verdict_goes_to_the_user_cache_when_the_data_are_read_only(data, tmp_path, monkeypatch):
    group = data / "cmnist" / "5pct"
    real_access = manifests.os.access
    monkeypatch.setattr(manifests.os, "access", lambda path, mode: Path(path) != group and real_access(path, mode))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    verify_generated_data(data / "cmnist", "5pct")
    assert not (group / ".verified.json").exists() and len(list((tmp_path / "cache").rglob("*.json"))) == 1


def test_manifests_without_a_digest_from_older_generators_are_refused_with_a_fix(data):
    path = data / "cmnist" / "5pct" / "manifest.json"
    manifest = manifest_of(data)
    del manifest["manifest_sha256"]
    manifest["generator"] = "disent-data/1"
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataMismatchError, match="older generator.*python -m datasets.make_disent_data cmnist"):
        verify_generated_data(data / "cmnist", "5pct")


def test_data_without_manifests_are_not_checked(data):
    for path in (data / "cmnist").rglob("manifest.json"):
        path.unlink()
    assert verify_generated_data(data / "cmnist", "5pct") is None

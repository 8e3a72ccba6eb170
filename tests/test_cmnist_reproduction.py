"""Colored MNIST reproduction: renderers, manifests checked against the flags, LfF's preset, LfF's data layout, the
protocol values of the tables and the README tables regenerated from the committed results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train_disent
from datasets.lff_protocols import (COLOUR_NOISE_STD, FIGURE_THRESHOLD, colour_by_threshold, palette_colours,
                                    render_digits)
from datasets.make_disent_data import CMNIST_PRESETS, cmnist
from models.disent_models import DISENT_MODELS
from reports import cmnist_tables, readme
from utils.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
DIGIT = np.array([[[0, 5, 11, 99, 100, 180, 255]]], dtype=np.uint8)
ORANGE = 1


def test_disent_figure_renderer_colours_bright_pixels_and_keeps_a_grey_outline():
    out = render_digits("disent_figure", DIGIT, np.array([ORANGE]), palette_colours("hues"), 4, None)
    assert FIGURE_THRESHOLD == 100 and out.dtype == np.uint8 and out.shape == (1, 1, 7, 3)
    expected = [[0, 0, 0], [5, 5, 5], [11, 11, 11], [99, 99, 99], [255, 128, 0], [255, 128, 0], [255, 128, 0]]
    assert out[0, 0].tolist() == expected


def test_disent_figure_renderer_is_noise_free_and_takes_any_palette():
    lff = palette_colours("lff")
    bias = np.array([3, 3, 7])
    digits = np.repeat(DIGIT, 3, axis=0)
    first = colour_by_threshold(digits, bias, lff)
    assert np.array_equal(first[0], first[1])
    assert first[2, 0, -1].tolist() == np.round(lff[7] * 255).astype(np.uint8).tolist()


def test_lff_renderer_multiplies_intensity_and_adds_per_image_noise():
    hues = palette_colours("hues")
    digits = np.repeat(DIGIT, 2, axis=0)
    out = render_digits("lff", digits, np.array([ORANGE, ORANGE]), hues, 4, np.random.default_rng(0))
    noise = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32) * np.float32(COLOUR_NOISE_STD[3])
    colour = np.clip(hues[ORANGE] + noise[0], 0, 1).astype(np.float32)
    assert out[0, 0].tolist() == (colour[None, :] * DIGIT[0, 0, :, None].astype(np.float32)).astype(np.uint8).tolist()
    assert out[0, 0, 0].tolist() == [0, 0, 0] and out[0, 0, 2, 0] == 11 and out[0, 0, 2, 2] == 0
    assert not np.array_equal(out[0], out[1])


def test_unknown_renderer():
    with pytest.raises(ValueError, match="renderer"):
        render_digits("ink", DIGIT, np.array([0]), palette_colours("hues"), 4, np.random.default_rng(0))


@pytest.fixture(scope="module")
def variant_data(tmp_path_factory, fake_mnist_root):
    """Tiny Colored MNIST at 5 pct in two variants: hues drawn like DisEnt's figure, and LfF's own protocol."""
    root = tmp_path_factory.mktemp("variants")
    figure = Path(cmnist(str(fake_mnist_root), str(root / "figure"), percents="5", n_valid=100, palette="hues",
                         render="disent_figure"))
    lff = Path(cmnist(str(fake_mnist_root), str(root / "lff"), percents="5", preset="lff_paper"))
    return figure.parent, lff.parent


def test_manifests_record_palette_renderer_and_lff_layout_has_no_valid_split(variant_data, fake_mnist_root):
    figure, lff = variant_data
    manifest = json.loads((figure / "cmnist" / "5pct" / "manifest.json").read_text())["settings"]
    assert (manifest["palette"], manifest["render"], manifest["colour_noise_std"]) == ("hues", "disent_figure", 0.0)
    lff_manifest = json.loads((lff / "cmnist" / "5pct" / "manifest.json").read_text())
    assert lff_manifest["settings"]["palette"] == "lff" and lff_manifest["settings"]["render"] == "lff"
    assert lff_manifest["settings"]["n_valid"] == 0 and "valid" not in lff_manifest["splits"]
    assert not (lff / "cmnist" / "5pct" / "valid").exists()
    source_train = 2000
    assert lff_manifest["splits"]["align"]["count"] + lff_manifest["splits"]["conflict"]["count"] == source_train
    assert CMNIST_PRESETS["lff_paper"] == {"palette": "lff", "render": "lff", "n_valid": 0, "severity": 4}


def run_train_disent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_disent.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_training_refuses_data_whose_manifest_contradicts_the_flags(variant_data, tmp_path):
    figure, _ = variant_data
    result = run_train_disent("--train_vanilla", "--palette", "hues", "--data_dir", str(figure), "--percent", "5pct",
                              "--num_steps", "2",
                              "--log_dir", str(tmp_path), "--device", "cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "render 'disent_figure'" in lines[0] and "--render is 'lff'" in lines[0]
    assert not (tmp_path / "cmnist").exists() or not list((tmp_path / "cmnist").rglob("results.json"))


def test_test_py_refuses_other_data_than_the_checkpoint_was_trained_on(variant_data, tmp_path):
    figure, lff = variant_data
    train_disent.main(train_vanilla=True, data_dir=str(figure), percent="5pct", palette="hues", render="disent_figure",
                      num_steps=4, valid_freq=2, batch_size=32, log_dir=str(tmp_path), exp="run", device="cpu",
                      progress=False)
    result = subprocess.run([sys.executable, "test.py", "--pretrained_path", str(tmp_path / "cmnist" / "run"),
                             "--data_dir", str(lff), "--device", "cpu"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "palette 'lff'" in result.stderr and "Traceback" not in result.stderr


def test_lff_preset_resolves_to_lffs_protocol(variant_data, tmp_path):
    _, lff = variant_data
    train_disent.main(preset="lff_paper", train_lff=True, data_dir=str(lff), percent="5pct", num_steps=6,
                      valid_freq=3, log_dir=str(tmp_path), exp="lff", device="cpu", progress=False)
    results = json.loads((tmp_path / "cmnist" / "lff" / "results.json").read_text())
    config = results["config"]
    expected = {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 256, "use_lr_decay": False, "backbone": "mlp_lff",
                "drop_last": False, "select_on": "final", "palette": "lff", "render": "lff"}
    assert {key: config[key] for key in expected} == expected
    assert train_disent.PRESETS["lff_paper"]["num_steps"] == 23_500 and train_disent.PRESETS["lff_paper"][
        "valid_freq"] == 235
    assert results["selected"] == "final" and results["metrics"] == results["final_metrics"]
    assert set(results["per_cell_accuracy"]) == {"test"} and "valid" not in results["metrics"]
    assert results["data_variant"] == {"palette": "lff", "render": "lff", "n_valid": 0}
    assert results["train_images"] == 6 * 256


def test_lff_mlp_is_100_100_100():
    model = DISENT_MODELS["mlp_lff"](10)
    widths = [layer.out_features for layer in model.modules() if hasattr(layer, "out_features")]
    assert widths == [100, 100, 100, 10]
    assert sum(p.numel() for p in model.parameters()) == 2352 * 100 + 100 + 2 * (100 * 100 + 100) + 100 * 10 + 10


def test_selecting_on_a_missing_valid_split_is_refused(variant_data, tmp_path):
    _, lff = variant_data
    with pytest.raises(ConfigError, match="no valid split"):
        train_disent.main(train_vanilla=True, data_dir=str(lff), percent="5pct", num_steps=2,
                          log_dir=str(tmp_path), exp="v", device="cpu", progress=False)


def fake_run(path: Path, method: str, test_values: list[float], valid_values: list[float] | None, final: float,
             steps: int = 50_000, preset: str | None = None, percent: float = 1.0, seed: int = 0) -> None:
    key = "test_cell_mean" if preset == "lff_paper" else "test"
    history = [{"metrics": {"f": {key: t, **({"valid": v} if valid_values else {})}}}
               for t, v in zip(test_values, valid_values or test_values)]
    cells = [[50.0] * 10 for _ in range(10)]
    cells[3][7], cells[0][0] = 12.5, None
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps({
        "task": "disent_cmnist", "method": method, "percent": percent, "seed": seed, "global_step": steps,
        "history": history, "final_metrics": {key: final}, "per_cell_accuracy": {"test": cells},
        "data_variant": {"palette": "hues", "render": "disent_figure", "n_valid": 5000},
        "config": {"preset": preset, "limit_train_batches": None, "limit_eval_batches": None}}))


def test_protocol_values_of_a_run(tmp_path):
    fake_run(tmp_path / "a", "DisEnt", [40.0, 70.0, 60.0], [90.0, 95.0, 95.0], final=61.0)
    (run,) = cmnist_tables.load_runs(tmp_path)
    assert run.variant == "hues:disent_figure" and run.paper_length
    assert run.values == {"best_test": 70.0, "last": 61.0, "best_valid": 60.0, "worst_group": 12.5}


def test_tables_keep_shortened_runs_out_and_aggregate_seeds(tmp_path):
    for seed, final in enumerate((60.0, 64.0)):
        fake_run(tmp_path / f"s{seed}", "Vanilla", [final], [90.0], final=final, seed=seed)
    fake_run(tmp_path / "short", "Vanilla", [10.0], [90.0], final=10.0, steps=500, seed=5)
    table = cmnist_tables.disent_table(cmnist_tables.load_runs(tmp_path), "hues:disent_figure")
    vanilla_last = next(line for line in table.splitlines() if line.startswith("| Vanilla | last step"))
    assert vanilla_last.split(" | ")[3] == "62.00 ± 2.83 (n=2)"
    assert "1 shortened run(s)" in table and "10.00" not in table
    assert "| DisEnt | last step | – | – | – | – |" in table


def test_readme_tables_are_generated_from_the_committed_results():
    result = subprocess.run([sys.executable, "scripts/report.py", "readme", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    readme = (REPO / "README.md").read_text()
    assert readme.count("<!-- generated by `python scripts/report.py readme`: ") >= 2


def test_readme_check_fails_when_a_table_drifts(tmp_path):
    text = (REPO / "README.md").read_text()
    name = "lff_cmnist"
    start = text.index(readme.BEGIN.format(name=name))
    drifted = text[:start] + text[start:].replace("(n=", "(n = ", 1)
    assert readme.regenerate_readme(drifted, REPO) == text

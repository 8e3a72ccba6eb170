"""scripts/report.py: aggregation over seeds, markdown/CSV tables with paper numbers, plots, invalid-file handling."""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import image as mpimg  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "report.py"
_SPEC = importlib.util.spec_from_file_location("report", SCRIPT)
report = importlib.util.module_from_spec(_SPEC)
sys.modules["report"] = report
_SPEC.loader.exec_module(report)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _cells(values: dict[tuple[int, int], float | None], fill: float = 50.0) -> list[list[float | None]]:
    """A 10 x 10 (digit x colour) matrix filled with ``fill`` except at ``values``."""
    return [[values.get((digit, colour), fill) for colour in range(10)] for digit in range(10)]


REBIAS_CELLS = {
    0: _cells({(0, 0): 50.0, (0, 1): None, (1, 0): 80.0, (1, 1): 20.0, (9, 9): 10.0}),
    1: _cells({(0, 0): 70.0, (0, 1): None, (1, 0): None, (1, 1): 40.0, (9, 9): 30.0}),
}


def _write_run(root: Path, method: str, rho: float, seed: int, unbiased: float, biased: float = 100.0,
               g_unbiased: float = 10.0, per_cell: list | None = None) -> Path:
    payload = {
        "task": "biased_mnist", "method": method, "train_correlation": rho, "seed": seed, "epoch": 80,
        "metrics": {"biased": biased, "unbiased": unbiased, "rho0": unbiased - 5.0},
        "g_metrics": [{"biased": 100.0, "unbiased": g_unbiased, "rho0": 0.0}],
        "per_cell_accuracy": {"unbiased": per_cell} if per_cell is not None else {},
        "wall_seconds": 12.5, "train_images_per_second": 1000.0, "config": {"lr": 0.001},
    }
    path = root / method / f"rho{rho}" / f"seed{seed}" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload))
    return path


@pytest.fixture()
def results_dir(tmp_path: Path) -> Path:
    """Vanilla at .997 (3 seeds), ReBias at .997 (2 seeds) and .999 (1 seed), RUBi at all four rhos (2 seeds)."""
    root = tmp_path / "results"
    for seed, unbiased in enumerate((30.0, 33.0, 36.0)):
        _write_run(root, "Vanilla", 0.997, seed, unbiased, g_unbiased=10.0 + seed)
    for seed, unbiased in enumerate((60.0, 64.0)):
        _write_run(root, "ReBias", 0.997, seed, unbiased, per_cell=REBIAS_CELLS[seed])
    _write_run(root, "ReBias", 0.999, 0, 20.0)
    rubi = {0.999: (10.0, 14.0), 0.997: (40.0, 44.0), 0.995: (90.0, 86.0), 0.990: (92.0, 96.0)}
    for rho, values in rubi.items():
        for seed, unbiased in enumerate(values):
            _write_run(root, "RUBi", rho, seed, unbiased, biased=99.0 + seed)
    return root


def _table_rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| Setting"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _column(name: str) -> int:
    names = [column.name for column in report.TABLES["biased_mnist"].columns]
    return 3 * names.index(name)


def test_markdown_table_cells_and_paper_numbers(results_dir: Path, tmp_path: Path) -> None:
    result = report.build_report(results_dir, tmp_path / "out")
    rows = _table_rows(result.markdown)
    assert list(rows) == [f"{metric} {rho}" for metric in ("Biased", "Unbiased", "Worst-group")
                          for rho in ("ρ=.999", "ρ=.997", "ρ=.995", "ρ=.990", "avg")]
    vanilla, biased, mixin, rubi, rebias = (_column(name) for name in
                                            ("Vanilla", "Biased", "LearnedMixin", "RUBi", "ReBias"))
    row = rows["Unbiased ρ=.997"]
    assert row[vanilla:vanilla + 3] == ["33.0 ± 3.0 (n=3)", "33.4", "-0.4"]
    assert row[biased:biased + 3] == ["11.0 ± 1.0 (n=3)", "10.0", "+1.0"]
    assert row[mixin:mixin + 3] == ["–", "50.2", "–"]
    assert row[rubi:rubi + 3] == ["42.0 ± 2.8 (n=2)", "43.0", "-1.0"]
    assert row[rebias:rebias + 3] == ["62.0 ± 2.8 (n=2)", "64.2", "-2.2"]
    assert rows["Unbiased ρ=.999"][rebias:rebias + 3] == ["20.0 ± – (n=1)", "22.7", "-2.7"]
    assert rows["Unbiased avg"][rubi:rubi + 3] == ["59.0 ± 1.4 (n=2)", "60.2", "-1.2"]
    assert rows["Unbiased avg"][rebias] == "–"
    assert rows["Unbiased avg"][rebias + 1] == "62.7"
    assert rows["Biased ρ=.990"][rubi:rubi + 3] == ["99.5 ± 0.7 (n=2)", "100.0", "-0.5"]
    assert rows["Biased avg"][mixin + 1] == "15.2"
    # worst cell per seed: 10.0 (seed 0) and 30.0 (seed 1); runs without per-cell data and g networks have none
    assert rows["Worst-group ρ=.997"][rebias:rebias + 3] == ["20.0 ± 14.1 (n=2)", "–", "–"]
    assert rows["Worst-group ρ=.997"][vanilla] == rows["Worst-group ρ=.997"][biased] == "–"
    assert (tmp_path / "out" / "biased_mnist_table.md").read_text() == result.markdown


def test_csv_rows(results_dir: Path, tmp_path: Path) -> None:
    report.build_report(results_dir, tmp_path / "out")
    with open(tmp_path / "out" / "biased_mnist_table.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["task", "method", "rho", "metric", "mean", "std", "n", "paper", "diff", "runs",
                             "paper_verified"]
    assert len(rows) == 3 * 5 * 5 and {row["runs"] for row in rows} == {"paper-length"}
    by_key = {(row["method"], row["rho"], row["metric"]): row for row in rows}
    vanilla = by_key[("Vanilla", "0.997", "unbiased")]
    assert (float(vanilla["mean"]), float(vanilla["std"]), int(vanilla["n"])) == (33.0, 3.0, 3)
    assert float(vanilla["paper"]) == 33.4 and vanilla["paper_verified"] == "yes"
    assert float(vanilla["diff"]) == pytest.approx(-0.4)
    rebias = by_key[("ReBias", "0.999", "unbiased")]
    assert (float(rebias["mean"]), rebias["std"], int(rebias["n"])) == (20.0, "", 1)
    rubi_avg = by_key[("RUBi", "avg", "unbiased")]
    assert float(rubi_avg["mean"]) == 59.0
    assert float(rubi_avg["std"]) == pytest.approx(np.sqrt(2.0), abs=1e-5)
    assert float(rubi_avg["diff"]) == pytest.approx(-1.2)
    mixin = by_key[("LearnedMixin", "0.995", "biased")]
    assert (mixin["mean"], mixin["n"], float(mixin["paper"])) == ("", "0", 17.5)


def test_png_plots_are_valid(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = report.build_report(results_dir, out)
    pngs = sorted(path.name for path in result.files if path.suffix == ".png")
    assert pngs == ["biased_mnist_cells_unbiased_ReBias_rho0.997.png", "biased_mnist_unbiased_vs_rho.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        image = mpimg.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_per_cell_mean_ignores_empty_cells(results_dir: Path) -> None:
    runs = report.load_results(results_dir)
    means = report.mean_cell_matrices("biased_mnist", runs)
    assert list(means) == [("ReBias", 0.997, "unbiased")]
    matrix, n = means[("ReBias", 0.997, "unbiased")]
    assert n == 2
    expected = np.full((10, 10), 50.0)
    expected[0, :2], expected[1, :2], expected[9, 9] = [60.0, np.nan], [80.0, 30.0], 20.0
    np.testing.assert_allclose(matrix, expected)


def test_missing_key_names_the_file(results_dir: Path, tmp_path: Path) -> None:
    bad = results_dir / "broken" / "results.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"task": "biased_mnist", "method": "ReBias", "train_correlation": 0.99, "seed": 3}))
    with pytest.raises(report.ReportError, match=r"broken/results\.json: missing required key 'metrics'"):
        report.build_report(results_dir, tmp_path / "out")


def test_bad_json_names_the_file(results_dir: Path, tmp_path: Path) -> None:
    bad = results_dir / "truncated" / "results.json"
    bad.parent.mkdir()
    bad.write_text('{"task": "biased_mnist", "metr')
    with pytest.raises(report.ReportError, match=r"truncated/results\.json: not valid JSON"):
        report.build_report(results_dir, tmp_path / "out")


@pytest.mark.parametrize(("change", "message"), [
    ({"seed": "0"}, "'seed' must be an integer"),
    ({"method": "HEX"}, "method 'HEX' is not one of"),
    ({"task": "imagenet_42"}, "task 'imagenet_42' has no table layout"),
    ({"metrics": {"biased": 100.0}}, "'metrics' lacks the accuracy 'unbiased'"),
    ({"metrics": {"biased": 1.0, "unbiased": 164.0}}, r"'metrics\.unbiased' must be a percentage"),
    ({"g_metrics": []}, "'g_metrics' has 0 entries"),
    ({"per_cell_accuracy": {"unbiased": [[1.0, 2.0], [3.0]]}}, "rectangular"),
    ({"per_cell_accuracy": {"unbiased": [[1.0, 2.0], [3.0, None]]}}, r"has shape \(2, 2\), expected \(10, 10\)"),
    ({"per_cell_accuracy": {"unbiased": [[1.0, "x"] * 5] * 10}}, "neither null nor a percentage"),
    ({"train_correlation": "0.99"}, "'train_correlation' must be a number"),
    ([], "top level must be a JSON object"),
])
def test_wrong_types_are_refused(results_dir: Path, change: dict | list, message: str) -> None:
    path = _write_run(results_dir / "extra", "Vanilla", 0.99, 7, 50.0)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change} if isinstance(change, dict) else change))
    with pytest.raises(report.ReportError, match=message) as error:
        report.parse_results(path)
    assert str(path) in str(error.value)


def test_settings_outside_the_layout_are_listed_but_not_averaged(results_dir: Path, tmp_path: Path) -> None:
    _write_run(results_dir / "extra", "RUBi", 0.98, 0, 97.0)
    result = report.build_report(results_dir, tmp_path / "out")
    rows = _table_rows(result.markdown)
    rubi = _column("RUBi")
    assert list(rows).index("Unbiased ρ=0.98") == list(rows).index("Unbiased avg") - 1
    assert rows["Unbiased ρ=0.98"][rubi:rubi + 3] == ["97.0 ± – (n=1)", "–", "–"]
    assert rows["Unbiased avg"][rubi] == "59.0 ± 1.4 (n=2)"


def test_duplicate_runs_are_refused(results_dir: Path, tmp_path: Path) -> None:
    _write_run(results_dir / "rerun", "ReBias", 0.999, 0, 25.0)
    with pytest.raises(report.ReportError, match="duplicate run"):
        report.load_results(results_dir)


def test_skip_invalid_warns_and_skips(results_dir: Path, tmp_path: Path) -> None:
    (results_dir / "truncated").mkdir()
    (results_dir / "truncated" / "results.json").write_text("{")
    (results_dir / "no_seed").mkdir()
    (results_dir / "no_seed" / "results.json").write_text(json.dumps({"task": "biased_mnist"}))
    with pytest.warns(report.ReportWarning) as caught:
        result = report.build_report(results_dir, tmp_path / "out", skip_invalid=True)
    messages = sorted(str(warning.message) for warning in caught)
    assert len(messages) == 2
    assert "no_seed/results.json" in messages[0] and "truncated/results.json" in messages[1]
    assert _table_rows(result.markdown)["Unbiased ρ=.997"][_column("Vanilla")] == "33.0 ± 3.0 (n=3)"


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no valid results.json"):
        report.load_results(tmp_path)


def test_cli_prints_table_and_writes_files(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_out"
    completed = subprocess.run([sys.executable, str(SCRIPT), str(results_dir), "--out", str(out)],
                               capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "| Unbiased ρ=.997 | 33.0 ± 3.0 (n=3) | 33.4 | -0.4 |" in completed.stdout
    assert (out / "biased_mnist_table.csv").is_file()


def test_cli_error_is_one_line_without_traceback(results_dir: Path, tmp_path: Path, capsys) -> None:
    (results_dir / "truncated").mkdir()
    (results_dir / "truncated" / "results.json").write_text("not json")
    assert report.main([str(results_dir), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "truncated/results.json" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err

    assert report.main([str(results_dir), "--out", str(tmp_path / "out"), "--skip_invalid"]) == 0
    captured = capsys.readouterr()
    assert "warning: skipping" in captured.err and "truncated/results.json" in captured.err
    assert "Unbiased ρ=.997" in captured.out


# ------------------------------------------------------------------ paper-length vs shortened runs, worst group
SMOKE_PROTOCOL = {"name": "rebias_biased_mnist", "unit": "epochs", "trained": 2, "paper": 80,
                  "limit_train_batches": 40, "limit_eval_batches": 10, "batch_size": 64, "paper_batch_size": 256,
                  "paper_length": False}
"""What main_biased_mnist.py records for the README's first command (2 epochs of 40 batches of 64)."""
SMOKE_LABEL = "2/80 ep, 40 batches/ep, eval 10 batches, batch 64"
PAPER_PROTOCOL = {**SMOKE_PROTOCOL, "trained": 80, "limit_train_batches": None, "limit_eval_batches": None,
                  "batch_size": 256, "paper_length": True}


def _update(path: Path, **changes) -> Path:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return path


def _paper_and_shortened(root: Path, shortened_seeds: tuple[int, ...] = (0,)) -> Path:
    """ReBias at rho .990: one paper-length run (seed 0) and the smoke run(s) of the same cell."""
    _update(_write_run(root / "paper", "ReBias", 0.99, 0, 86.0, per_cell=_cells({(2, 7): 61.0}, fill=90.0)),
            protocol=PAPER_PROTOCOL)
    for seed in shortened_seeds:
        _update(_write_run(root / "smoke", "ReBias", 0.99, seed, 8.4 + seed, per_cell=_cells({(4, 4): 0.0}, 9.0)),
                protocol=SMOKE_PROTOCOL)
    return root


def test_default_table_holds_only_the_paper_length_run(tmp_path: Path) -> None:
    result = report.build_report(_paper_and_shortened(tmp_path / "results"), tmp_path / "out")
    rows = _table_rows(result.markdown)
    rebias = _column("ReBias")
    assert rows["Unbiased ρ=.990"][rebias:rebias + 3] == ["86.0 ± – (n=1)", "88.1", "-2.1"]
    assert rows["Biased ρ=.990"][rebias] == "100.0 ± – (n=1)"
    assert rows["Worst-group ρ=.990"][rebias:rebias + 3] == ["61.0 ± – (n=1)", "–", "–"]
    assert "8.4" not in result.markdown and "*" not in "".join("".join(row) for row in rows.values())
    assert f"1 shortened or other-protocol run(s) left out ({SMOKE_LABEL}): pass --include_shortened" in result.markdown
    with open(tmp_path / "out" / "biased_mnist_table.csv", newline="") as stream:
        csv_rows = [row for row in csv.DictReader(stream) if row["method"] == "ReBias" and row["rho"] == "0.99"]
    assert {row["runs"] for row in csv_rows} == {"paper-length"} and len(csv_rows) == 3
    assert sorted(path.name for path in result.files if "_cells_" in path.name) == [
        "biased_mnist_cells_unbiased_ReBias_rho0.99.png"]


def test_include_shortened_shows_both_labelled_and_apart(tmp_path: Path) -> None:
    result = report.build_report(_paper_and_shortened(tmp_path / "results"), tmp_path / "out",
                                 include_shortened=True)
    rows = _table_rows(result.markdown)
    rebias, biased = _column("ReBias"), _column("Biased")
    assert rows["Unbiased ρ=.990"][rebias:rebias + 3] == [f"86.0 ± – (n=1); 8.4* ({SMOKE_LABEL})", "88.1", "-2.1"]
    assert rows["Worst-group ρ=.990"][rebias] == f"61.0 ± – (n=1); 0.0* ({SMOKE_LABEL})"
    assert rows["Unbiased ρ=.990"][biased] == "–"  # a ReBias run fills no Biased column
    assert rows["Unbiased avg"][rebias] == "–"  # shortened runs never enter the avg row
    assert "`*` marks shortened runs" in result.markdown
    with open(tmp_path / "out" / "biased_mnist_table.csv", newline="") as stream:
        by_runs = {row["runs"]: row for row in csv.DictReader(stream)
                   if row["method"] == "ReBias" and row["rho"] == "0.99" and row["metric"] == "unbiased"}
    assert set(by_runs) == {"paper-length", f"shortened: {SMOKE_LABEL}"}
    assert (float(by_runs["paper-length"]["mean"]), float(by_runs["paper-length"]["diff"])) == (86.0, -2.1)
    shortened = by_runs[f"shortened: {SMOKE_LABEL}"]
    assert (float(shortened["mean"]), shortened["n"], shortened["paper"], shortened["diff"]) == (8.4, "1", "", "")
    heatmaps = sorted(path.name for path in result.files if "_cells_" in path.name)
    assert heatmaps == ["biased_mnist_cells_unbiased_ReBias_rho0.99.png",
                        "biased_mnist_cells_unbiased_ReBias_rho0.99_shortened-2-80-ep-40-batches-ep-eval-10-batches-"
                        "batch-64.png"]
    assert all((tmp_path / "out" / name).read_bytes().startswith(PNG_SIGNATURE) for name in heatmaps)


def test_shortened_seeds_of_one_length_aggregate_together(tmp_path: Path) -> None:
    results = _paper_and_shortened(tmp_path / "results", shortened_seeds=(0, 1))
    cells = report.aggregate("biased_mnist", report.load_results(results), include_shortened=True)
    cell = next(cell for cell in cells if (cell.column, cell.setting, cell.metric) == ("ReBias", 0.99, "unbiased"))
    assert (cell.values, cell.paper, cell.diff) == ((86.0,), 88.1, pytest.approx(-2.1))
    assert [(group.length, group.values, group.paper) for group in cell.shortened] == [
        (SMOKE_LABEL, (8.4, 9.4), None)]
    assert report.format_cell(cell) == f"86.0 ± – (n=1); 8.9 ± 0.7* ({SMOKE_LABEL}, n=2)"


def test_only_shortened_runs_give_an_empty_comparison(tmp_path: Path, capsys) -> None:
    root = tmp_path / "results"
    _update(_write_run(root, "ReBias", 0.99, 0, 8.4), protocol=SMOKE_PROTOCOL)
    assert report.main([str(root), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    rebias = _column("ReBias")
    assert _table_rows(out)["Unbiased ρ=.990"][rebias:rebias + 3] == ["–", "88.1", "–"]
    assert "8.4" not in out and "--include_shortened" in out
    assert report.main([str(root), "--out", str(tmp_path / "out2"), "--include_shortened"]) == 0
    out = capsys.readouterr().out
    assert _table_rows(out)["Unbiased ρ=.990"][rebias:rebias + 3] == [f"8.4* ({SMOKE_LABEL})", "88.1", "–"]
    assert (tmp_path / "out2" / "biased_mnist_unbiased_vs_rho.png").read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(("changes", "paper_length", "label"), [
    ({}, True, None),  # the fixture's hand-made file: 80 epochs, no limit flags in its config
    ({"epoch": 2, "config": {"n_epochs": 2}}, False, "2/80 ep"),
    ({"config": {"limit_train_batches": 40}}, False, "80/80 ep, 40 batches/ep"),
    ({"config": {"limit_eval_batches": 0.25}}, False, "80/80 ep, eval 25% batches"),
    ({"config": {"limit_train_batches": 1.0, "batch_size": 256}}, True, None),
    ({"config": {"batch_size": 64}}, False, "80/80 ep, batch 64"),
    ({"config": {"batch_size": 128}, "world_size": 2}, True, None),
    ({"config": None}, False, "length not recorded (paper: 80 ep)"),
    ({"protocol": {"paper_length": True}}, True, None),
])
def test_paper_length_of_files_without_a_protocol_entry(tmp_path: Path, changes: dict, paper_length: bool,
                                                       label: str | None) -> None:
    path = _update(_write_run(tmp_path, "ReBias", 0.99, 0, 50.0), **changes)
    run = report.parse_results(path)
    assert (run.paper_length, run.length) == (paper_length, label)


def test_bad_protocol_entry_is_refused(tmp_path: Path) -> None:
    path = _update(_write_run(tmp_path, "ReBias", 0.99, 0, 50.0), protocol={"trained": 2})
    with pytest.raises(report.ReportError, match="'protocol' must be an object with a boolean 'paper_length'"):
        report.parse_results(path)


def test_worst_group_accuracy_of_a_hand_made_matrix() -> None:
    matrix = [[90.0, None, 75.5], [None, 100.0, 12.5], [40.0, 60.0, None]]
    assert report.worst_group_accuracy(matrix) == 12.5
    assert report.worst_group_accuracy([[None, None], [None, None]]) is None
    assert report.worst_group_accuracy([[0.0, 100.0]]) == 0.0


def _write_disent_run(root: Path, method: str, seed: int, test: float, per_cell: list, steps: int,
                      preset: str | None = None) -> Path:
    path = root / f"{method}_{preset}_{steps}_{seed}" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "task": "disent_cmnist", "method": method, "percent": 1.0, "seed": seed, "metrics": {"test": test},
        "per_cell_accuracy": {"test": per_cell}, "global_step": steps, "epoch": 100,
        "config": {"preset": preset, "num_steps": steps, "limit_train_batches": None, "limit_eval_batches": None}}))
    return path


def test_disent_table_worst_group_and_other_protocols(tmp_path: Path) -> None:
    root = tmp_path / "results"
    hand_made = [[99.0, 80.0, None], [70.5, None, 95.0], [None, 88.0, 90.0]]
    _write_disent_run(root, "DisEnt", 0, 81.0, hand_made, 50_000)
    _write_disent_run(root, "DisEnt", 1, 83.0, [[90.0, 74.5], [80.0, None]], 50_000)
    _write_disent_run(root, "LfF", 0, 70.0, hand_made, 23_500, preset="lff_paper")
    _write_disent_run(root, "Vanilla", 0, 40.0, hand_made, 5_000)
    runs = report.load_results(root)
    assert {(run.method, run.paper_length, run.length) for run in runs} == {
        ("DisEnt", True, None), ("LfF", False, "lff_paper protocol, 23500/23500 steps"),
        ("Vanilla", False, "5000/50000 steps")}
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")[1:]]
            for line in report.build_report(root, tmp_path / "out").markdown.splitlines() if line.startswith("| ")}
    assert rows["Unbiased conflicting %=1"] == ["–", "52.1 (unverified)", "–", "–", "61.9 (unverified)", "–",
                                               "82.0 ± 1.4 (n=2)", "81.3 (unverified)", "+0.7"]
    assert rows["Worst-group conflicting %=1"] == ["–"] * 6 + ["72.5 ± 2.8 (n=2)", "–", "–"]
    markdown = report.build_report(root, tmp_path / "out2", include_shortened=True).markdown
    assert "70.0* (lff_paper protocol, 23500/23500 steps)" in markdown and "40.0* (5000/50000 steps)" in markdown


def test_run_protocol_records_the_papers_lengths() -> None:
    from utils.protocol import run_protocol

    full = run_protocol("biased_mnist", {"batch_size": 256, "limit_train_batches": None,
                                         "limit_eval_batches": None}, epochs=80, steps=18_800)
    assert full == {"name": "rebias_biased_mnist", "unit": "epochs", "trained": 80, "paper": 80,
                    "limit_train_batches": None, "limit_eval_batches": None, "batch_size": 256,
                    "paper_batch_size": 256, "precision": "fp32", "paper_length": True}
    assert run_protocol("biased_mnist", {"amp": "bf16"}, epochs=80, steps=18_800)["precision"] == "bf16"
    assert not run_protocol("biased_mnist", {"batch_size": 64}, epochs=80, steps=0)["paper_length"]
    assert run_protocol("biased_mnist", {"batch_size": 128}, epochs=80, steps=0, world_size=2)["paper_length"]
    disent = run_protocol("disent_bffhq", {"batch_size": 32}, epochs=100, steps=50_000)
    assert (disent["name"], disent["trained"], disent["paper"], disent["paper_length"]) == ("disent", 50_000,
                                                                                          50_000, True)
    variant = {"palette": "lff", "render": "lff"}
    lff = run_protocol("disent_cmnist", {"preset": "lff_paper"}, epochs=100, steps=23_500, data_variant=variant)
    assert (lff["name"], lff["paper"], lff["data_variant"], lff["paper_length"]) == ("lff_paper", 23_500, variant,
                                                                                     True)
    assert not run_protocol("disent_cmnist", {}, epochs=100, steps=23_500)["paper_length"]
    assert not run_protocol("imagenet", {"limit_eval_batches": 5}, epochs=120, steps=0)["paper_length"]


@pytest.mark.slow
def test_trainer_records_the_protocol_and_the_report_leaves_the_run_out(tmp_path: Path, fake_mnist_root) -> None:
    import main_biased_mnist

    main_biased_mnist.main(root=str(fake_mnist_root), save_dir=str(tmp_path / "runs"), run_name="smoke",
                           train_correlation=0.99, batch_size=16, n_epochs=1, limit_train_batches=2,
                           limit_eval_batches=1, f_kernel_size=3, progress=False, device="cpu")
    results = json.loads((tmp_path / "runs" / "smoke" / "results.json").read_text())
    assert results["protocol"] == {"name": "rebias_biased_mnist", "unit": "epochs", "trained": 1, "paper": 80,
                                   "limit_train_batches": 2, "limit_eval_batches": 1, "batch_size": 16,
                                   "paper_batch_size": 256, "precision": "fp32", "paper_length": False}
    markdown = report.build_report(tmp_path / "runs", tmp_path / "out").markdown
    assert _table_rows(markdown)["Unbiased ρ=.990"][_column("ReBias")] == "–"
    assert "1 shortened or other-protocol run(s) left out (1/80 ep, 2 batches/ep, eval 1 batches, batch 16)" in markdown


@pytest.mark.slow
def test_train_disent_records_its_protocol_and_data_variant(tmp_path: Path, fake_mnist_root) -> None:
    import train_disent
    from datasets.make_disent_data import cmnist

    data = Path(cmnist(str(fake_mnist_root), str(tmp_path / "data"), percents="5", preset="lff_paper")).parent
    train_disent.main(preset="lff_paper", train_lff=True, data_dir=str(data), percent="5pct", num_steps=6,
                      valid_freq=3, log_dir=str(tmp_path / "runs"), exp="lff", device="cpu", progress=False)
    results = json.loads((tmp_path / "runs" / "cmnist" / "lff" / "results.json").read_text())
    assert results["protocol"] == {"name": "lff_paper", "unit": "steps", "trained": 6, "paper": 23_500,
                                   "limit_train_batches": None, "limit_eval_batches": None, "batch_size": 256,
                                   "paper_batch_size": 256, "precision": "fp32",
                                   "data_variant": results["data_variant"],
                                   "paper_length": False}
    run = report.parse_results(tmp_path / "runs" / "cmnist" / "lff" / "results.json")
    assert (run.paper_length, run.length) == (False, "lff_paper protocol, 6/23500 steps")
    assert report.WORST_GROUP in run.metrics

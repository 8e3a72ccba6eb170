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
    assert list(rows) == [f"{metric} {rho}" for metric in ("Biased", "Unbiased")
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
    assert (tmp_path / "out" / "biased_mnist_table.md").read_text() == result.markdown


def test_csv_rows(results_dir: Path, tmp_path: Path) -> None:
    report.build_report(results_dir, tmp_path / "out")
    with open(tmp_path / "out" / "biased_mnist_table.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == ["task", "method", "rho", "metric", "mean", "std", "n", "paper", "diff"]
    assert len(rows) == 2 * 5 * 5
    by_key = {(row["method"], row["rho"], row["metric"]): row for row in rows}
    vanilla = by_key[("Vanilla", "0.997", "unbiased")]
    assert (float(vanilla["mean"]), float(vanilla["std"]), int(vanilla["n"])) == (33.0, 3.0, 3)
    assert float(vanilla["paper"]) == 33.4
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

"""The comparison table of main_folder.py runs on one dataset (docs/own_dataset.md).

    python -m utils.folder_report results/folder/folder_cmnist [--out results/folder/folder_cmnist/report.md]
        [--heatmap results/folder/folder_cmnist/test_cells.png]

Reads every ``*/results.json`` under the folder (one run per method and seed), and prints a markdown table: one row
per method (in the order of utils/matrix.py ``METHODS``), mean ± standard deviation over seeds (n) of the selected
model's (``metrics``) test accuracy, unbiased (cell-mean) accuracy, worst-group, bias-aligned and bias-conflicting
accuracy, and its valid worst-group accuracy. ``--heatmap`` draws each method's per-group test accuracy (target x
bias, first seed's run) side by side.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from utils.matrix import METHODS as METHOD_TITLES

COLUMNS = {"test": "test average", "test_cell_mean": "test unbiased", "test_worst_group": "test worst-group",
           "test_aligned": "test aligned", "test_conflicting": "test conflicting",
           "valid_worst_group": "valid worst-group"}


def collect(folder: str | Path) -> dict[str, list[dict[str, Any]]]:
    """``{--method: [results.json of each seed's run, by seed]}`` from the folder's ``*/results.json`` of the folder
    task, in the order of utils/matrix.py ``METHODS``."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(folder).glob("*/results.json")):
        results = json.loads(path.read_text())
        if results.get("task") == "folder":
            runs.setdefault(results["config"]["method"], []).append(results)
    order = list(METHOD_TITLES)
    return {method: sorted(runs[method], key=lambda run: run["seed"])
            for method in sorted(runs, key=lambda name: order.index(name) if name in order else len(order))}


def _cell(values: list[float]) -> str:
    if not values:
        return "missing"
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.1f}{spread} (n={len(values)})"


def render(runs: dict[str, list[dict[str, Any]]]) -> str:
    """The markdown table of :func:`collect`'s runs."""
    lines = ["| method | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for method, results in runs.items():
        cells = [_cell([run["metrics"][key] for run in results if key in run["metrics"]]) for key in COLUMNS]
        lines.append(f"| {METHOD_TITLES.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_cells(runs: dict[str, list[dict[str, Any]]], path: str | Path, split: str = "test") -> None:
    """Per-group accuracy of ``split`` (rows: targets, columns: biases) of each method's first run."""
    figure = Figure(figsize=(3.2 * len(runs), 3.4))
    for column, (method, results) in enumerate(runs.items(), start=1):
        run = results[0]
        grid = np.array([[np.nan if value is None else value for value in row]
                         for row in run["per_cell_accuracy"][split]], dtype=float)
        axes = figure.add_subplot(1, len(runs), column)
        image = axes.imshow(grid, vmin=0, vmax=100, cmap="viridis")
        axes.set_title(f"{METHOD_TITLES.get(method, method)} (seed {run['seed']})", fontsize=9)
        names = run.get("label_names", {})
        axes.set_yticks(range(grid.shape[0]), list(names.get("target", range(grid.shape[0]))), fontsize=6)
        axes.set_xticks(range(grid.shape[1]), list(names.get("bias", range(grid.shape[1]))), fontsize=6,
                        rotation=90)
    figure.colorbar(image, ax=figure.axes, shrink=0.8, label=f"{split} accuracy per (target, bias) group (%)")
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the runs' --save_dir (one subfolder per run)")
    parser.add_argument("--out", help="also write the table to this file")
    parser.add_argument("--heatmap", help="also draw the per-group test accuracies into this PNG")
    args = parser.parse_args(argv)
    runs = collect(args.folder)
    table = render(runs)
    print(table, end="")
    if args.out:
        Path(args.out).write_text(table)
    if args.heatmap:
        plot_cells(runs, args.heatmap)


if __name__ == "__main__":
    main()

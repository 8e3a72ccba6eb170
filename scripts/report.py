"""Aggregate many ``results.json`` files into paper-style tables (markdown + CSV) and plots.

Usage::

    python scripts/report.py RESULTS_DIR --out OUT_DIR [--skip_invalid] [--include_shortened]
    python scripts/report.py lff|cmnist RESULTS_DIR [--out OUT_DIR]     (Colored MNIST reproduction tables)
    python scripts/report.py readme [--check]                           (README tables from the committed results/)
    python scripts/report.py matrix [--family mlp|conv] [--out DIR]     (the comparison matrix, utils/matrix.py)

The directory is walked recursively; every ``results.json`` is validated and grouped by task, method, setting
(e.g. the train correlation rho) and seed. Each cell of a table is ``mean ± std (n=seeds)`` over seeds, with the
sample standard deviation (ddof=1); with a single seed the std is undefined and shown as ``–`` (empty in the CSV).
The "avg" row of a table averages each seed over all settings of the layout and then aggregates those per-seed
averages, so only seeds present at every setting count towards it.

Only **paper-length** runs fill the cells, the Δ column and the avg row: runs that trained their paper's full
protocol (results.json's ``protocol`` entry, utils/protocol.py; files written before it existed are judged from
their config, epoch and global_step, and without a config count as shortened). Shortened runs (fewer epochs or
steps, ``--limit_*_batches``, another batch size for Biased MNIST, or another protocol such as ``--preset
lff_paper`` in DisEnt's table) are left out and counted under the table; ``--include_shortened`` shows them beside
the paper-length value as ``mean* (trained/paper length, ...)`` (CSV rows ``runs = shortened: ...``, dotted ``x``
markers in the plots, ``..._shortened-<length>.png`` heatmaps), never averaged with paper-length runs. Every table
also has a **worst-group** row (a column for transposed tables): the lowest (target, bias) cell accuracy of f on the
layout's ``worst_group_loader`` (Biased MNIST: unbiased, DisEnt: test), mean over seeds; ``–`` where the task has
no such cells.

Outputs in OUT_DIR, per task: ``{task}_table.md``, ``{task}_table.csv``, ``{task}_{metric}_vs_{setting}.png`` and
``{task}_cells_{metric}_{method}_{setting}{value}.png`` (per-cell accuracy heatmaps of f, nan-mean over seeds),
e.g. ``biased_mnist_unbiased_vs_rho.png`` and ``biased_mnist_cells_unbiased_ReBias_rho0.997.png``. The markdown is
also printed. A "Vanilla" run fills two columns: f gives "Vanilla" and its first g network gives "Biased".
Table layouts live in :data:`TABLES`; a new task adds one :class:`TableLayout` entry.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from utils.protocol import PAPER_PROTOCOLS, length_label, precision_of, run_protocol  # noqa: E402

RESULTS_FILENAME = "results.json"
AVERAGE = "avg"
MISSING = "–"
WORST_GROUP = "worst_group"
"""Pseudo-metric of every table: the lowest (target, bias) cell accuracy of f on the layout's
``worst_group_loader`` (empty cells skipped), the group-robustness convention (SubpopBench's worst-group
accuracy)."""
WORST_GROUP_LABEL = "Worst-group"
SHORTENED_MARK = "*"


class ReportError(ValueError):
    """A results file is unreadable or invalid, or there is nothing to report."""


class ReportWarning(UserWarning):
    """An invalid results file was skipped (``skip_invalid=True``)."""


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors (unknown flags, missing or bad values) are one line ``error: ...``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (run with --help for the usage)", file=sys.stderr)
        sys.exit(2)


@dataclass(frozen=True)
class Column:
    """A table column: the ``network`` of runs of ``method`` (None = the target net f, i = the i-th biased net g)."""

    name: str
    method: str
    network: int | None = None


@dataclass(frozen=True)
class TableLayout:
    """How a task's results map onto the paper's table.

    ``setting_key`` is the top-level results.json key that varies across rows (e.g. ``train_correlation``), shown
    as ``setting_symbol`` in tables and plots and as ``setting_name`` in CSV headers and file names; ``settings``
    maps its values to row labels in table order. ``metrics`` maps keys of the ``metrics`` dicts to row-group
    labels. ``paper`` maps ``(metric, setting value or "avg", column)`` to the published number. ``plot_metrics``
    are plotted against the setting; ``cell_metrics`` are the ``per_cell_accuracy`` keys drawn as heatmaps, whose
    (row, column) axes are named by ``cell_axes`` and whose matrices must have shape ``cell_shape`` (other keys are
    not read). ``optional_metrics`` may be absent from a run (their cells count the runs that have them).
    ``methods_as_rows`` transposes the table (ReBias Table 2): one row per column (method) and setting, one group
    of columns per metric, and no avg row. ``worst_group_loader`` is the ``per_cell_accuracy`` key whose lowest
    cell gives the worst-group row (column, when transposed); None = not available (shown as ``–``).
    """

    title: str
    setting_key: str
    setting_symbol: str
    setting_name: str
    settings: dict[float, str]
    metrics: dict[str, str]
    columns: tuple[Column, ...]
    paper: dict[tuple[str, float | str, str], float]
    plot_metrics: tuple[str, ...] = ()
    cell_axes: tuple[str, str] = ("class", "bias")
    cell_metrics: tuple[str, ...] = ()
    cell_shape: tuple[int, int] | None = None
    optional_metrics: tuple[str, ...] = ()
    methods_as_rows: bool = False
    worst_group_loader: str | None = None

    def metric_label(self, metric: str) -> str:
        """A metric's row-group label; the worst-group pseudo-metric is ``Worst-group``."""
        return WORST_GROUP_LABEL if metric == WORST_GROUP else self.metrics[metric]

    def cell_keys(self) -> tuple[str, ...]:
        """The ``per_cell_accuracy`` keys read from results files (heatmaps and the worst-group loader)."""
        extra = (self.worst_group_loader,) if self.worst_group_loader not in (None, *self.cell_metrics) else ()
        return (*self.cell_metrics, *extra)

    def setting_label(self, value: float) -> str:
        """The row label of a setting value, e.g. ``.997``; values outside the layout print as ``%g``."""
        return self.settings.get(value, f"{value:g}")

    def row_label(self, metric: str, setting: float | str) -> str:
        """E.g. ``Unbiased ρ=.997`` or ``Unbiased avg``."""
        if setting == AVERAGE:
            return f"{self.metric_label(metric)} {AVERAGE}"
        return f"{self.metric_label(metric)} {self.setting_symbol}={self.setting_label(setting)}"

    def methods(self) -> set[str]:
        return {column.method for column in self.columns}


def _paper_grid(metric: str, columns: tuple[str, ...], rows: dict[float | str, tuple[float, ...]]
                ) -> dict[tuple[str, float | str, str], float]:
    return {(metric, setting, column): value
            for setting, values in rows.items() for column, value in zip(columns, values)}


_TABLE1_COLUMNS = ("Vanilla", "Biased", "LearnedMixin", "RUBi", "ReBias")

TABLES: dict[str, TableLayout] = {
    "biased_mnist": TableLayout(
        title="Biased MNIST (ReBias Table 1), accuracy %",
        setting_key="train_correlation",
        setting_symbol="ρ",
        setting_name="rho",
        settings={0.999: ".999", 0.997: ".997", 0.995: ".995", 0.990: ".990"},
        metrics={"biased": "Biased", "unbiased": "Unbiased"},
        columns=(Column("Vanilla", "Vanilla"), Column("Biased", "Vanilla", network=0),
                 Column("LearnedMixin", "LearnedMixin"), Column("RUBi", "RUBi"), Column("ReBias", "ReBias")),
        paper={
            **_paper_grid("biased", _TABLE1_COLUMNS, {
                0.999: (100.0, 100.0, 2.9, 99.9, 100.0),
                0.997: (100.0, 100.0, 6.7, 99.4, 100.0),
                0.995: (100.0, 100.0, 17.5, 99.5, 100.0),
                0.990: (100.0, 100.0, 33.6, 100.0, 100.0),
                AVERAGE: (100.0, 100.0, 15.2, 99.7, 100.0),
            }),
            **_paper_grid("unbiased", _TABLE1_COLUMNS, {
                0.999: (10.4, 10.0, 12.1, 13.7, 22.7),
                0.997: (33.4, 10.0, 50.2, 43.0, 64.2),
                0.995: (72.1, 10.0, 78.2, 90.4, 76.0),
                0.990: (89.1, 10.0, 88.3, 93.6, 88.1),
                AVERAGE: (51.2, 10.0, 57.2, 60.2, 62.7),
            }),
        },
        plot_metrics=("unbiased",),
        cell_axes=("digit", "colour"),
        cell_metrics=("unbiased",),
        cell_shape=(10, 10),
        worst_group_loader="unbiased",
    ),
}


_DISENT_COLUMNS = ("Vanilla", "LfF", "DisEnt")


def _disent_layout(title: str, percents: tuple[float, ...], paper: dict[float, tuple[float, ...]]) -> TableLayout:
    """DisEnt Table 1 for one dataset: rows = ratio of bias-conflicting samples, columns = methods; the metric is
    the unbiased test accuracy (BFFHQ: accuracy on bias-conflicting test images). The paper numbers are the spec's
    recollections, marked unverified there."""
    return TableLayout(
        title=f"{title} (DisEnt Table 1; paper numbers UNVERIFIED), accuracy %",
        setting_key="percent",
        setting_symbol="conflicting %",
        setting_name="percent",
        settings={value: f"{value:g}" for value in percents},
        metrics={"test": "Unbiased"},
        columns=tuple(Column(name, name) for name in _DISENT_COLUMNS),
        paper=_paper_grid("test", _DISENT_COLUMNS, paper),
        plot_metrics=("test",),
        worst_group_loader="test",
    )


TABLES.update({
    "disent_cmnist": _disent_layout("Colored MNIST", (0.5, 1.0, 2.0, 5.0), {
        0.5: (35.19, 52.50, 65.22), 1.0: (52.09, 61.89, 81.30), 2.0: (65.86, 71.03, 84.79),
        5.0: (82.17, 84.79, 89.66)}),
    "disent_cifar10c": _disent_layout("Corrupted CIFAR-10", (0.5, 1.0, 2.0, 5.0), {
        0.5: (23.08, 28.57, 29.95), 1.0: (25.82, 33.07, 36.49), 2.0: (30.06, 39.91, 41.78),
        5.0: (39.42, 50.27, 51.13)}),
    "disent_bffhq": _disent_layout("BFFHQ", (0.5,), {0.5: (56.87, 62.20, 63.87)}),
})


_TABLE2_METRICS = ("biased", "unbiased", "imagenet-a")

TABLES["imagenet"] = TableLayout(
    title="9-class ImageNet (ReBias Table 2), accuracy %",
    setting_key="image_size",
    setting_symbol="image size",
    setting_name="image_size",
    settings={224: "224"},
    metrics={"biased": "Biased", "unbiased": "Unbiased", "imagenet-a": "ImageNet-A"},
    columns=(Column("Vanilla", "Vanilla"), Column("Biased", "Vanilla", network=0),
             Column("LearnedMixin", "LearnedMixin"), Column("RUBi", "RUBi"), Column("ReBias", "ReBias")),
    paper={(metric, 224, column): value for column, values in {
        "Vanilla": (90.8, 88.8, 24.9), "Biased": (67.7, 65.9, 19.5), "LearnedMixin": (67.9, 65.9, 18.8),
        "RUBi": (90.5, 88.6, 27.7), "ReBias": (91.9, 90.5, 29.6)}.items()
        for metric, value in zip(_TABLE2_METRICS, values)},
    optional_metrics=("imagenet-a",),
    methods_as_rows=True,
)

TABLES["action"] = TableLayout(
    title="Kinetics-10 -> Mimetics-10 (ReBias Table 3), accuracy %",
    setting_key="crop_size",
    setting_symbol="crop size",
    setting_name="crop_size",
    settings={224: "224"},
    metrics={"biased": "Biased (Kinetics-10)", "unbiased": "Unbiased (Mimetics-10)"},
    columns=(Column("Vanilla", "Vanilla"), Column("Biased", "Vanilla", network=0),
             Column("LearnedMixin", "LearnedMixin"), Column("RUBi", "RUBi"), Column("ReBias", "ReBias")),
    paper={(metric, 224, column): value for column, values in {
        "Vanilla": (54.5, 18.9), "Biased": (50.7, 18.4), "LearnedMixin": (11.4, 12.3), "RUBi": (23.6, 13.4),
        "ReBias": (55.8, 22.4)}.items() for metric, value in zip(("biased", "unbiased"), values)},
    methods_as_rows=True,
)


@dataclass(frozen=True)
class Run:
    """One validated results.json. ``metrics`` holds f's worst-group accuracy under :data:`WORST_GROUP` when the
    layout's worst-group loader has per-cell accuracies; ``paper_length`` is False for a run that is not its
    table's paper protocol (shortened, limited, another batch size or protocol), described by ``length``."""

    path: Path
    task: str
    method: str
    setting: float
    seed: int
    metrics: dict[str, float]
    g_metrics: tuple[dict[str, float], ...]
    per_cell: dict[str, np.ndarray] = field(default_factory=dict)
    paper_length: bool = True
    length: str | None = None
    precision: str = "fp32"

    def network_metrics(self, network: int | None) -> dict[str, float] | None:
        if network is None:
            return self.metrics
        return self.g_metrics[network] if network < len(self.g_metrics) else None


@dataclass(frozen=True)
class Cell:
    """Aggregate over seeds of one (task, column, setting, metric)."""

    task: str
    column: str
    setting: float | str
    metric: str
    values: tuple[float, ...]
    paper: float | None
    length: str | None = None
    """None: paper-length runs; else the shortened runs of one length (e.g. ``2/80 ep``), never compared to the
    paper."""
    shortened: tuple[Cell, ...] = ()
    """With ``include_shortened``: the same cell's shortened runs, one Cell per length."""
    precisions: tuple[str, ...] = ()
    """The precisions of its runs other than the paper's fp32 (``bf16``: networks under bf16 autocast), labelled."""

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else math.nan

    @property
    def diff(self) -> float:
        return self.mean - self.paper if self.paper is not None and self.values else math.nan


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_accuracies(path: Path, where: str, accuracies: Any, required: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(accuracies, dict):
        raise ReportError(f"{path}: '{where}' must be an object of accuracies, got {type(accuracies).__name__}")
    for key in required:
        if key not in accuracies:
            raise ReportError(f"{path}: '{where}' lacks the accuracy '{key}'")
    for key, value in accuracies.items():
        if not _is_number(value) or not 0.0 <= value <= 100.0:
            raise ReportError(f"{path}: '{where}.{key}' must be a percentage in [0, 100], got {value!r}")
    return {key: float(value) for key, value in accuracies.items()}


def _check_per_cell(path: Path, per_cell: Any, shape: tuple[int, int] | None, keys: tuple[str, ...]
                    ) -> dict[str, np.ndarray]:
    if not isinstance(per_cell, dict):
        raise ReportError(f"{path}: 'per_cell_accuracy' must be an object, got {type(per_cell).__name__}")
    matrices = {}
    for key, rows in per_cell.items():
        if key not in keys:
            continue
        if (not isinstance(rows, list) or not rows or not all(isinstance(row, list) for row in rows)
                or len({len(row) for row in rows}) != 1):
            raise ReportError(f"{path}: 'per_cell_accuracy.{key}' must be a non-empty rectangular list of lists")
        if not all(value is None or (_is_number(value) and 0.0 <= value <= 100.0) for row in rows for value in row):
            raise ReportError(f"{path}: 'per_cell_accuracy.{key}' holds a value that is neither null nor a "
                              "percentage in [0, 100]")
        matrices[key] = np.array([[math.nan if value is None else value for value in row] for row in rows],
                                 dtype=float)
        if shape is not None and matrices[key].shape != shape:
            raise ReportError(f"{path}: 'per_cell_accuracy.{key}' has shape {matrices[key].shape}, expected {shape}")
    return matrices


def parse_results(path: str | Path) -> Run:
    """Read and validate one results.json; any problem raises :class:`ReportError` naming the file.

    Required: ``task`` (a key of :data:`TABLES`), ``method`` (a method of its layout), integer ``seed``, the
    layout's setting key (e.g. ``train_correlation``) and ``metrics`` with every metric of the layout, as
    percentages; ``g_metrics`` (one such object per g network) when the method fills a g column (Vanilla ->
    Biased). ``per_cell_accuracy`` is optional. Other keys (epoch, timings, config) are not read.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: cannot be read ({error})") from error
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise ReportError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    for key in ("task", "method", "seed", "metrics"):
        if key not in data:
            raise ReportError(f"{path}: missing required key '{key}'")
    task, method, seed = data["task"], data["method"], data["seed"]
    if not isinstance(task, str):
        raise ReportError(f"{path}: 'task' must be a string, got {task!r}")
    if task not in TABLES:
        raise ReportError(f"{path}: task '{task}' has no table layout (known: {', '.join(sorted(TABLES))})")
    layout = TABLES[task]
    if not isinstance(method, str) or method not in layout.methods():
        raise ReportError(f"{path}: method {method!r} is not one of {sorted(layout.methods())} for task '{task}'")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ReportError(f"{path}: 'seed' must be an integer, got {seed!r}")
    if layout.setting_key not in data:
        raise ReportError(f"{path}: missing required key '{layout.setting_key}'")
    setting = data[layout.setting_key]
    if not _is_number(setting):
        raise ReportError(f"{path}: '{layout.setting_key}' must be a number, got {setting!r}")
    required = tuple(metric for metric in layout.metrics if metric not in layout.optional_metrics)
    metrics = _check_accuracies(path, "metrics", data["metrics"], required)
    needed_g = [column.network for column in layout.columns if column.method == method and column.network is not None]
    g_metrics: tuple[dict[str, float], ...] = ()
    if needed_g or "g_metrics" in data:
        raw_g = data.get("g_metrics")
        if not isinstance(raw_g, list):
            raise ReportError(f"{path}: 'g_metrics' must be a list with one object per g network, got {raw_g!r}")
        if needed_g and len(raw_g) <= max(needed_g):
            raise ReportError(f"{path}: 'g_metrics' has {len(raw_g)} entries but the table needs g network "
                              f"{max(needed_g)}")
        g_metrics = tuple(_check_accuracies(path, f"g_metrics[{index}]", entry, required)
                          for index, entry in enumerate(raw_g))
    per_cell = data.get("per_cell_accuracy")
    per_cell = {} if per_cell is None else _check_per_cell(path, per_cell, layout.cell_shape, layout.cell_keys())
    if layout.worst_group_loader in per_cell:
        worst = worst_group_accuracy(per_cell[layout.worst_group_loader])
        if worst is not None:
            metrics[WORST_GROUP] = worst
    paper_length, length = _protocol_of(path, data, task)
    return Run(path=path, task=task, method=method, setting=round(float(setting), 6), seed=seed, metrics=metrics,
               g_metrics=g_metrics, per_cell=per_cell, paper_length=paper_length, length=length,
               precision=run_precision(data))


def worst_group_accuracy(matrix: Any) -> float | None:
    """The lowest accuracy over the (target, bias) cells of a per-cell matrix (None / NaN = empty cell, skipped);
    None when every cell is empty."""
    values = np.array([[math.nan if value is None else value for value in row] for row in matrix], dtype=float)
    finite = values[np.isfinite(values)]
    return float(finite.min()) if finite.size else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_precision(data: dict[str, Any]) -> str:
    """``fp32`` or ``bf16``: from the ``protocol`` entry (utils/protocol.py), else from the config's ``--amp``."""
    entry = data.get("protocol")
    if isinstance(entry, dict) and isinstance(entry.get("precision"), str):
        return entry["precision"]
    config = data.get("config")
    return precision_of(config.get("amp") if isinstance(config, dict) else None)


def _protocol_of(path: Path, data: dict[str, Any], task: str) -> tuple[bool, str | None]:
    """``(paper_length, length label)`` of a results file for its task's table: from its ``protocol`` entry
    (utils/protocol.py), or, for files written before that entry existed, derived the same way from ``config``,
    ``epoch`` and ``global_step`` (no config or no length: not paper-length). A run of another protocol than the
    table's (e.g. ``--preset lff_paper`` in the DisEnt table) is not paper-length for it."""
    entry = data.get("protocol")
    if entry is None:
        config = data.get("config")
        entry = run_protocol(task, config if isinstance(config, dict) else {}, epochs=_count(data.get("epoch")),
                             steps=_count(data.get("global_step")), world_size=_count(data.get("world_size")) or 1,
                             data_variant=data.get("data_variant"))
        if not isinstance(config, dict):
            entry["paper_length"], entry["trained"] = False, None
    elif not isinstance(entry, dict) or not isinstance(entry.get("paper_length"), bool):
        raise ReportError(f"{path}: 'protocol' must be an object with a boolean 'paper_length', got {entry!r}")
    expected = PAPER_PROTOCOLS[task].name if task in PAPER_PROTOCOLS else None
    name = entry.get("name")
    if entry["paper_length"] and (name is None or expected is None or name == expected):
        return True, None
    return False, length_label(entry, expected)


def load_results(results_dir: str | Path, skip_invalid: bool = False) -> list[Run]:
    """Parse every results.json under ``results_dir`` (recursively, sorted by path).

    Invalid files and duplicate (task, method, setting, seed, length) runs raise :class:`ReportError`, or with
    ``skip_invalid`` emit a :class:`ReportWarning` and are left out (the first of duplicates is kept). A
    paper-length run and a shortened run of the same seed are not duplicates.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir}: not a directory")
    runs: list[Run] = []
    seen: dict[tuple[str, str, float, int, str | None], Path] = {}
    for path in sorted(results_dir.rglob(RESULTS_FILENAME)):
        try:
            run = parse_results(path)
            key = (run.task, run.method, run.setting, run.seed, run.length)
            if key in seen:
                length = "" if run.length is None else f", shortened: {run.length}"
                raise ReportError(f"{path}: duplicate run (task {run.task}, method {run.method}, "
                                  f"{TABLES[run.task].setting_key} {run.setting:g}, seed {run.seed}{length}) "
                                  f"already read from {seen[key]}")
        except ReportError as error:
            if not skip_invalid:
                raise
            warnings.warn(f"skipping {error}", ReportWarning, stacklevel=2)
            continue
        seen[key] = path
        runs.append(run)
    if not runs:
        raise ReportError(f"{results_dir}: no valid {RESULTS_FILENAME} found")
    return runs


def _values_by_setting(runs: list[Run], column: Column, metric: str) -> dict[float, dict[int, float]]:
    """``setting -> seed -> accuracy`` of ``column``'s network for ``metric``."""
    by_setting: dict[float, dict[int, float]] = defaultdict(dict)
    for run in runs:
        accuracies = run.network_metrics(column.network) if run.method == column.method else None
        if accuracies is not None and metric in accuracies:
            by_setting[run.setting][run.seed] = accuracies[metric]
    return by_setting


def _seed_averages(by_setting: dict[float, dict[int, float]], settings: list[float]) -> tuple[float, ...]:
    """Per-seed mean over ``settings``, for the seeds present at all of them (sorted by seed)."""
    complete_seeds = set.intersection(*(set(by_setting.get(setting, {})) for setting in settings))
    return tuple(float(np.mean([by_setting[setting][seed] for setting in settings]))
                 for seed in sorted(complete_seeds))


def _cells_of(layout: TableLayout, task: str, runs: list[Run], metrics: list[str], settings: list[float | str],
              length: str | None) -> dict[tuple[str, float | str, str], Cell]:
    """``(metric, setting, column) -> Cell`` of ``runs`` (all of one length; None = paper-length, compared to the
    paper)."""
    layout_settings = list(layout.settings)
    cells = {}
    for metric in metrics:
        for column in layout.columns:
            by_setting = _values_by_setting(runs, column, metric)
            for setting in settings:
                if setting == AVERAGE:
                    seed_values = _seed_averages(by_setting, layout_settings)
                else:
                    seed_values = tuple(by_setting[setting][seed] for seed in sorted(by_setting.get(setting, {})))
                paper = layout.paper.get((metric, setting, column.name)) if length is None else None
                precisions = tuple(sorted({run.precision for run in runs if run.method == column.method
                                           and (setting == AVERAGE or run.setting == setting)} - {"fp32"}))
                cells[(metric, setting, column.name)] = Cell(task, column.name, setting, metric, seed_values, paper,
                                                             precisions=precisions if seed_values else (),
                                                             length=length)
    return cells


def aggregate(task: str, runs: list[Run], include_shortened: bool = False) -> list[Cell]:
    """Cells of ``task``'s table in row order (metric, then the layout's settings, extra settings, avg), then
    column order; the metrics are the layout's followed by :data:`WORST_GROUP`. Settings found in the runs but
    absent from the layout are placed after the layout's, in descending order, and do not enter the avg row.

    Only paper-length runs fill the cells (and so the paper comparison and the avg row). With
    ``include_shortened`` each cell also carries the shortened runs of its (column, setting, metric) in
    ``Cell.shortened``, one Cell per length, never averaged with the paper-length runs nor entering the avg row."""
    layout = TABLES[task]
    runs = [run for run in runs if run.task == task]
    if not include_shortened:
        runs = [run for run in runs if run.paper_length]
    layout_settings = list(layout.settings)
    extra = sorted({run.setting for run in runs} - set(layout_settings), reverse=True)
    average = [] if layout.methods_as_rows else [AVERAGE]
    metrics = [*layout.metrics, WORST_GROUP]
    settings = [*layout_settings, *extra, *average]
    main = _cells_of(layout, task, [run for run in runs if run.paper_length], metrics, settings, None)
    lengths = sorted({run.length for run in runs if not run.paper_length})
    shortened = [_cells_of(layout, task, [run for run in runs if run.length == length], metrics,
                           [*layout_settings, *extra], length) for length in lengths]
    cells = []
    for metric in metrics:
        for setting in settings:
            for column in layout.columns:
                key = (metric, setting, column.name)
                extras = tuple(group[key] for group in shortened if key in group and group[key].n)
                cells.append(replace(main[key], shortened=extras) if extras else main[key])
    return cells


def format_cell(cell: Cell) -> str:
    """``mean ± std (n=seeds)`` with one decimal; ``–`` for the std of a single seed and for empty cells. Shortened
    runs (``include_shortened``) follow, separated by ``;``, as ``mean* (length)`` (``mean ± std* (length, n=k)``
    for several seeds), e.g. ``62.0 ± 2.8 (n=2); 8.4* (2/80 ep)``."""
    if cell.length is not None:
        if not cell.n:
            return MISSING
        spread, count = (f" ± {cell.std:.1f}", f", n={cell.n}") if cell.n > 1 else ("", "")
        labels = "".join(f", {label}" for label in cell.precisions)
        return f"{cell.mean:.1f}{spread}{SHORTENED_MARK} ({cell.length}{count}{labels})"
    text = MISSING
    if cell.n:
        std = MISSING if cell.n == 1 else f"{cell.std:.1f}"
        text = f"{cell.mean:.1f} ± {std} (n={cell.n}{''.join(f', {label}' for label in cell.precisions)})"
    if cell.shortened:
        shortened = [format_cell(group) for group in cell.shortened]
        return "; ".join(shortened if not cell.n else [text, *shortened])
    return text


def _format_optional(value: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return MISSING
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _render_methods_as_rows(layout: TableLayout, cells: list[Cell], notes: list[str]) -> str:
    """Markdown table with one row per (setting, column), ``ours | paper | Δ`` per metric and a last
    ``Worst-group`` column (no paper number); settings outside the layout are named in the row label."""
    header = ["Model"]
    for label in layout.metrics.values():
        header += [label, f"{label} paper", f"{label} Δ"]
    header.append(WORST_GROUP_LABEL)
    lines = [f"### {layout.title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows: dict[tuple[float | str, str], list[str]] = {}
    for cell in cells:
        label = cell.column
        if cell.setting not in layout.settings:
            label += f" ({layout.setting_symbol}={layout.setting_label(cell.setting)})"
        row = rows.setdefault((cell.setting, cell.column), [label])
        if cell.metric == WORST_GROUP:
            row.append(format_cell(cell))
        else:
            row += [format_cell(cell), _format_optional(cell.paper), _format_optional(cell.diff, signed=True)]
    lines += ["| " + " | ".join(row) + " |" for row in rows.values()]
    lines += ["", f"mean ± sample std over seeds (n = number of seeds; {MISSING} = not available). Paper numbers "
              f"apply to {layout.setting_symbol} = {', '.join(layout.settings.values())}.", *notes]
    return "\n".join(lines) + "\n"


def _protocol_text(task: str) -> str:
    """E.g. ``80 epochs at batch 256, without --limit_train_batches/--limit_eval_batches``."""
    protocol = PAPER_PROTOCOLS.get(task)
    if protocol is None:
        return "the paper's full length, without --limit_train_batches/--limit_eval_batches"
    batch = f" at batch {protocol.batch_size}" if protocol.check_batch_size else ""
    return f"{protocol.length:,} {protocol.unit}{batch}, without --limit_train_batches/--limit_eval_batches"


def footnotes(task: str, runs: list[Run], include_shortened: bool) -> list[str]:
    """The lines under a table: which runs it holds (paper-length only, or shortened ones too, or how many
    shortened runs were left out) and what the worst-group row or column is."""
    layout = TABLES[task]
    shortened = [run for run in runs if run.task == task and not run.paper_length]
    lines = [f"Cells, Δ and avg hold paper-length runs only ({_protocol_text(task)})."]
    if include_shortened:
        lines[0] += (f" `{SHORTENED_MARK}` marks shortened runs (--include_shortened; their length, limits, batch "
                     "size or other protocol in brackets, as trained/paper): shown beside the paper-length value, "
                     "never averaged with it, not in Δ or avg.")
    elif shortened:
        lengths = sorted({run.length for run in shortened})
        lines[0] += (f" {len(shortened)} shortened or other-protocol run(s) left out ({'; '.join(lengths)}): "
                     "pass --include_shortened to show them, labelled.")
    if any(run.precision != "fp32" for run in runs if run.task == task):
        lines.append("`bf16` marks cells trained with the networks under bf16 autocast (every criterion in fp32); "
                     "the paper trained in fp32.")
    if layout.worst_group_loader is not None:
        axes = layout.cell_axes
        lines.append(f"{WORST_GROUP_LABEL}: the lowest ({axes[0]}, {axes[1]}) cell accuracy of f on the "
                     f"'{layout.worst_group_loader}' set (empty cells skipped), mean over seeds; from "
                     "results.json's per_cell_accuracy, i.e. the final model (a selected checkpoint's per-cell "
                     "accuracies are not recorded); no paper number.")
    else:
        lines.append(f"{WORST_GROUP_LABEL}: {MISSING}, not computed for this table (its results hold no (class, "
                     "bias) cells of usable size).")
    return [text for line in lines for text in ("", line)]


def render_markdown(task: str, cells: list[Cell], notes: list[str] | None = None) -> str:
    """Markdown table: one row per (metric, setting), for each column ``ours | paper | Δ`` (Δ = ours − paper); a
    ``methods_as_rows`` layout is transposed. ``notes``: more lines under the table (:func:`footnotes`)."""
    layout = TABLES[task]
    notes = list(notes or [])
    if layout.methods_as_rows:
        return _render_methods_as_rows(layout, cells, notes)
    header = ["Setting"]
    for column in layout.columns:
        header += [column.name, f"{column.name} paper", f"{column.name} Δ"]
    lines = [f"### {layout.title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    rows: dict[tuple[str, float | str], list[str]] = {}
    for cell in cells:
        label = layout.row_label(cell.metric, cell.setting)
        row = rows.setdefault((cell.metric, cell.setting), [label])
        row += [format_cell(cell), _format_optional(cell.paper), _format_optional(cell.diff, signed=True)]
    lines += ["| " + " | ".join(row) + " |" for row in rows.values()]
    lines += ["", f"mean ± sample std over seeds (n = number of seeds; {MISSING} = not available). "
              f"'{AVERAGE}' rows average each seed over {layout.setting_symbol} = "
              f"{', '.join(layout.settings.values())} and count only seeds run at all of them.", *notes]
    return "\n".join(lines) + "\n"


def write_csv(task: str, cells: list[Cell], path: str | Path) -> None:
    """One row per (task, method, setting, metric): ``mean, std, n, paper, diff`` (empty when undefined) and
    ``runs`` = ``paper-length``; with ``include_shortened``, one more row per length of shortened runs, ``runs`` =
    ``shortened: <length>`` and no paper number."""
    layout = TABLES[task]

    def number(value: float | None) -> str:
        return "" if value is None or math.isnan(value) else f"{value:.6g}"

    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["task", "method", layout.setting_name, "metric", "mean", "std", "n", "paper", "diff",
                         "runs"])
        for main_cell in cells:
            for cell in (main_cell, *main_cell.shortened):
                setting = cell.setting if cell.setting == AVERAGE else f"{cell.setting:g}"
                runs = "paper-length" if cell.length is None else f"shortened: {cell.length}"
                writer.writerow([task, cell.column, setting, cell.metric, number(cell.mean), number(cell.std),
                                 cell.n, number(cell.paper), number(cell.diff), runs])


def plot_metric_vs_setting(task: str, cells: list[Cell], metric: str, path: str | Path) -> None:
    """Mean accuracy vs setting per column (error bars = std over seeds; paper values dashed with open markers).
    Shortened runs (``include_shortened``) are dotted with ``x`` markers, labelled ``shortened`` with their
    length."""
    layout = TABLES[task]
    settings = [setting for setting in dict.fromkeys(cell.setting for cell in cells) if setting != AVERAGE]
    positions = np.arange(len(settings))
    figure = Figure(figsize=(9, 4.5))
    axes = figure.add_subplot()
    for index, column in enumerate(layout.columns):
        colour = f"C{index}"
        by_setting = {cell.setting: cell for cell in cells if cell.metric == metric and cell.column == column.name}
        ours = [by_setting[setting] for setting in settings]
        means = np.array([cell.mean for cell in ours])
        stds = np.nan_to_num(np.array([cell.std for cell in ours]))
        if np.isfinite(means).any():
            axes.errorbar(positions, means, yerr=stds, color=colour, marker="o", capsize=3, label=column.name)
        paper = np.array([math.nan if cell.paper is None else cell.paper for cell in ours])
        if np.isfinite(paper).any():
            axes.plot(positions, paper, color=colour, linestyle="--", marker="s", markerfacecolor="none",
                      alpha=0.7, label=f"{column.name} (paper)")
        by_length: dict[str, dict[float | str, Cell]] = defaultdict(dict)
        for cell in ours:
            for group in cell.shortened:
                by_length[group.length][group.setting] = group
        for length, groups in sorted(by_length.items()):
            values = np.array([groups[setting].mean if setting in groups else math.nan for setting in settings])
            axes.plot(positions, values, color=colour, linestyle=":", marker="x", markersize=8,
                      label=f"{column.name}{SHORTENED_MARK} SHORTENED ({length})")
    if not any(cell.n or cell.shortened for cell in cells if cell.metric == metric):
        axes.text(0.5, 0.5, "no paper-length runs\n(--include_shortened shows shortened ones)",
                  ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks(positions, [layout.setting_label(setting) for setting in settings])
    axes.set_xlabel(f"{layout.setting_symbol} ({layout.setting_key})")
    axes.set_ylabel(f"{layout.metrics[metric]} accuracy (%)")
    axes.set_ylim(0, 102)
    axes.set_title(layout.title)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_cell_heatmap(task: str, matrix: np.ndarray, title: str, path: str | Path) -> None:
    """Heatmap of a per-cell accuracy matrix (rows and columns named by the layout's ``cell_axes``)."""
    layout = TABLES[task]
    figure = Figure(figsize=(6, 5.2))
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=100, cmap="viridis")
    for row, col in np.ndindex(matrix.shape):
        if np.isfinite(matrix[row, col]):
            axes.text(col, row, f"{matrix[row, col]:.0f}", ha="center", va="center", fontsize=6,
                      color="white" if matrix[row, col] < 60 else "black")
    axes.set_xticks(range(matrix.shape[1]))
    axes.set_yticks(range(matrix.shape[0]))
    axes.set_xlabel(layout.cell_axes[1])
    axes.set_ylabel(layout.cell_axes[0])
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, label="accuracy (%)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def mean_cell_matrices(task: str, runs: list[Run]) -> dict[tuple[str, float, str], tuple[np.ndarray, int]]:
    """``(method, setting, metric) -> (nan-mean over seeds of per_cell_accuracy[metric], number of seeds)`` over
    ``runs`` as given (:func:`build_report` passes the paper-length runs and each length of shortened runs
    separately)."""
    layout = TABLES[task]
    grouped: dict[tuple[str, float, str], list[np.ndarray]] = defaultdict(list)
    for run in runs:
        if run.task != task:
            continue
        for metric in layout.cell_metrics:
            if metric in run.per_cell:
                grouped[(run.method, run.setting, metric)].append(run.per_cell[metric])
    means = {}
    for key, matrices in grouped.items():
        if len({matrix.shape for matrix in matrices}) != 1:
            raise ReportError(f"per_cell_accuracy.{key[2]} of {task}/{key[0]} at {key[1]:g} has different shapes "
                              "across seeds")
        stack = np.stack(matrices)
        counts = np.isfinite(stack).sum(axis=0)
        sums = np.nansum(stack, axis=0)
        means[key] = (np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), len(matrices))
    return means


@dataclass
class Report:
    """What :func:`build_report` produced: markdown of all tasks and the paths written."""

    markdown: str
    files: list[Path]


def build_report(results_dir: str | Path, out_dir: str | Path, skip_invalid: bool = False,
                 include_shortened: bool = False) -> Report:
    """Read all results under ``results_dir`` and write tables and plots of every task found into ``out_dir``:
    paper-length runs only, unless ``include_shortened`` (then shortened runs too, labelled with their length and
    kept apart from the paper-length ones; their heatmaps are named ``..._shortened-<length>.png``)."""
    runs = load_results(results_dir, skip_invalid=skip_invalid)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    sections = []
    for task in sorted({run.task for run in runs}):
        layout = TABLES[task]
        cells = aggregate(task, runs, include_shortened=include_shortened)
        markdown = render_markdown(task, cells, footnotes(task, runs, include_shortened))
        sections.append(markdown)
        (out_dir / f"{task}_table.md").write_text(markdown)
        write_csv(task, cells, out_dir / f"{task}_table.csv")
        files += [out_dir / f"{task}_table.md", out_dir / f"{task}_table.csv"]
        for metric in layout.plot_metrics:
            path = out_dir / f"{task}_{metric}_vs_{layout.setting_name}.png"
            plot_metric_vs_setting(task, cells, metric, path)
            files.append(path)
        task_runs = [run for run in runs if run.task == task]
        lengths = sorted({run.length for run in task_runs if not run.paper_length}) if include_shortened else []
        for length in [None, *lengths]:
            group = [run for run in task_runs if run.length == length and run.paper_length == (length is None)]
            suffix = "" if length is None else "_shortened-" + re.sub(r"[^A-Za-z0-9.+]+", "-", length).strip("-")
            for (method, setting, metric), (matrix, n) in sorted(mean_cell_matrices(task, group).items()):
                label = layout.setting_label(setting)
                path = out_dir / f"{task}_cells_{metric}_{method}_{layout.setting_name}{setting:g}{suffix}.png"
                title = (f"{method}, {layout.setting_symbol}={label}: {layout.metrics.get(metric, metric).lower()} "
                         f"accuracy per ({layout.cell_axes[0]}, {layout.cell_axes[1]}), mean of n={n}")
                if length is not None:
                    title = f"SHORTENED ({length})\n{title}"
                plot_cell_heatmap(task, matrix, title, path)
                files.append(path)
    return Report(markdown="\n".join(sections), files=files)


def reproduction_main(argv: list[str]) -> int:
    """``report.py lff|cmnist RESULTS_DIR [--out DIR]``: the Colored MNIST reproduction tables, CSV and plots
    (utils/cmnist_tables.py; a results file it cannot read, or a folder none of whose runs enters the tables, is one
    line naming it and why, exit 1); ``report.py readme [--check]``: regenerate the README's generated tables from
    the committed ``results/`` (``--check``: exit 1 if the README differs instead of writing it)."""
    sys.path.insert(0, str(REPO))
    from utils import cmnist_tables

    parser = OneLineErrorParser(description=reproduction_main.__doc__)
    parser.add_argument("which", choices=("lff", "cmnist", "readme"))
    parser.add_argument("results_dir", nargs="?", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.which == "readme":
        readme = REPO / "README.md"
        text = readme.read_text()
        updated = cmnist_tables.regenerate_readme(text, REPO)
        if args.check:
            if updated != text:
                print("error: README.md's generated tables differ from what results/ gives; run "
                      "python scripts/report.py readme", file=sys.stderr)
                return 1
            return 0
        readme.write_text(updated)
        print("README.md regenerated" if updated != text else "README.md up to date", file=sys.stderr)
        return 0
    if args.results_dir is None:
        parser.error("RESULTS_DIR is required")
    out_dir = Path(args.out) if args.out is not None else Path(args.results_dir) / "report"
    try:
        built = cmnist_tables.build(args.results_dir, out_dir, args.which)
    except cmnist_tables.ResultsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(built["markdown"])
    left_out = built["left_out"]
    shown = len(built["runs"]) - sum(left_out.values())
    note = f" (left out: {cmnist_tables.describe_left_out(left_out)})" if left_out else ""
    print(f"{len(built['runs'])} runs, {shown} in the tables{note}; wrote the tables, CSV and plots to {out_dir}",
          file=sys.stderr)
    return 0


def matrix_main(argv: list[str]) -> int:
    """``report.py matrix [--family mlp|conv] [--out DIR]``: the comparison matrix (utils/matrix_report.py) from
    the results.json files its cells name; exit 1 with one line if a file belongs to another cell."""
    from utils import matrix_report

    parser = OneLineErrorParser(description=matrix_main.__doc__)
    parser.add_argument("--family", default="mlp", choices=sorted(matrix_report.FAMILIES))
    parser.add_argument("--root", default=None, help="where main_matrix.py runs are (default: results/matrix)")
    parser.add_argument("--out", default=None, help="default: results/matrix/report")
    args = parser.parse_args(argv)
    out_dir = Path(args.out) if args.out is not None else Path(args.root or "results/matrix") / "report"
    try:
        built = matrix_report.build(args.family, out_dir, repo=".", root=args.root)
    except matrix_report.MatrixError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(built["markdown"])
    print(f"wrote the {args.family} matrix (md, csv, png) to {out_dir}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (1 with a one-line message on a :class:`ReportError`)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("lff", "cmnist", "readme"):
        return reproduction_main(argv)
    if argv and argv[0] == "matrix":
        return matrix_main(argv[1:])
    parser = OneLineErrorParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", help="directory searched recursively for results.json files")
    parser.add_argument("--out", default=None, help="output directory (default: RESULTS_DIR/report)")
    parser.add_argument("--skip_invalid", action="store_true", help="warn about and skip invalid results files")
    parser.add_argument("--include_shortened", action="store_true",
                        help="also show runs that are not paper-length (fewer epochs/steps, limit flags, another "
                             "batch size or protocol), labelled with their length and never averaged with "
                             "paper-length runs")
    args = parser.parse_args(argv)
    out_dir = Path(args.out) if args.out is not None else Path(args.results_dir) / "report"
    failure = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReportWarning)
        try:
            report = build_report(args.results_dir, out_dir, skip_invalid=args.skip_invalid,
                                  include_shortened=args.include_shortened)
        except ReportError as error:
            failure = error
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    print(report.markdown)
    print(f"wrote {len(report.files)} files to {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

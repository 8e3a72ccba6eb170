"""Aggregation over seeds: the :class:`Cell` of each (task, column, setting, metric) of a table, the avg row (per-seed
averages over the layout's settings), shortened runs kept apart, and the per-cell accuracy matrices of the heatmaps."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from reports.layouts import AVERAGE, TABLES, WORST_GROUP, Column, TableLayout
from reports.results import ReportError, Run


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
    paper_verified: bool | None = None
    """Whether ``paper`` is checked against its source (reports/paper_numbers.py); None without a paper number."""

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
                number = layout.paper_numbers.get((metric, setting, column.name)) if paper is not None else None
                precisions = tuple(sorted({run.precision for run in runs if run.method == column.method
                                           and (setting == AVERAGE or run.setting == setting)} - {"fp32"}))
                cells[(metric, setting, column.name)] = Cell(task, column.name, setting, metric, seed_values, paper,
                                                             precisions=precisions if seed_values else (),
                                                             length=length,
                                                             paper_verified=None if number is None
                                                             else number.is_verified())
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

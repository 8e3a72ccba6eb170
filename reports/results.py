"""Reading results: every ``results.json`` under a folder, validated and turned into a :class:`Run` of a table
layout (reports/layouts.py), with its paper-length status (utils/protocol.py). Invalid files raise
:class:`ReportError` naming the file, or with ``skip_invalid`` warn (:class:`ReportWarning`) and are skipped."""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reports.layouts import RESULTS_FILENAME, TABLES, WORST_GROUP
from utils.protocol import PAPER_PROTOCOLS, length_label, precision_of, run_protocol


class ReportError(ValueError):
    """A results file is unreadable or invalid, or there is nothing to report."""


class ReportWarning(UserWarning):
    """An invalid results file was skipped (``skip_invalid=True``)."""


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

"""Rendering the aggregated cells of a table: markdown (with its footnotes), CSV and plots (metric vs setting, per-cell
accuracy heatmaps). A paper number whose record is not verified (reports/paper_numbers.py) is marked
``(unverified)`` in its ``paper`` column."""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from reports.aggregate import Cell
from reports.layouts import (AVERAGE, MISSING, SHORTENED_MARK, TABLES, UNVERIFIED_MARK, WORST_GROUP,
                             WORST_GROUP_LABEL, TableLayout)
from reports.paper_numbers import UNVERIFIED_EXPLAINED
from reports.results import Run
from utils.protocol import PAPER_PROTOCOLS


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


def format_paper(cell: Cell) -> str:
    """The cell's paper number with one decimal, followed by ``(unverified)`` where its record is not verified (the
    column says ``paper``, so the cell reads "paper" or "paper, unverified"); ``–`` without one."""
    text = _format_optional(cell.paper)
    return text + UNVERIFIED_MARK if cell.paper is not None and cell.paper_verified is False else text


def _unverified_note(cells: list[Cell]) -> list[str]:
    """The line under a table that explains ``(unverified)``, when a cell has that mark."""
    if not any(cell.paper is not None and cell.paper_verified is False for cell in cells):
        return []
    return ["", f"`{UNVERIFIED_MARK.strip()}`: a paper number {UNVERIFIED_EXPLAINED}"]


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
            row += [format_cell(cell), format_paper(cell), _format_optional(cell.diff, signed=True)]
    lines += ["| " + " | ".join(row) + " |" for row in rows.values()]
    lines += ["", f"mean ± sample std over seeds (n = number of seeds; {MISSING} = not available). Paper numbers "
              f"apply to {layout.setting_symbol} = {', '.join(layout.settings.values())}.", *notes,
              *_unverified_note(cells)]
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
        row += [format_cell(cell), format_paper(cell), _format_optional(cell.diff, signed=True)]
    lines += ["| " + " | ".join(row) + " |" for row in rows.values()]
    lines += ["", f"mean ± sample std over seeds (n = number of seeds; {MISSING} = not available). "
              f"'{AVERAGE}' rows average each seed over {layout.setting_symbol} = "
              f"{', '.join(layout.settings.values())} and count only seeds run at all of them.", *notes,
              *_unverified_note(cells)]
    return "\n".join(lines) + "\n"


def write_csv(task: str, cells: list[Cell], path: str | Path) -> None:
    """One row per (task, method, setting, metric): ``mean, std, n, paper, diff`` (empty when undefined),
    ``runs`` = ``paper-length`` and ``paper_verified`` (``yes``/``no``: whether the paper number is checked against
    its source, reports/paper_numbers.py; empty without one); with ``include_shortened``, one more row per length of
    shortened runs, ``runs`` = ``shortened: <length>`` and no paper number."""
    layout = TABLES[task]

    def number(value: float | None) -> str:
        return "" if value is None or math.isnan(value) else f"{value:.6g}"

    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["task", "method", layout.setting_name, "metric", "mean", "std", "n", "paper", "diff",
                         "runs", "paper_verified"])
        for main_cell in cells:
            for cell in (main_cell, *main_cell.shortened):
                setting = cell.setting if cell.setting == AVERAGE else f"{cell.setting:g}"
                runs = "paper-length" if cell.length is None else f"shortened: {cell.length}"
                writer.writerow([task, cell.column, setting, cell.metric, number(cell.mean), number(cell.std),
                                 cell.n, number(cell.paper), number(cell.diff), runs,
                                 "" if cell.paper is None or cell.paper_verified is None
                                 else "yes" if cell.paper_verified else "no"])


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

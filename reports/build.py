"""``python scripts/report.py RESULTS_DIR``: every task's table (markdown, CSV), plots and heatmaps from the
results.json files under a folder."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reports.aggregate import aggregate, mean_cell_matrices
from reports.layouts import TABLES
from reports.render import footnotes, plot_cell_heatmap, plot_metric_vs_setting, render_markdown, write_csv
from reports.results import load_results


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

"""``python scripts/report.py matrix``: the comparison matrix of a family (rows: methods, columns: benchmarks) from
the results.json each cell names (utils/matrix.py), as markdown, CSV and a heatmap PNG.

A cell is ``mean ± std (n=seeds)`` of the unbiased accuracy at the end of training over the seeds whose run is
finished and has the matrix's protocol (paper-length: full length, batch 256, no limit flags); a cell with no such
run reads ``missing`` (never 0). ``[paper X]`` follows the mean where a paper reported that exact cell (same
architecture and protocol), ``[paper, unverified X]`` where that number is not checked against its source
(reports/paper_numbers.py). A run whose results.json describes another benchmark, family or method than its cell
is an error, not a number. The matrix's declarations (benchmarks, families, methods, where each cell's run lives)
are utils/matrix.py's, shared with main_matrix.py and scripts/matrix.sh.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from collections.abc import Mapping

from reports.paper_numbers import DISENT_TABLE1, LFF_CMNIST, REBIAS_TABLE1, UNVERIFIED_EXPLAINED, PaperNumber
from utils.matrix import (BENCHMARKS, FAMILIES, METHODS, VARIANTS, Benchmark, Cell, base_method, cell, own_settings,
                          rows)

MISSING = "missing"
DEFAULT_SEEDS = (0, 1, 2)
SHARED_PROTOCOLS = {"cmnist_lff_1pct": "lff_paper", "cmnist_disent_1pct": "disent"}
"""The protocol a paper table's run must have to fill a shared cell of that benchmark."""


class MatrixError(ValueError):
    """A cell's results.json does not describe that cell."""


def paper_number(family: str, benchmark: str, method: str) -> PaperNumber | None:
    """The record of the number a paper reported for exactly this cell (architecture and protocol), or None."""
    bench = BENCHMARKS[benchmark]
    name = rows(family)[method]
    if family == "mlp" and benchmark == "cmnist_lff_1pct" and name in LFF_CMNIST:
        return LFF_CMNIST[name][1.0]
    if family == "mlp" and benchmark == "cmnist_disent_1pct" and name in DISENT_TABLE1["cmnist"]:
        return DISENT_TABLE1["cmnist"][name][1.0]
    if family == "conv" and bench.source == "biased_mnist":
        return REBIAS_TABLE1.get(("unbiased", bench.rho, name))
    return None


def paper_value(family: str, benchmark: str, method: str) -> float | None:
    """The number a paper reported for exactly this cell (architecture and protocol), or None."""
    number = paper_number(family, benchmark, method)
    return None if number is None else number.value


def cell_value(results: Mapping[str, Any], predictor: str, benchmark: Benchmark) -> float | None:
    """A cell's number from its run's results.json: the unbiased accuracy of ``predictor`` ('f' or 'g_0') at the
    end of training (``final_metrics``, not the model selected on validation or test)."""
    if predictor == "f":
        metrics = results.get("final_metrics") or {}
    else:
        g_metrics = results.get("g_metrics") or []
        index = int(predictor.removeprefix("g_"))
        metrics = g_metrics[index] if index < len(g_metrics) else {}
    value = metrics.get(benchmark.unbiased_split)
    return float(value) if value is not None else None


SHARED_BACKBONES = {"cmnist_lff_1pct": "mlp_lff", "cmnist_disent_1pct": None}
"""``config.backbone`` of the paper tables' runs a shared cell reads (None: the dataset's default, DisEnt's MLP)."""


def _data_problems(benchmark_name: str, results: dict[str, Any]) -> list[str]:
    """How a run's data differ from a Colored MNIST benchmark's (palette, renderer, valid split, ratio)."""
    benchmark = BENCHMARKS[benchmark_name]
    if benchmark.n_valid is None:
        return [] if results.get("train_correlation") == benchmark.rho else [
            f"train_correlation {results.get('train_correlation')} (cell: {benchmark.rho})"]
    variant = results.get("data_variant") or {}
    found = (variant.get("palette"), variant.get("render"), variant.get("n_valid"), results.get("percent"))
    wanted = ("lff", "lff", benchmark.n_valid, float(benchmark.percent.removesuffix("pct")))
    return [] if found == wanted else [f"data (palette, renderer, n_valid, percent) {found} (cell: {wanted})"]


def check_identity(entry: Cell, results: dict[str, Any], path: Path) -> None:
    """Refuse a results.json that belongs to another cell: benchmark, family, method (the row's name or, for a
    variant, its method) and the method's own settings, networks, seed, or (for a paper-length run, the only kind
    that fills a cell) data."""
    run_seed = results.get("seed")
    problems = [] if run_seed == entry.seed else [f"seed {run_seed} (cell: {entry.seed})"]
    if entry.shared_with is None:
        trained = "vanilla" if entry.method == "biased" else entry.method
        networks = FAMILIES[entry.family].networks(BENCHMARKS[entry.benchmark])
        for key, wanted in (("benchmark", entry.benchmark), ("family", entry.family), ("networks", networks)):
            if results.get(key, wanted if key == "networks" else None) != wanted:
                problems.append(f"{key} {results.get(key)!r} (cell: {wanted!r})")
        if results.get("matrix_method") not in (trained, base_method(trained)):
            problems.append(f"matrix_method {results.get('matrix_method')!r} (cell: {trained!r})")
        config = results.get("config") or {}
        problems += [f"{flag} {config.get(flag)!r} (cell: {wanted!r})"
                     for flag, wanted in own_settings(BENCHMARKS[entry.benchmark], trained, entry.family).items()
                     if config.get(flag) != wanted]
    else:
        protocol = (results.get("protocol") or {}).get("name")
        backbone = (results.get("config") or {}).get("backbone")
        for what, found, wanted in (("protocol", protocol, SHARED_PROTOCOLS[entry.benchmark]),
                                    ("method", results.get("method"), METHODS[entry.method]),
                                    ("backbone", backbone, SHARED_BACKBONES[entry.benchmark])):
            if found != wanted:
                problems.append(f"{what} {found!r} (cell: {wanted!r})")
    if (results.get("protocol") or {}).get("paper_length"):
        problems += _data_problems(entry.benchmark, results)
    if problems:
        raise MatrixError(f"{path} does not belong to the cell ({entry.family}, {entry.benchmark}, {entry.method}, "
                          f"seed {entry.seed}): " + "; ".join(problems))


@dataclass
class MatrixCell:
    """The seeds' values of one (benchmark, method) cell, and the runs left out as not paper-length."""

    values: dict[int, float] = field(default_factory=dict)
    shortened: int = 0
    shared_with: str | None = None

    def text(self, paper: PaperNumber | None) -> str:
        """``mean ± std (n=k)``, then ``[paper X]`` or ``[paper, unverified X]`` (the paper's mean) and ``†``."""
        if not self.values:
            return MISSING
        numbers = list(self.values.values())
        mean = statistics.fmean(numbers)
        std = f"{statistics.stdev(numbers):.1f}" if len(numbers) > 1 else "–"
        text = f"{mean:.1f} ± {std} (n={len(numbers)})"
        if paper is not None:
            text += f" [{paper.label()} {paper.value:.1f}]"
        return text + (" †" if self.shared_with else "")

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values()) if self.values else math.nan


def collect(family: str, repo: str | Path = ".", seeds: tuple[int, ...] = DEFAULT_SEEDS,
            root: str | None = None) -> dict[tuple[str, str], MatrixCell]:
    """Every cell of ``family``'s matrix read from the results.json files it names (relative to ``repo``)."""
    repo = Path(repo)
    collected: dict[tuple[str, str], MatrixCell] = {}
    for benchmark in BENCHMARKS:
        for method in rows(family):
            entry_cell = collected.setdefault((benchmark, method), MatrixCell())
            for seed in seeds:
                entry = cell(family, benchmark, method, seed, **({"root": root} if root else {}))
                entry_cell.shared_with = entry.shared_with
                path = repo / entry.run_dir / "results.json"
                if not path.exists():
                    continue
                results = json.loads(path.read_text())
                check_identity(entry, results, path)
                if not (results.get("protocol") or {}).get("paper_length"):
                    entry_cell.shortened += 1
                    continue
                value = cell_value(results, entry.predictor, BENCHMARKS[benchmark])
                if value is not None:
                    entry_cell.values[seed] = value
    return collected


def render(family: str, collected: dict[tuple[str, str], MatrixCell], benchmarks: list[str] | None = None) -> str:
    """The markdown table with its notes (``benchmarks``: the columns, default all)."""
    benchmarks = list(benchmarks or BENCHMARKS)
    lines = ["| method | " + " | ".join(BENCHMARKS[name].title for name in benchmarks) + " |",
             "|---|" + "---|" * len(benchmarks)]
    for method, title in rows(family).items():
        row = [collected[(name, method)].text(paper_number(family, name, method)) for name in benchmarks]
        lines.append(f"| {title} | " + " | ".join(row) + " |")
    shown = {key: entry for key, entry in collected.items() if key[0] in benchmarks}
    shortened = sum(entry.shortened for entry in shown.values())
    notes = [f"Family: {FAMILIES[family].title}. Unbiased accuracy (%) of f after the last step (Biased: of g), "
             "mean ± std over seeds (n); `missing`: no finished paper-length run yet."]
    if any(paper_value(family, b, m) is not None for b, m in collected if b in benchmarks):
        notes.append("[paper X]: the paper's number for exactly this cell, measured with the paper's own protocol: "
                     "last step for LfF, final epoch for ReBias, but for DisEnt's Table 1 the best test accuracy "
                     "over training (selected on test), which favours it over this table's last step.")
    if any(paper_number(family, b, m) is not None and not paper_number(family, b, m).is_verified()
           for b, m in collected if b in benchmarks and collected[(b, m)].values):
        notes.append(f"[paper, unverified X]: a paper number {UNVERIFIED_EXPLAINED}")
    if any(entry.shared_with for entry in shown.values()):
        notes.append("†: the run of the paper's own table (same command, shared, not retrained).")
    for name, variant in VARIANTS.items():
        if family in variant.families:
            changed = ", ".join(f"{flag} {value}" for flag, value in variant.settings.items())
            notes.append(f"{variant.title}: {METHODS[variant.method]} with {changed} (`--method {name}`; a variant "
                         f"row, run only when named: `METHODS={name} bash scripts/matrix.sh`).")
    if shortened:
        notes.append(f"{shortened} finished run(s) not at the matrix's length or batch size left out (a run that "
                     "fills two cells counts twice).")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def write_csv(family: str, collected: dict[tuple[str, str], MatrixCell], path: Path) -> None:
    """One row per cell; ``paper_verified`` is ``yes``/``no`` where the cell has a paper number (empty otherwise)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["family", "benchmark", "method", "mean", "std", "n", "seeds", "paper", "shared_with",
                         "paper_verified"])
        titles = rows(family)
        for (benchmark, method), entry in collected.items():
            values = list(entry.values.values())
            paper = paper_value(family, benchmark, method)
            number = paper_number(family, benchmark, method)
            writer.writerow([family, benchmark, titles[method], f"{entry.mean:.4f}" if values else "",
                             f"{statistics.stdev(values):.4f}" if len(values) > 1 else "", len(values),
                             " ".join(map(str, entry.values)), "" if paper is None else paper,
                             entry.shared_with or "",
                             "" if number is None else "yes" if number.is_verified() else "no"])


def plot_heatmap(family: str, collected: dict[tuple[str, str], MatrixCell], path: Path) -> None:
    """Means as colours (missing cells grey, labelled ``missing``), the number of seeds in each cell."""
    benchmarks, titles = list(BENCHMARKS), rows(family)
    methods = list(titles)
    grid = np.array([[collected[(b, m)].mean for b in benchmarks] for m in methods])
    figure = Figure(figsize=(2.2 * len(benchmarks) + 2, 0.55 * len(methods) + 2))
    axes = figure.add_subplot()
    colours = axes.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=100, cmap="viridis", aspect="auto")
    axes.set_facecolor("0.85")
    for row, method in enumerate(methods):
        for column, benchmark in enumerate(benchmarks):
            entry = collected[(benchmark, method)]
            label = MISSING if not entry.values else f"{entry.mean:.1f}\n(n={len(entry.values)})"
            axes.text(column, row, label, ha="center", va="center", fontsize=8,
                      color="black" if not entry.values or entry.mean > 60 else "white")
    axes.set_xticks(range(len(benchmarks)), [BENCHMARKS[b].title.replace(" (", "\n(") for b in benchmarks],
                    fontsize=8)
    axes.set_yticks(range(len(methods)), list(titles.values()))
    axes.set_title(f"Unbiased accuracy (%), {family} family, end of training")
    figure.colorbar(colours, ax=axes)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def build(family: str, out_dir: str | Path, repo: str | Path = ".", root: str | None = None) -> dict[str, Any]:
    """Write ``matrix_<family>.md``, ``.csv`` and ``_heatmap.png`` into ``out_dir``; return the markdown."""
    collected = collect(family, repo, root=root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render(family, collected)
    (out / f"matrix_{family}.md").write_text(markdown)
    write_csv(family, collected, out / f"matrix_{family}.csv")
    plot_heatmap(family, collected, out / f"matrix_{family}_heatmap.png")
    return {"markdown": markdown, "cells": collected}

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
Table layouts live in reports/layouts.py (:data:`TABLES`; a new task adds one :class:`TableLayout` entry), the
published numbers in reports/paper_numbers.py (each with its source; a paper cell not checked against it is marked
``(unverified)``). This script is the command line only: reading, aggregation, rendering and plots are the
``reports`` package's (results, aggregate, render, build; cmnist_tables, matrix_report, readme).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# The reports package's API, importable from here as before (tests and other scripts load this file).
from reports.aggregate import Cell, aggregate, mean_cell_matrices  # noqa: E402
from reports.build import Report, build_report  # noqa: E402
from reports.layouts import (AVERAGE, MISSING, RESULTS_FILENAME, SHORTENED_MARK, TABLES,  # noqa: E402
                             UNVERIFIED_MARK, WORST_GROUP, WORST_GROUP_LABEL, Column, TableLayout)
from reports.render import (footnotes, format_cell, format_paper, plot_cell_heatmap,  # noqa: E402
                            plot_metric_vs_setting, render_markdown, write_csv)
from reports.results import (ReportError, ReportWarning, Run, load_results, parse_results,  # noqa: E402
                             run_precision, worst_group_accuracy)

__all__ = ["AVERAGE", "MISSING", "RESULTS_FILENAME", "SHORTENED_MARK", "TABLES", "UNVERIFIED_MARK", "WORST_GROUP",
           "WORST_GROUP_LABEL", "Cell", "Column", "Report", "ReportError", "ReportWarning", "Run", "TableLayout",
           "aggregate", "build_report", "footnotes", "format_cell", "format_paper", "load_results", "main",
           "matrix_main", "mean_cell_matrices", "parse_results", "plot_cell_heatmap", "plot_metric_vs_setting",
           "render_markdown", "reproduction_main", "run_precision", "worst_group_accuracy", "write_csv"]

class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors (unknown flags, missing or bad values) are one line ``error: ...``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (run with --help for the usage)", file=sys.stderr)
        sys.exit(2)


def reproduction_main(argv: list[str]) -> int:
    """``report.py lff|cmnist RESULTS_DIR [--out DIR]``: the Colored MNIST reproduction tables, CSV and plots
    (reports/cmnist_tables.py; a results file it cannot read, or a folder none of whose runs enters the tables, is one
    line naming it and why, exit 1); ``report.py readme [--check]``: regenerate the generated tables of README.md and
    docs/*.md from the committed ``results/`` (``--check``: exit 1 if any page differs instead of writing it)."""
    from reports import cmnist_tables, readme as readme_blocks

    parser = OneLineErrorParser(description=reproduction_main.__doc__)
    parser.add_argument("which", choices=("lff", "cmnist", "readme"))
    parser.add_argument("results_dir", nargs="?", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.which == "readme":
        pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
        stale = []
        for page in pages:
            text = page.read_text()
            updated = readme_blocks.regenerate_readme(text, REPO)
            if updated != text:
                stale.append(page.relative_to(REPO).as_posix())
                if not args.check:
                    page.write_text(updated)
        if args.check and stale:
            print(f"error: the generated tables of {', '.join(stale)} differ from what results/ gives; run "
                  "python scripts/report.py readme", file=sys.stderr)
            return 1
        if not args.check:
            print(f"regenerated {', '.join(stale)}" if stale else "README.md and docs/ up to date", file=sys.stderr)
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
    """``report.py matrix [--family mlp|conv] [--out DIR]``: the comparison matrix (reports/matrix_report.py) from
    the results.json files its cells name; exit 1 with one line if a file belongs to another cell."""
    from reports import matrix_report

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

"""One table beside the paper's numbers, by the table names of reproduce.py (reports/tables.py): a stable entry point
to the report builders (reports/build.py's layouts, reports/cmnist_tables.py, reports/matrix_report.py)."""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

TABLE_NAMES = ("rebias_table1", "rebias_table2", "rebias_table3", "lff_cmnist", "disent_cmnist", "disent_cifar10c",
               "disent_bffhq", "matrix_mlp", "matrix_conv")
"""The tables :func:`print_table` knows."""
LAYOUT_TASKS = {"rebias_table1": "biased_mnist", "rebias_table2": "imagenet", "rebias_table3": "action",
                "disent_cifar10c": "disent_cifar10c", "disent_bffhq": "disent_bffhq"}
"""Tables built from reports/layouts.py, by the ``task`` of their results.json."""
NO_RUNS = "no runs yet"


def print_table(name: str, results_dir: str | Path, cells: list[str] | None = None) -> str:
    """The table ``name`` from the runs under ``results_dir``, beside the paper's numbers, as markdown text.

    Signature (stable)::

        print_table(name: str, results_dir: str | Path, cells: list[str] | None = None) -> str

    ``name`` is one of :data:`TABLE_NAMES`: ``rebias_table1`` (Biased MNIST), ``rebias_table2`` (9-class ImageNet),
    ``rebias_table3`` (Kinetics-10 -> Mimetics-10), ``lff_cmnist`` (LfF's Colored MNIST table, LfF's protocol),
    ``disent_cmnist`` (DisEnt Table 1, Colored MNIST: one table per data variant found, the default ``lff:lff``
    first), ``disent_cifar10c``, ``disent_bffhq`` (DisEnt Table 1), ``matrix_mlp``, ``matrix_conv`` (the comparison
    matrix of that family).

    ``results_dir`` is searched recursively for ``results.json`` files (for the matrix: the ``--root`` of its
    main_matrix.py runs, e.g. ``results/matrix``; its cells shared with the paper tables are read from their own
    folders relative to the current directory, as ``python scripts/report.py matrix`` does). A missing or empty
    folder is not an error: the table then holds the paper's numbers only and says ``no runs yet``.

    ``cells`` selects the rows or columns reproduce.py calls cells (None: all): the train correlations of Table 1
    (``"0.997"``), the methods of Tables 2 and 3 (``"ReBias"``; ``"Vanilla"`` also shows its g, ``"Biased"``), the
    bias-conflicting percentages of the Colored MNIST, Corrupted CIFAR-10 and BFFHQ tables (``"1pct"`` or ``"1"``),
    the benchmarks of the matrix (``"cmnist_lff_1pct"``). With a selection, Table 1's and DisEnt's avg row (an
    average over every setting) is left out.

    Cells hold paper-length runs only, as the report's tables do; each paper number says ``paper`` or ``paper,
    unverified`` (reports/paper_numbers.py). The text is returned, not printed. Raises ``ValueError`` for an unknown
    table or cell, and the builders' errors (``ValueError`` subclasses naming the file) for a Colored MNIST or
    matrix results.json they cannot read; the layout tables skip unreadable files and say how many.
    """
    if name not in TABLE_NAMES:
        raise ValueError(f"unknown table {name!r} (tables: {', '.join(TABLE_NAMES)})")
    results_dir = Path(results_dir)
    if name in LAYOUT_TASKS:
        return _layout_table(LAYOUT_TASKS[name], results_dir, cells)
    if name in ("lff_cmnist", "disent_cmnist"):
        return _cmnist_table(name, results_dir, cells)
    return _matrix_table(name.removeprefix("matrix_"), results_dir, cells)


def _percent(cell: object) -> float:
    """``"0.5pct"``, ``"0.5"`` or ``0.5`` -> 0.5."""
    return round(float(str(cell).strip().removesuffix("pct")), 6)


def _choose(cells: Iterable[object] | None, known: dict[object, object], what: str) -> list[object] | None:
    """The known keys that ``cells`` name (in the table's order), or None for all; ValueError for an unknown one."""
    if cells is None:
        return None
    if isinstance(cells, (str, int, float)):
        cells = [cells]
    chosen = set()
    for cell in cells:
        matches = [key for key, parse in known.items() if parse(cell)]
        if not matches:
            raise ValueError(f"unknown {what} {cell!r} (known: {', '.join(map(str, known))})")
        chosen.update(matches)
    return [key for key in known if key in chosen]


def _number_matcher(value: float):
    def matches(cell: object) -> bool:
        try:
            return _percent(cell) == round(float(value), 6)
        except ValueError:
            return False
    return matches


def _layout_table(task: str, results_dir: Path, cells: list[str] | None) -> str:
    from reports.aggregate import aggregate
    from reports.layouts import AVERAGE, TABLES
    from reports.render import footnotes, render_markdown
    from reports.results import ReportError, ReportWarning, load_results

    layout = TABLES[task]
    runs, skipped = [], 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ReportWarning)
        try:
            runs = [run for run in load_results(results_dir, skip_invalid=True) if run.task == task]
        except ReportError:
            runs = []
    skipped = sum(issubclass(warning.category, ReportWarning) for warning in caught)
    table_cells = aggregate(task, runs)
    if layout.methods_as_rows:
        columns = {column.name: (lambda cell, column=column: str(cell) in (column.name, column.method))
                   for column in layout.columns}
        chosen = _choose(cells, columns, "method")
        if chosen is not None:
            table_cells = [cell for cell in table_cells if cell.column in chosen]
    else:
        settings = {value: _number_matcher(value) for value in layout.settings}
        chosen = _choose(cells, settings, layout.setting_name)
        if chosen is not None:
            table_cells = [cell for cell in table_cells if cell.setting != AVERAGE and cell.setting in chosen]
    text = render_markdown(task, table_cells, footnotes(task, runs, include_shortened=False))
    notes = []
    if not runs:
        notes.append(f"{NO_RUNS} under {results_dir}: only the paper's numbers are shown.")
    if skipped:
        notes.append(f"{skipped} unreadable or other results.json file(s) under {results_dir} skipped "
                     f"(python scripts/report.py {results_dir} names them).")
    return text + "".join(f"\n{note}\n" for note in notes)


def _cmnist_table(name: str, results_dir: Path, cells: list[str] | None) -> str:
    from reports.cmnist_tables import LFF_TABLE_VARIANT, PERCENTS, disent_table, lff_table, load_runs, variants_of

    runs = load_runs(results_dir) if results_dir.is_dir() else []
    chosen = _choose(cells, {percent: _number_matcher(percent) for percent in PERCENTS}, "percent")
    percents = tuple(chosen) if chosen is not None else PERCENTS
    protocol = "lff_paper" if name == "lff_cmnist" else "disent"
    mine = [run for run in runs if run.protocol == protocol]
    if name == "lff_cmnist":
        text = "### LfF's Colored MNIST table (LfF's protocol)\n\n" + lff_table(runs, percents)
    else:
        variants = sorted(variants_of(runs), key=lambda variant: (variant != LFF_TABLE_VARIANT, variant))
        text = "\n".join(f"### DisEnt Table 1, Colored MNIST, data {variant} (DisEnt's protocol)\n\n"
                         + disent_table(runs, variant, percents) for variant in variants or [LFF_TABLE_VARIANT])
    if not mine:
        text += f"\n{NO_RUNS} under {results_dir}: only the paper's numbers are shown.\n"
    return text


def _matrix_table(family: str, results_dir: Path, cells: list[str] | None) -> str:
    from reports.matrix_report import BENCHMARKS, collect, render

    chosen = _choose(cells, {benchmark: (lambda cell, benchmark=benchmark: str(cell) == benchmark)
                             for benchmark in BENCHMARKS}, "benchmark")
    collected = collect(family, ".", root=str(results_dir))
    text = f"### The comparison matrix, {family} family\n\n" + render(family, collected, chosen)
    if not any(entry.values for (benchmark, _), entry in collected.items() if chosen is None or benchmark in chosen):
        text += f"\n{NO_RUNS} under {results_dir}: no cell has a finished paper-length run.\n"
    return text

"""reports/: every paper number of every table has a source record, the rendered tables label the unverified ones,
print_table builds each table by name, and the package has no import cycle (issue #24)."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import reports  # noqa: E402
from reports import cmnist_tables, matrix_report, paper_numbers  # noqa: E402
from reports.aggregate import aggregate  # noqa: E402
from reports.layouts import TABLES, UNVERIFIED_MARK  # noqa: E402
from reports.render import render_markdown  # noqa: E402
from utils.matrix import BENCHMARKS, FAMILIES, rows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(f"reports.{module.name}" for module in pkgutil.iter_modules(reports.__path__))


def _has_source(number: paper_numbers.PaperNumber) -> bool:
    return bool(number.citation.strip()) and bool(number.checked_against.strip()) and isinstance(number.verified,
                                                                                                  bool)


def test_every_recorded_number_has_a_citation_and_a_check_record() -> None:
    numbers = list(paper_numbers.all_numbers())
    assert len(numbers) == 50 + 15 + 10 + 8 + 12 + 12 + 3
    for table, key, number in numbers:
        assert _has_source(number), (table, key)
        assert number.label() in (paper_numbers.PAPER, paper_numbers.PAPER_UNVERIFIED)
        if number.std is not None and not number.std_verified:
            assert number.label(with_std=True) == paper_numbers.PAPER_UNVERIFIED


def test_every_layout_cell_with_a_paper_number_has_its_record() -> None:
    for task, layout in TABLES.items():
        assert set(layout.paper) == set(layout.paper_numbers), task
        for key, value in layout.paper.items():
            assert layout.paper_numbers[key].value == value and _has_source(layout.paper_numbers[key]), (task, key)


def test_the_colored_mnist_and_matrix_numbers_are_the_records() -> None:
    for method, by_percent in paper_numbers.LFF_PAPER.items():
        for percent, (mean, std) in by_percent.items():
            number = paper_numbers.LFF_CMNIST[method][percent]
            assert (number.value, number.std) == (mean, std) and _has_source(number)
    for method, by_percent in paper_numbers.DISENT_PAPER.items():
        for percent, (mean, std) in by_percent.items():
            number = paper_numbers.DISENT_TABLE1["cmnist"][method][percent]
            assert (number.value, number.std) == (mean, std) and _has_source(number)
    for family in FAMILIES:
        for benchmark in BENCHMARKS:
            for method in rows(family):
                value = matrix_report.paper_value(family, benchmark, method)
                number = matrix_report.paper_number(family, benchmark, method)
                assert (value is None) == (number is None)
                assert number is None or (number.value == value and _has_source(number))


def test_what_was_checked_and_the_duplicate_is_recorded() -> None:
    assert all(number.verified for table, _, number in paper_numbers.all_numbers() if table.startswith("rebias"))
    disent = paper_numbers.DISENT_TABLE1["cmnist"]
    assert {(method, percent) for method, by_percent in disent.items() for percent, number in by_percent.items()
            if number.verified} == {("Vanilla", 0.5), ("Vanilla", 5.0)}
    assert "84.79" in disent["LfF"][5.0].note and "84.79" in disent["DisEnt"][2.0].note
    assert disent["LfF"][5.0].value == disent["DisEnt"][2.0].value == 84.79
    vanilla = paper_numbers.LFF_CMNIST["Vanilla"][5.0]
    assert vanilla.std == 0.44 and "0.13" in vanilla.note and vanilla.label(with_std=True) == "paper, unverified"


def test_layout_tables_mark_unverified_paper_numbers_only() -> None:
    markdown = render_markdown("disent_cmnist", aggregate("disent_cmnist", []))
    rows_ = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in markdown.splitlines()
             if line.startswith("| Unbiased")}
    vanilla_paper, lff_paper = 1, 4
    assert rows_["Unbiased conflicting %=0.5"][vanilla_paper] == "35.2"
    assert rows_["Unbiased conflicting %=1"][vanilla_paper] == "52.1" + UNVERIFIED_MARK
    assert rows_["Unbiased conflicting %=5"][lff_paper] == "84.8" + UNVERIFIED_MARK
    assert "`(unverified)`: a paper number" in markdown
    rebias = render_markdown("biased_mnist", aggregate("biased_mnist", []))
    assert "unverified" not in rebias and "| 64.2 |" in rebias


def test_colored_mnist_and_matrix_tables_mark_unverified_paper_numbers() -> None:
    lff = cmnist_tables.lff_table([])
    paper_row = next(line for line in lff.splitlines() if line.startswith("| Vanilla | paper (LfF) |"))
    assert paper_row.count("(unverified)") == 4 and "35.34 ± 0.13 (unverified)" in paper_row
    disent = cmnist_tables.disent_table([], "lff:lff")
    assert "| DisEnt | paper (DisEnt Table 1) | 65.22 ± 1.37 (unverified) |" in disent
    entry = matrix_report.MatrixCell(values={0: 75.0})
    assert entry.text(matrix_report.paper_number("mlp", "cmnist_disent_1pct", "disent")).endswith(
        "[paper, unverified 81.3]")
    assert entry.text(matrix_report.paper_number("mlp", "cmnist_lff_1pct", "lff")).endswith("[paper 74.0]")


def test_print_table_without_runs_shows_the_paper_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the matrix reads its shared cells relative to the current directory
    for name in reports.TABLE_NAMES:
        text = reports.print_table(name, tmp_path / "none")
        assert "no runs yet" in text, name
    table1 = reports.print_table("rebias_table1", tmp_path, cells=["0.997"])
    assert "ρ=.997" in table1 and "ρ=.999" not in table1 and "| 64.2 |" in table1
    table2 = reports.print_table("rebias_table2", tmp_path, cells=["ReBias"])
    assert "| ReBias |" in table2 and "| RUBi |" not in table2 and "91.9" in table2
    lff = reports.print_table("lff_cmnist", tmp_path, cells=["1pct"])
    assert "50.34 ± 0.16" in lff and "35.34" not in lff
    matrix = reports.print_table("matrix_mlp", tmp_path, cells=["cmnist_lff_1pct"])
    assert "| method | Colored MNIST 1% (LfF protocol) |\n" in matrix
    with pytest.raises(ValueError, match="unknown table"):
        reports.print_table("table9", tmp_path)
    with pytest.raises(ValueError, match="unknown rho"):
        reports.print_table("rebias_table1", tmp_path, cells=["0.5"])


def test_print_table_with_a_run(tmp_path: Path) -> None:
    run = {"task": "disent_bffhq", "method": "DisEnt", "percent": 0.5, "seed": 0, "metrics": {"test": 60.0},
           "protocol": {"name": "disent", "paper_length": True}}
    path = tmp_path / "bffhq" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(run))
    text = reports.print_table("disent_bffhq", tmp_path)
    assert "60.0 ± – (n=1)" in text and "| 63.9 |" in text and "no runs yet" not in text


@pytest.mark.parametrize("module", MODULES)
def test_each_reports_module_imports_alone(module: str) -> None:
    """A fresh interpreter imports each module first: an import cycle inside reports/ would fail here."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_reports_has_no_import_cycle() -> None:
    """The imports between reports/ modules (at module level) form no cycle."""
    import ast

    graph = {}
    for module in MODULES:
        tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
        graph[module] = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                         and (node.module or "").startswith("reports.")}
        graph[module] |= {f"reports.{alias.name}" for node in tree.body if isinstance(node, ast.ImportFrom)
                          and node.module == "reports" for alias in node.names}
    state: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert state.get(module) != 1, f"import cycle: {' -> '.join((*path, module))}"
        if state.get(module) == 2 or module not in graph:
            return
        state[module] = 1
        for imported in sorted(graph[module]):
            visit(imported, (*path, module))
        state[module] = 2

    for module in MODULES:
        visit(module, ())

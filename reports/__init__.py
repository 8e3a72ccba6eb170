"""Reporting: the paper tables, the published numbers they compare against and how they are built, apart from the
training code (as DomainBed keeps collect_results / model_selection / reporting apart).

- ``paper_numbers``: every published number, with its source and whether it was checked (pure Python).
- ``layouts``: the table layouts of ``python scripts/report.py RESULTS_DIR`` (ReBias Tables 1-3, DisEnt Table 1).
- ``results``: reading and validating ``results.json`` files into runs.
- ``aggregate``: cells over seeds (mean, std, avg rows, shortened runs kept apart), per-cell matrices.
- ``render``: markdown, CSV and plots of those cells; ``build``: all of it for a results folder.
- ``cmnist_tables``: the Colored MNIST reproduction tables (LfF's table, DisEnt's, the renderings).
- ``matrix_report``: the comparison matrix (its declarations stay in utils/matrix.py, shared with training).
- ``readme``: the README's generated blocks. ``summary``: :func:`print_table`, one table by name.
- ``tables``: the run plans of reproduce.py.

Importing the package is light (no numpy, matplotlib or torch); the builders load when used. ``scripts/report.py``
is the command line.
"""
from __future__ import annotations

from reports.summary import TABLE_NAMES, print_table

__all__ = ["TABLE_NAMES", "print_table"]

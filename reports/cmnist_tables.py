"""Colored MNIST reproduction tables from ``results.json`` files: LfF's own table, DisEnt's table and the comparison
of Colored MNIST renderings (palette:renderer variants) that decides DisEnt's data.

Every protocol value of a run comes from its own ``results.json`` (the evaluation history and the final metrics):

- ``best_test``: the highest test accuracy over the evaluations, i.e. model selection on the test set. It is the
  protocol of DisEnt's code (its author confirmed it) and is flagged wherever it is shown.
- ``last``: test accuracy after the last training step (LfF's code reports its last model).
- ``best_valid``: test accuracy at the evaluation with the highest valid accuracy (ties: the later one); only for
  data with a valid split (DisEnt's layout; its valid split has the training set's bias ratio).
- ``worst_group``: the lowest (digit, colour) cell accuracy on the test split after the last step.

The headline accuracy is plain test accuracy for DisEnt's protocol and the mean over the 10 x 10 (digit, colour)
cells for LfF's (its "unbiased" accuracy). Only paper-length runs (the protocol's full step count, no limit flags)
enter the tables; the others are counted in a footnote. The paper rows come from reports/paper_numbers.py; a paper
cell whose record (mean and std) is not verified is marked ``(unverified)``. The README's generated blocks are
filled by reports/readme.py.
"""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.paper_numbers import (DISENT_PAPER, DISENT_TABLE1, LFF_CMNIST, LFF_PAPER, UNVERIFIED_EXPLAINED,
                                   UNVERIFIED_MARK, PaperNumber)
from utils.protocol import paper_protocol, run_protocol

PROTOCOL_STEPS = {name: paper_protocol("disent_cmnist", {"preset": preset}).length
                  for name, preset in (("disent", None), ("lff_paper", "lff_paper"))}
HEADLINE = {"disent": "test", "lff_paper": "test_cell_mean"}
PERCENTS = (0.5, 1.0, 2.0, 5.0)
METHODS = ("Vanilla", "LfF", "DisEnt")
TABLE_METHODS = {"lff": ("Vanilla", "LfF"), "cmnist": METHODS}
"""The methods each ``report.py lff|cmnist`` table set has rows for (variants such as ``LfF[bias_loss=ce]`` have
none: docs/disent_lff_comparison.md reports them)."""
LFF_TABLE_VARIANT = "lff:lff"
"""LfF's own colours and rendering (palette:renderer): the data variant of LfF's table, and of the DisEnt table's
default runs."""
PROTOCOL_LABELS = {
    "best_test": "best test ⚠ (selected on test; DisEnt's protocol)",
    "last": "last step",
    "best_valid": "best valid (selected on valid)",
    "worst_group": "worst group, last step",
}
@dataclass(frozen=True)
class CMNISTRun:
    """The numbers of one Colored MNIST run that the tables use."""

    path: Path
    method: str
    percent: float
    seed: int
    protocol: str
    variant: str
    steps: int
    paper_length: bool
    values: dict[str, float | None]


def _worst_group(per_cell: list[list[float | None]]) -> float | None:
    cells = [value for row in per_cell for value in row if value is not None]
    return min(cells) if cells else None


class ResultsError(ValueError):
    """A results.json that cannot be read, a Colored MNIST one without the entries the tables need, or a results
    folder none of whose runs the tables show; the message names the file or folder."""


def parse_run(path: Path) -> CMNISTRun | None:
    """A Colored MNIST run of train_disent.py, or None for any other results.json; :class:`ResultsError` for a file
    that is not JSON, not an object, or lacks what the tables read."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: cannot be read as JSON ({error})") from None
    if not isinstance(results, dict):
        raise ResultsError(f"{path}: top level must be a JSON object, got {type(results).__name__}")
    if results.get("task") != "disent_cmnist":
        return None
    try:
        return _run_of(Path(path), results)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ResultsError(f"{path}: not a complete results file of train_disent.py ({type(error).__name__}: "
                           f"{error})") from None


def _run_of(path: Path, results: dict[str, Any]) -> CMNISTRun:
    """The numbers of a Colored MNIST results file (KeyError, TypeError, ... for missing or mistyped entries)."""
    config = results["config"]
    protocol = "lff_paper" if config.get("preset") == "lff_paper" else "disent"
    variant_source = results.get("data_variant") or config
    variant = f"{variant_source.get('palette', 'hues')}:{variant_source.get('render', 'lff')}"
    key = HEADLINE[protocol]
    history = [record["metrics"]["f"] for record in results["history"]]
    best_valid = None
    if history and "valid" in history[0]:
        best_valid_record = max(reversed(history), key=lambda metrics: metrics["valid"])
        best_valid = best_valid_record[key]
    steps = int(results["global_step"])
    recorded = results.get("protocol") or run_protocol("disent_cmnist", config, None, steps)
    paper_length = recorded["paper_length"]
    values = {"best_test": max(metrics[key] for metrics in history) if history else None,
              "last": results["final_metrics"][key], "best_valid": best_valid,
              "worst_group": _worst_group(results["per_cell_accuracy"]["test"])}
    return CMNISTRun(path, results["method"], float(results["percent"]), int(results["seed"]), protocol,
                     variant, steps, paper_length, values)


def load_runs(results_dir: str | Path) -> list[CMNISTRun]:
    """Every Colored MNIST run under ``results_dir`` (recursively), sorted by path."""
    if not Path(results_dir).is_dir():
        raise ResultsError(f"{results_dir}: not a directory")
    runs = [parse_run(path) for path in sorted(Path(results_dir).rglob("results.json"))]
    return [run for run in runs if run is not None]


@dataclass(frozen=True)
class Summary:
    """mean ± sample std (ddof 1) over seeds of one cell."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if self.n > 1 else None

    def format(self) -> str:
        if not self.values:
            return "–"
        spread = f" ± {self.std:.2f}" if self.std is not None else ""
        return f"{self.mean:.2f}{spread} (n={self.n})"


def summarise(runs: list[CMNISTRun], protocol_value: str) -> dict[tuple[str, str, float], Summary]:
    """``{(variant, method, percent): Summary}`` of one protocol value over the seeds of paper-length runs."""
    grouped: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for run in sorted(runs, key=lambda run: run.seed):
        value = run.values[protocol_value]
        if run.paper_length and value is not None:
            grouped[(run.variant, run.method, run.percent)].append(value)
    return {key: Summary(tuple(values)) for key, values in grouped.items()}


UNVERIFIED_NOTE = f"`{UNVERIFIED_MARK.strip()}`: a paper number whose mean or std is {UNVERIFIED_EXPLAINED}"


def _paper(number: PaperNumber | None) -> str:
    """``mean ± std`` of a paper cell, then ``(unverified)`` unless mean and std are verified (the row or column says
    ``paper``, so the cell reads "paper" or "paper, unverified"); ``–`` without one."""
    if number is None:
        return "–"
    text = f"{number.value:.2f} ± {number.std:.2f}"
    return text if number.is_verified(with_std=True) else text + UNVERIFIED_MARK


def _unverified_note(numbers: list[PaperNumber | None]) -> str:
    shown = [number for number in numbers if number is not None]
    return "" if all(number.is_verified(with_std=True) for number in shown) else f"\n{UNVERIFIED_NOTE}\n"


def _footnote(runs: list[CMNISTRun], methods: tuple[str, ...] = METHODS) -> str:
    """The note on the shortened runs of ``methods`` among ``runs`` (those a table would show at full length)."""
    shortened = [run for run in runs if not run.paper_length and run.method in methods]
    if not shortened:
        return ""
    return (f"\n{len(shortened)} shortened run(s) (fewer steps than the protocol's "
            f"{', '.join(sorted({str(PROTOCOL_STEPS[run.protocol]) for run in shortened}))}) are not shown.\n")


def _ratio_table(runs: list[CMNISTRun], variant: str, methods: tuple[str, ...], protocols: tuple[str, ...],
                 paper: dict[str, dict[float, PaperNumber]], paper_label: str, header: tuple[str, ...],
                 percents: tuple[float, ...] = PERCENTS) -> str:
    summaries = {protocol: summarise(runs, protocol) for protocol in protocols}
    lines = ["| method | numbers | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(header)]
    for method in methods:
        lines.append(f"| {method} | {paper_label} | "
                     + " | ".join(_paper(paper.get(method, {}).get(p)) for p in percents) + " |")
        for protocol in protocols:
            cells = [summaries[protocol].get((variant, method, percent), Summary(())).format() for percent in percents]
            lines.append(f"| {method} | {PROTOCOL_LABELS[protocol]} | " + " | ".join(cells) + " |")
    shown = [paper.get(method, {}).get(p) for method in methods for p in percents]
    return "\n".join(lines) + "\n" + _unverified_note(shown)


def lff_table(runs: list[CMNISTRun], percents: tuple[float, ...] = PERCENTS) -> str:
    """LfF's own Colored MNIST table: unbiased (cell-mean) test accuracy, LfF's protocol, beside the paper."""
    runs = [run for run in runs if run.protocol == "lff_paper" and run.variant == LFF_TABLE_VARIANT]
    header = tuple(f"{100 - p:g} % aligned ({p:g} % conflicting)" for p in percents)
    return _ratio_table(runs, LFF_TABLE_VARIANT, TABLE_METHODS["lff"], ("last", "best_test", "worst_group"),
                        LFF_CMNIST, "paper (LfF)", header, percents) + _footnote(runs, TABLE_METHODS["lff"])


def disent_table(runs: list[CMNISTRun], variant: str, percents: tuple[float, ...] = PERCENTS) -> str:
    """DisEnt's Colored MNIST table for one data variant, every protocol, beside the paper."""
    runs = [run for run in runs if run.protocol == "disent" and run.variant == variant]
    header = tuple(f"{p:g} pct" for p in percents)
    return _ratio_table(runs, variant, METHODS, ("best_test", "last", "best_valid", "worst_group"),
                        DISENT_TABLE1["cmnist"], "paper (DisEnt Table 1)", header, percents) + _footnote(runs)


def renderer_table(runs: list[CMNISTRun], percent: float = 1.0) -> str:
    """Every data variant's DisEnt-protocol runs at one ratio: a row per (variant, method), a column per protocol."""
    runs = [run for run in runs if run.protocol == "disent" and run.percent == percent]
    variants = sorted({run.variant for run in runs})
    protocols = ("best_test", "last", "best_valid", "worst_group")
    summaries = {protocol: summarise(runs, protocol) for protocol in protocols}
    lines = ["| palette:renderer | method | paper | " + " | ".join(PROTOCOL_LABELS[p] for p in protocols) + " |",
             "|---|---|---|" + "---|" * len(protocols)]
    for variant in variants:
        for method in METHODS:
            cells = [summaries[p].get((variant, method, percent), Summary(())).format() for p in protocols]
            lines.append(f"| {variant} | {method} | {_paper(DISENT_TABLE1['cmnist'][method].get(percent))} | "
                         + " | ".join(cells) + " |")
    shown = [DISENT_TABLE1["cmnist"][method].get(percent) for method in METHODS] if variants else []
    return "\n".join(lines) + "\n" + _unverified_note(shown) + _footnote(runs)


def plot_accuracy_vs_ratio(runs: list[CMNISTRun], variant: str, protocol_value: str,
                           paper: dict[str, dict[float, tuple[float, float]]], methods: tuple[str, ...],
                           title: str, path: str | Path) -> None:
    """Accuracy vs conflicting percentage per method (mean ± std over seeds), paper values as x markers."""
    from matplotlib.figure import Figure

    summaries = summarise(runs, protocol_value)
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for index, method in enumerate(methods):
        colour = f"C{index}"
        points = [(p, summaries[(variant, method, p)]) for p in PERCENTS if (variant, method, p) in summaries]
        if points:
            axes.errorbar([p for p, _ in points], [s.mean for _, s in points],
                          yerr=[s.std or 0.0 for _, s in points], color=colour, marker="o", capsize=3,
                          label=f"{method} (ours)")
        published = [(p, value[0]) for p, value in sorted(paper.get(method, {}).items())]
        axes.plot([p for p, _ in published], [v for _, v in published], linestyle="none", marker="x",
                  markersize=9, color=colour, label=f"{method} (paper)")
    axes.set_xscale("log")
    axes.set_xticks(PERCENTS, [f"{p:g}" for p in PERCENTS])
    axes.set_xlabel("bias-conflicting samples in training (%)")
    axes.set_ylabel("unbiased test accuracy (%)")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120, metadata={"Software": None})


def write_csv(runs: list[CMNISTRun], path: str | Path) -> None:
    """One row per run: its identity and every protocol value."""
    columns = ("protocol", "variant", "method", "percent", "seed", "steps", "paper_length", *PROTOCOL_LABELS)
    lines = [",".join(columns)]
    for run in sorted(runs, key=lambda r: (r.protocol, r.variant, r.method, r.percent, r.seed)):
        values = ["" if run.values[key] is None else f"{run.values[key]:.4f}" for key in PROTOCOL_LABELS]
        lines.append(",".join([run.protocol, run.variant, run.method, f"{run.percent:g}", str(run.seed),
                               str(run.steps), str(run.paper_length), *values]))
    Path(path).write_text("\n".join(lines) + "\n")


def variants_of(runs: list[CMNISTRun]) -> list[str]:
    return sorted({run.variant for run in runs if run.protocol == "disent"})


def section_name(variant: str) -> str:
    return f"disent_cmnist_{variant.replace(':', '_')}"


TABLE_PROTOCOLS = {"lff": "lff_paper", "cmnist": "disent"}
"""The protocol of the runs each ``report.py lff|cmnist`` table set shows."""
PROTOCOL_NAMES = {"lff_paper": "of LfF's protocol (python scripts/report.py lff reads them)",
                  "disent": "of DisEnt's protocol (python scripts/report.py cmnist reads them)"}


def left_out(runs: list[CMNISTRun], which: str) -> dict[str, int]:
    """Why runs are not in the ``which`` ('lff' or 'cmnist') tables: ``{reason: number of runs}``."""
    reasons: dict[str, int] = defaultdict(int)
    for run in runs:
        if run.protocol != TABLE_PROTOCOLS[which]:
            reasons[PROTOCOL_NAMES[run.protocol]] += 1
        elif run.method not in TABLE_METHODS[which]:
            reasons[f"of {run.method}, which the tables have no row for"] += 1
        elif which == "lff" and run.variant != LFF_TABLE_VARIANT:
            reasons[f"of data variant {run.variant} (LfF's table shows {LFF_TABLE_VARIANT})"] += 1
        elif not run.paper_length:
            reasons[f"shortened (fewer steps than the protocol's {PROTOCOL_STEPS[run.protocol]} or limited "
                    f"batches)"] += 1
    return dict(reasons)


def describe_left_out(reasons: dict[str, int]) -> str:
    """E.g. ``3 run(s) of LfF's protocol (...); 1 run(s) shortened (...)``."""
    return "; ".join(f"{count} run(s) {reason}" for reason, count in sorted(reasons.items()))


def sections(runs: list[CMNISTRun], which: str) -> dict[str, str]:
    """The markdown tables of ``which``: 'lff' (LfF's table) or 'cmnist' (renderers at 1 pct, DisEnt per variant)."""
    if which == "lff":
        return {"lff_cmnist": lff_table(runs)}
    return {"cmnist_renderers_1pct": renderer_table(runs),
            **{section_name(variant): disent_table(runs, variant) for variant in variants_of(runs)}}


def build(results_dir: str | Path, out_dir: str | Path, which: str) -> dict[str, Any]:
    """Write ``which`` ('lff' or 'cmnist') tables (markdown), CSV and plots into ``out_dir``; return the markdown,
    the runs and why runs were left out (:func:`left_out`). Nothing is written, and :class:`ResultsError` says why,
    when no run would enter the tables."""
    runs = load_runs(results_dir)
    reasons = left_out(runs, which)
    if not runs:
        raise ResultsError(f"{results_dir}: no Colored MNIST results.json (task disent_cmnist) found")
    if sum(reasons.values()) == len(runs):
        raise ResultsError(f"{results_dir}: every one of the {len(runs)} Colored MNIST runs was left out of the "
                           f"{which} tables: {describe_left_out(reasons)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = sections(runs, which)
    if which == "lff":
        plot_accuracy_vs_ratio([r for r in runs if r.protocol == "lff_paper"], LFF_TABLE_VARIANT, "last", LFF_PAPER,
                               ("Vanilla", "LfF"), "LfF's Colored MNIST, LfF's protocol: last step",
                               out / "lff_cmnist_unbiased_vs_ratio.png")
    else:
        for variant in variants_of(runs):
            name = section_name(variant)
            plot_accuracy_vs_ratio(runs, variant, "best_test", DISENT_PAPER, METHODS,
                                   f"DisEnt Colored MNIST ({variant}): best test (paper protocol)",
                                   out / f"{name}_best_test_vs_ratio.png")
            plot_accuracy_vs_ratio(runs, variant, "last", DISENT_PAPER, METHODS,
                                   f"DisEnt Colored MNIST ({variant}): last step",
                                   out / f"{name}_last_vs_ratio.png")
    write_csv(runs, out / f"{which}_runs.csv")
    markdown = "".join(f"### {name}\n\n{table}\n" for name, table in tables.items())
    (out / f"{which}_tables.md").write_text(markdown)
    return {"sections": tables, "markdown": markdown, "runs": runs, "left_out": reasons}

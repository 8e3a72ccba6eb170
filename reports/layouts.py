"""Table layouts of the paper tables that ``python scripts/report.py RESULTS_DIR`` builds (ReBias Tables 1-3, DisEnt
Table 1 per dataset): how a task's results map onto the paper's table, with the published numbers of
reports/paper_numbers.py. A new task adds one :class:`TableLayout` entry to :data:`TABLES`."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reports.paper_numbers import (AVERAGE, DISENT_TABLE1, REBIAS_TABLE1, REBIAS_TABLE2, REBIAS_TABLE3,
                                   UNVERIFIED_MARK, PaperNumber)

RESULTS_FILENAME = "results.json"
MISSING = "–"
WORST_GROUP = "worst_group"
"""Pseudo-metric of every table: the lowest (target, bias) cell accuracy of f on the layout's
``worst_group_loader`` (empty cells skipped), the group-robustness convention (SubpopBench's worst-group
accuracy)."""
WORST_GROUP_LABEL = "Worst-group"
SHORTENED_MARK = "*"


@dataclass(frozen=True)
class Column:
    """A table column: the ``network`` of runs of ``method`` (None = the target net f, i = the i-th biased net g)."""

    name: str
    method: str
    network: int | None = None


@dataclass(frozen=True)
class TableLayout:
    """How a task's results map onto the paper's table.

    ``setting_key`` is the top-level results.json key that varies across rows (e.g. ``train_correlation``), shown
    as ``setting_symbol`` in tables and plots and as ``setting_name`` in CSV headers and file names; ``settings``
    maps its values to row labels in table order. ``metrics`` maps keys of the ``metrics`` dicts to row-group
    labels. ``paper`` maps ``(metric, setting value or "avg", column)`` to the published number. ``plot_metrics``
    are plotted against the setting; ``cell_metrics`` are the ``per_cell_accuracy`` keys drawn as heatmaps, whose
    (row, column) axes are named by ``cell_axes`` and whose matrices must have shape ``cell_shape`` (other keys are
    not read). ``optional_metrics`` may be absent from a run (their cells count the runs that have them).
    ``methods_as_rows`` transposes the table (ReBias Table 2): one row per column (method) and setting, one group
    of columns per metric, and no avg row. ``worst_group_loader`` is the ``per_cell_accuracy`` key whose lowest
    cell gives the worst-group row (column, when transposed); None = not available (shown as ``–``).
    ``paper_numbers`` holds the same keys as ``paper`` with each number's record (reports/paper_numbers.py: source,
    verified or not); :func:`paper_layout_numbers` builds both from the records.
    """

    title: str
    setting_key: str
    setting_symbol: str
    setting_name: str
    settings: dict[float, str]
    metrics: dict[str, str]
    columns: tuple[Column, ...]
    paper: dict[tuple[str, float | str, str], float]
    plot_metrics: tuple[str, ...] = ()
    cell_axes: tuple[str, str] = ("class", "bias")
    cell_metrics: tuple[str, ...] = ()
    cell_shape: tuple[int, int] | None = None
    optional_metrics: tuple[str, ...] = ()
    methods_as_rows: bool = False
    worst_group_loader: str | None = None
    paper_numbers: Mapping[tuple[str, float | str, str], PaperNumber] = field(default_factory=dict)

    def metric_label(self, metric: str) -> str:
        """A metric's row-group label; the worst-group pseudo-metric is ``Worst-group``."""
        return WORST_GROUP_LABEL if metric == WORST_GROUP else self.metrics[metric]

    def cell_keys(self) -> tuple[str, ...]:
        """The ``per_cell_accuracy`` keys read from results files (heatmaps and the worst-group loader)."""
        extra = (self.worst_group_loader,) if self.worst_group_loader not in (None, *self.cell_metrics) else ()
        return (*self.cell_metrics, *extra)

    def setting_label(self, value: float) -> str:
        """The row label of a setting value, e.g. ``.997``; values outside the layout print as ``%g``."""
        return self.settings.get(value, f"{value:g}")

    def row_label(self, metric: str, setting: float | str) -> str:
        """E.g. ``Unbiased ρ=.997`` or ``Unbiased avg``."""
        if setting == AVERAGE:
            return f"{self.metric_label(metric)} {AVERAGE}"
        return f"{self.metric_label(metric)} {self.setting_symbol}={self.setting_label(setting)}"

    def methods(self) -> set[str]:
        return {column.method for column in self.columns}




def paper_layout_numbers(numbers: Mapping[tuple[str, float | str, str], PaperNumber]
                         ) -> dict[str, Mapping[tuple[str, float | str, str], float | PaperNumber]]:
    """``{"paper": key -> value, "paper_numbers": key -> record}``: the two TableLayout fields of ``numbers``."""
    return {"paper": {key: number.value for key, number in numbers.items()}, "paper_numbers": dict(numbers)}


TABLES: dict[str, TableLayout] = {
    "biased_mnist": TableLayout(
        title="Biased MNIST (ReBias Table 1), accuracy %",
        setting_key="train_correlation",
        setting_symbol="ρ",
        setting_name="rho",
        settings={0.999: ".999", 0.997: ".997", 0.995: ".995", 0.990: ".990"},
        metrics={"biased": "Biased", "unbiased": "Unbiased"},
        columns=(Column("Vanilla", "Vanilla"), Column("Biased", "Vanilla", network=0),
                 Column("LearnedMixin", "LearnedMixin"), Column("RUBi", "RUBi"), Column("ReBias", "ReBias")),
        **paper_layout_numbers(REBIAS_TABLE1),
        plot_metrics=("unbiased",),
        cell_axes=("digit", "colour"),
        cell_metrics=("unbiased",),
        cell_shape=(10, 10),
        worst_group_loader="unbiased",
    ),
}


_DISENT_COLUMNS = ("Vanilla", "LfF", "DisEnt")


def _disent_layout(title: str, dataset: str, percents: tuple[float, ...]) -> TableLayout:
    """DisEnt Table 1 for one dataset: rows = ratio of bias-conflicting samples, columns = methods; the metric is
    the unbiased test accuracy (BFFHQ: accuracy on bias-conflicting test images). Which paper numbers are verified:
    reports/paper_numbers.py."""
    numbers = DISENT_TABLE1[dataset]
    return TableLayout(
        title=f"{title} (DisEnt Table 1), accuracy %",
        setting_key="percent",
        setting_symbol="conflicting %",
        setting_name="percent",
        settings={value: f"{value:g}" for value in percents},
        metrics={"test": "Unbiased"},
        columns=tuple(Column(name, name) for name in _DISENT_COLUMNS),
        **paper_layout_numbers({("test", percent, column): numbers[column][percent]
                                for percent in percents for column in _DISENT_COLUMNS}),
        plot_metrics=("test",),
        worst_group_loader="test",
    )


TABLES.update({
    "disent_cmnist": _disent_layout("Colored MNIST", "cmnist", (0.5, 1.0, 2.0, 5.0)),
    "disent_cifar10c": _disent_layout("Corrupted CIFAR-10", "cifar10c", (0.5, 1.0, 2.0, 5.0)),
    "disent_bffhq": _disent_layout("BFFHQ", "bffhq", (0.5,)),
})


def _transposed_numbers(numbers: Mapping[tuple[str, str], PaperNumber], setting: float
                        ) -> dict[tuple[str, float, str], PaperNumber]:
    """``(metric, column) -> number`` as the ``(metric, setting, column)`` keys of a methods-as-rows layout."""
    return {(metric, setting, column): number for (metric, column), number in numbers.items()}


TABLES["imagenet"] = TableLayout(
    title="9-class ImageNet (ReBias Table 2), accuracy %",
    setting_key="image_size",
    setting_symbol="image size",
    setting_name="image_size",
    settings={224: "224"},
    metrics={"biased": "Biased", "unbiased": "Unbiased", "imagenet-a": "ImageNet-A"},
    columns=(Column("Vanilla", "Vanilla"), Column("Biased", "Vanilla", network=0),
             Column("LearnedMixin", "LearnedMixin"), Column("RUBi", "RUBi"), Column("ReBias", "ReBias")),
    **paper_layout_numbers(_transposed_numbers(REBIAS_TABLE2, 224)),
    optional_metrics=("imagenet-a",),
    methods_as_rows=True,
)

TABLES["action"] = TableLayout(
    title="Kinetics-10 -> Mimetics-10 (ReBias Table 3), accuracy %",
    setting_key="crop_size",
    setting_symbol="crop size",
    setting_name="crop_size",
    settings={224: "224"},
    metrics={"biased": "Biased (Kinetics-10)", "unbiased": "Unbiased (Mimetics-10)"},
    columns=(Column("Vanilla", "Vanilla"), Column("Biased", "Vanilla", network=0),
             Column("LearnedMixin", "LearnedMixin"), Column("RUBi", "RUBi"), Column("ReBias", "ReBias")),
    **paper_layout_numbers(_transposed_numbers(REBIAS_TABLE3, 224)),
    methods_as_rows=True,
)

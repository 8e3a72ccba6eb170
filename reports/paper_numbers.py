"""Every published number this project compares against, each with where it comes from and whether it was checked.

One place for all of them: the report tables (reports/layouts.py, reports/cmnist_tables.py), the comparison matrix
(reports/matrix_report.py), the plans of reports/tables.py and main_biased_mnist.py's end-of-run comparison read
them from here. Pure Python (no torch, no numpy).

A :class:`PaperNumber` holds the value (and the std where the paper gives one and this project shows it), the
citation (paper and table), ``verified`` (the value was checked against the paper, the authors' repository or a
later paper that re-reports it), ``checked_against`` (what it was checked against, or why it could not be) and
``std_verified`` (the same for the std). A table cell says ``paper`` when what it shows is verified and
``paper, unverified`` otherwise (:meth:`PaperNumber.label`); numbers are never filled from memory: an unverified number keeps
the value it had until a source is read.

Where the values came from first: ReBias' from the authors' repository (clovaai/rebias); LfF's and DisEnt's from
the project's spec (``shared/reference/disent_spec.md`` §7), written from recollection because the PDFs could not
be retrieved. What was checked since, and against what, is in each number's ``checked_against``.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

AVERAGE = "avg"
"""The setting key of a table's average row (ReBias Table 1's "avg.")."""

PAPER = "paper"
PAPER_UNVERIFIED = "paper, unverified"
UNVERIFIED_MARK = " (unverified)"
"""Follows a paper number in a ``paper`` column whose record is not verified: the cell reads "paper, unverified"."""
UNVERIFIED_EXPLAINED = ("not checked against the paper or a later paper that re-reports it; reports/paper_numbers.py "
                        "records each number's source and check.")
"""The end of every table's note on its unverified paper numbers."""


@dataclass(frozen=True)
class PaperNumber:
    """One published number: ``value`` (%, and its ``std`` where given), its ``citation`` and its check."""

    value: float
    citation: str
    verified: bool
    checked_against: str
    std: float | None = None
    std_verified: bool = False
    note: str = ""

    def is_verified(self, with_std: bool = False) -> bool:
        """Whether what a cell shows is checked: the value, and with ``with_std`` the std too (if there is one)."""
        return self.verified and (not with_std or self.std is None or self.std_verified)

    def label(self, with_std: bool = False) -> str:
        """``paper`` or ``paper, unverified`` for a cell that shows the value (and with ``with_std`` its std)."""
        return PAPER if self.is_verified(with_std) else PAPER_UNVERIFIED



# ------------------------------------------------------------------------------------------------------- ReBias
REBIAS_REPO = "the authors' repository clovaai/rebias (commit 79d1d1d)"
REBIAS_TABLE1_CITATION = ("ReBias (Bahng et al., ICML 2020, arXiv 1910.02806) Table 1: Biased MNIST, SimpleConvNet, "
                          "mean of 3 runs")
REBIAS_TABLE1_CHECK = (f"{REBIAS_REPO}, resources/Table1.png (the paper's Table 1 as an image, shown in its README "
                       "under 'Biased MNIST results in Table 1'): every cell read in this project (issue #24); an "
                       "outside check found the same")
REBIAS_TABLE2_CITATION = ("ReBias (Bahng et al., ICML 2020, arXiv 1910.02806) Table 2: 9-class ImageNet, mean of 3 "
                          "runs")
REBIAS_TABLE2_CHECK = (f"{REBIAS_REPO}, README.md 'ImageNet results in Table 2': every cell read in this project "
                       "(issue #24)")
REBIAS_TABLE3_CITATION = "ReBias (Bahng et al., ICML 2020, arXiv 1910.02806) Table 3: Kinetics-10 -> Mimetics-10"
REBIAS_TABLE3_CHECK = (f"{REBIAS_REPO}, README.md 'Action recognition results in Table 3': every cell read in this "
                       "project (issue #24)")

REBIAS_TABLE1_COLUMNS = ("Vanilla", "Biased", "LearnedMixin", "RUBi", "ReBias")
"""ReBias Table 1's columns as this project names them ("Biased" is g, the 1x1-kernel network; HEX is not run)."""
_REBIAS_TABLE1_VALUES: dict[str, dict[float | str, tuple[float, ...]]] = {
    "biased": {
        0.999: (100.0, 100.0, 2.9, 99.9, 100.0),
        0.997: (100.0, 100.0, 6.7, 99.4, 100.0),
        0.995: (100.0, 100.0, 17.5, 99.5, 100.0),
        0.990: (100.0, 100.0, 33.6, 100.0, 100.0),
        AVERAGE: (100.0, 100.0, 15.2, 99.7, 100.0),
    },
    "unbiased": {
        0.999: (10.4, 10.0, 12.1, 13.7, 22.7),
        0.997: (33.4, 10.0, 50.2, 43.0, 64.2),
        0.995: (72.1, 10.0, 78.2, 90.4, 76.0),
        0.990: (89.1, 10.0, 88.3, 93.6, 88.1),
        AVERAGE: (51.2, 10.0, 57.2, 60.2, 62.7),
    },
}
REBIAS_TABLE1: dict[tuple[str, float | str, str], PaperNumber] = {
    (metric, setting, column): PaperNumber(value, REBIAS_TABLE1_CITATION, True, REBIAS_TABLE1_CHECK)
    for metric, rows in _REBIAS_TABLE1_VALUES.items() for setting, values in rows.items()
    for column, value in zip(REBIAS_TABLE1_COLUMNS, values)
}
"""``(metric 'biased'|'unbiased', rho or 'avg', column) -> number``: accuracy (%) on the rho-biased and the unbiased
(rho = 0.1) test sets."""

REBIAS_TABLE2_METRICS = ("biased", "unbiased", "imagenet-a")
REBIAS_TABLE2: dict[tuple[str, str], PaperNumber] = {
    (metric, column): PaperNumber(value, REBIAS_TABLE2_CITATION, True, REBIAS_TABLE2_CHECK)
    for column, values in {
        "Vanilla": (90.8, 88.8, 24.9), "Biased": (67.7, 65.9, 19.5), "LearnedMixin": (67.9, 65.9, 18.8),
        "RUBi": (90.5, 88.6, 27.7), "ReBias": (91.9, 90.5, 29.6)}.items()
    for metric, value in zip(REBIAS_TABLE2_METRICS, values)
}
"""``(metric 'biased'|'unbiased'|'imagenet-a', column) -> number``: standard accuracy, texture-cluster unbiased
accuracy and ImageNet-A accuracy (%); "Vanilla" is ResNet18, "Biased" BagNet18 (Stylised ImageNet is not run)."""

REBIAS_TABLE3: dict[tuple[str, str], PaperNumber] = {
    (metric, column): PaperNumber(value, REBIAS_TABLE3_CITATION, True, REBIAS_TABLE3_CHECK)
    for column, values in {
        "Vanilla": (54.5, 18.9), "Biased": (50.7, 18.4), "LearnedMixin": (11.4, 12.3), "RUBi": (23.6, 13.4),
        "ReBias": (55.8, 22.4)}.items()
    for metric, value in zip(("biased", "unbiased"), values)
}
"""``(metric 'biased' (Kinetics-10) | 'unbiased' (Mimetics-10), column) -> number``: accuracy (%); "Vanilla" is
3D-ResNet, "Biased" 2D-ResNet."""


# ---------------------------------------------------------------------------------------------------------- LfF
LFF_CITATION = ("LfF (Nam et al., NeurIPS 2020, arXiv 2007.02561), its Colored MNIST table: unbiased accuracy by "
                "ratio of bias-aligned samples, mean ± std")
LFF_MEAN_CHECK = ("DeNetDM (Sreelatha et al., NeurIPS 2024, arXiv 2403.19863) Table 1, which re-reports LfF's "
                  "Colored MNIST numbers: the means match according to the outside check reported in issue #24. Not "
                  "re-read in this project: the stored copies of DeNetDM, LfF (arXiv 2007.02561, 2006.06380) and "
                  "DisEnt reachable here hold only their first pages, and alinlab/LfF's README has no numbers.")
LFF_STD_CHECK = "stds not confirmed by any check"
_LFF_VALUES = {
    "Vanilla": {5.0: (77.63, 0.44), 2.0: (62.29, 1.47), 1.0: (50.34, 0.16), 0.5: (35.34, 0.13)},
    "LfF": {5.0: (85.39, 0.94), 2.0: (80.48, 0.45), 1.0: (74.01, 2.21), 0.5: (63.39, 1.97)},
}
_LFF_NOTES = {("Vanilla", 5.0): "DeNetDM's Table 1 gives this cell's std as 0.13 (outside check, issue #24), against "
                                "the recalled 0.44 kept here (0.13 is also the recalled std at 0.5 %): to be read "
                                "from LfF's paper."}
LFF_CMNIST: dict[str, dict[float, PaperNumber]] = {
    method: {percent: PaperNumber(mean, LFF_CITATION, True, f"{LFF_MEAN_CHECK} {LFF_STD_CHECK}.", std=std,
                                  std_verified=False, note=_LFF_NOTES.get((method, percent), ""))
             for percent, (mean, std) in by_percent.items()}
    for method, by_percent in _LFF_VALUES.items()
}
"""``method -> bias-conflicting percentage -> number`` (LfF's columns are 95/98/99/99.5 % aligned)."""


# ------------------------------------------------------------------------------------------------------- DisEnt
DISENT_CITATION = ("DisEnt (Lee et al., NeurIPS 2021, arXiv 2107.01372) Table 1: unbiased test accuracy (BFFHQ: "
                   "bias-conflicting test images) by ratio of bias-conflicting samples")
DISENT_NO_CHECK = ("not checked: no source with DisEnt's Colored MNIST rows could be read (issue #24's outside check, "
                   "and this project's searches: the stored copies of the paper reachable here hold only its first "
                   "page; kakaoenterprise/Learning-Debiased-Disentangled's README has no numbers)")
DISENT_CMNIST_VANILLA_CHECK = ("the outside check reported in issue #24 (Vanilla at 0.5 and 5 pct are the only DisEnt "
                               "Colored MNIST cells it could check; its source is not named there); std not "
                               "confirmed")
DISENT_BARBANO_CHECK = ("Barbano et al., 'Unbiased Supervised Contrastive Learning' (ICLR 2023, arXiv 2211.05568) "
                        "Table 4, which takes these rows from Lee et al.: the Vanilla, LfF and DisEnt values match "
                        "according to the outside check reported in issue #24 (only EnD, not in this table, "
                        "differs). Not re-read in this project (its stored copies reachable here hold only the first "
                        "page).")
DUPLICATE_8479 = ("84.79 appears twice in these rows (LfF at 5 pct and DisEnt at 2 pct): a likely slip of the "
                  "recollection they come from; kept until read from the paper.")
_DISENT_CMNIST_VALUES = {
    "Vanilla": {0.5: (35.19, 3.49), 1.0: (52.09, 2.88), 2.0: (65.86, 3.59), 5.0: (82.17, 0.74)},
    "LfF": {0.5: (52.50, 2.43), 1.0: (61.89, 4.97), 2.0: (71.03, 1.57), 5.0: (84.79, 1.09)},
    "DisEnt": {0.5: (65.22, 1.37), 1.0: (81.30, 0.70), 2.0: (84.79, 0.95), 5.0: (89.66, 1.09)},
}
_DISENT_CMNIST_CHECKED = {("Vanilla", 0.5), ("Vanilla", 5.0)}
_DISENT_CMNIST_NOTES = {("LfF", 5.0): DUPLICATE_8479, ("DisEnt", 2.0): DUPLICATE_8479}
_DISENT_MEANS = {
    "cifar10c": {"Vanilla": {0.5: 23.08, 1.0: 25.82, 2.0: 30.06, 5.0: 39.42},
                 "LfF": {0.5: 28.57, 1.0: 33.07, 2.0: 39.91, 5.0: 50.27},
                 "DisEnt": {0.5: 29.95, 1.0: 36.49, 2.0: 41.78, 5.0: 51.13}},
    "bffhq": {"Vanilla": {0.5: 56.87}, "LfF": {0.5: 62.20}, "DisEnt": {0.5: 63.87}},
}
DISENT_TABLE1: dict[str, dict[str, dict[float, PaperNumber]]] = {
    "cmnist": {
        method: {percent: PaperNumber(
            mean, DISENT_CITATION, (method, percent) in _DISENT_CMNIST_CHECKED,
            DISENT_CMNIST_VANILLA_CHECK if (method, percent) in _DISENT_CMNIST_CHECKED else DISENT_NO_CHECK,
            std=std, std_verified=False, note=_DISENT_CMNIST_NOTES.get((method, percent), ""))
            for percent, (mean, std) in by_percent.items()}
        for method, by_percent in _DISENT_CMNIST_VALUES.items()},
    **{dataset: {method: {percent: PaperNumber(mean, DISENT_CITATION, True, DISENT_BARBANO_CHECK)
                          for percent, mean in by_percent.items()}
                 for method, by_percent in methods.items()}
       for dataset, methods in _DISENT_MEANS.items()},
}
"""``dataset ('cmnist'|'cifar10c'|'bffhq') -> method -> bias-conflicting percentage -> number``; the std is recorded
where this project shows it (Colored MNIST)."""


# ------------------------------------------------------------------------------------- views and the whole list
def means(numbers: Mapping[str, Mapping[float, PaperNumber]]) -> dict[str, dict[float, tuple[float, float]]]:
    """``method -> percent -> (mean, std)``: the plain view of a Colored MNIST table (std 0.0 where none)."""
    return {method: {percent: (number.value, number.std if number.std is not None else 0.0)
                     for percent, number in by_percent.items()}
            for method, by_percent in numbers.items()}


LFF_PAPER = means(LFF_CMNIST)
"""LfF's Colored MNIST table as ``method -> percent -> (mean, std)`` (reports/tables.py, the matrix)."""
DISENT_PAPER = means(DISENT_TABLE1["cmnist"])
"""DisEnt Table 1, Colored MNIST, as ``method -> percent -> (mean, std)``."""
REBIAS_TABLE1_UNBIASED: dict[str, dict[float, float]] = {
    column: {setting: number.value for (metric, setting, name), number in REBIAS_TABLE1.items()
             if metric == "unbiased" and name == column and setting != AVERAGE}
    for column in REBIAS_TABLE1_COLUMNS
}
"""Unbiased accuracy (%) in ReBias' Table 1 by method and rho (main_biased_mnist.py, the matrix)."""


def all_numbers() -> Iterator[tuple[str, tuple[Any, ...], PaperNumber]]:
    """Every published number as ``(table name, key, number)``."""
    for key, number in REBIAS_TABLE1.items():
        yield "rebias_table1", key, number
    for key, number in REBIAS_TABLE2.items():
        yield "rebias_table2", key, number
    for key, number in REBIAS_TABLE3.items():
        yield "rebias_table3", key, number
    for method, by_percent in LFF_CMNIST.items():
        for percent, number in by_percent.items():
            yield "lff_cmnist", (method, percent), number
    for dataset, methods in DISENT_TABLE1.items():
        for method, by_percent in methods.items():
            for percent, number in by_percent.items():
                yield f"disent_{dataset}", (method, percent), number


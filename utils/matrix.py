"""The comparison matrix: every method on every MNIST-family benchmark (benchmarks, architecture families, method
settings, and where each cell's results.json lives). Pure Python (no torch): main_matrix.py, scripts/matrix.sh and
``scripts/report.py matrix`` all read it; reading a cell's number and the table are reports/matrix_report.py's.

A **benchmark** fixes the data, the training length, the optimiser settings every method shares (the benchmark
paper's Vanilla: learning rate, weight decay, learning-rate schedule, batch size) and the metric: f's unbiased
accuracy after the last step. A **family** fixes the networks (the same for every method of a benchmark). A
**method** brings its own loss and its own paper's loss hyper-parameters. A method of the benchmark's own paper
trains with that paper's command (``Benchmark.native_settings``: DisEnt's learning-rate decay on DisEnt's
benchmark); in the MLP family, which is those papers' architecture, these cells are the paper tables' runs
(results/disent_cmnist, results/lff_cmnist), shared rather than trained twice.

Choices made where a hyper-parameter does not transfer (by rule, before any run):

* DisEnt's ``curr_step`` (10,000 of 50,000 steps) is the same fraction, 20 %, of another benchmark's length;
  DisEnt's learning-rate decay stays on DisEnt's benchmark (elsewhere the benchmark's schedule applies, counted
  from step 0).
* LearnedMixin pre-trains g for 5 epochs, then freezes it (ReBias' Table 1 setting); "epoch" = one pass over the
  benchmark's training set.
* The f/g methods on the Colored MNIST benchmarks use the benchmark's Vanilla settings (no decay, no weight decay).

ReBias keeps its Biased MNIST radius σ=1 in every family. On MLP features that radius saturates the RBF kernels
(mean off-diagonal entry near 1 at initialisation, near 0 at the end: bench/hsic_kernel_scale.py), so the MLP family
adds ReBias with its own rule for features of other scales, the median heuristic recomputed every epoch (its
ImageNet setting), as the variant row ``rebias_median`` (``VARIANTS``), never in place of the paper's setting.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DISENT_CURR_STEP_FRACTION = 10_000 / 50_000
"""DisEnt's ``curr_step`` as a share of its 50,000 steps (the swap augmentation starts after it)."""


@dataclass(frozen=True)
class Benchmark:
    """One column of the matrix: data (and, for generated Colored MNIST, the ``n_valid`` its manifest must record),
    length, shared optimiser settings, the unbiased split, the MLP family's network, the native methods' settings."""

    name: str
    title: str
    source: str
    epochs: int
    steps_per_epoch: int
    lr: float
    weight_decay: float
    unbiased_split: str
    mlp: str
    lr_decay_epochs: int | None = None
    lr_gamma: float = 0.1
    drop_last: bool = False
    rho: float | None = None
    percent: str | None = None
    data_dir: str | None = None
    data_flags: tuple[str, ...] | None = None
    n_valid: int | None = None
    native_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def data_command(self, python: str, mnist_root: str, data_dir: str | None = None) -> list[str]:
        """The command generating this benchmark's Colored MNIST into ``data_dir`` (default: its own folder)."""
        return [python, "-m", "datasets.make_disent_data", "cmnist", "--mnist_root", str(mnist_root), "--out",
                str(data_dir or self.data_dir), "--percents", self.percent.removesuffix("pct"), *self.data_flags]


BENCHMARKS: dict[str, Benchmark] = {}


def _register(benchmark: Benchmark) -> None:
    BENCHMARKS[benchmark.name] = benchmark


for _rho in (0.997, 0.990):
    _register(Benchmark(
        name=f"biased_mnist_rho{_rho:.3f}", title=f"Biased MNIST ρ={_rho:.3f}", source="biased_mnist", epochs=80,
        steps_per_epoch=235, lr=1e-3, weight_decay=1e-4, lr_decay_epochs=20, lr_gamma=0.1, unbiased_split="unbiased",
        mlp="mlp_lff_unit", rho=_rho))
_register(Benchmark(
    name="cmnist_lff_1pct", title="Colored MNIST 1% (LfF protocol)", source="cmnist", epochs=100, steps_per_epoch=235,
    lr=1e-3, weight_decay=0.0, unbiased_split="test", mlp="mlp_lff", percent="1pct", data_dir="data/cmnist_lff_paper",
    data_flags=("--preset", "lff_paper"),
    n_valid=0))
_register(Benchmark(
    name="cmnist_disent_1pct", title="Colored MNIST 1% (DisEnt protocol)", source="cmnist", epochs=100,
    steps_per_epoch=500, lr=0.01, weight_decay=0.0, unbiased_split="test", mlp="mlp", percent="1pct",
    drop_last=True, data_dir="data/cmnist_lff_lff",
    data_flags=("--palette", "lff", "--render", "lff"),
    n_valid=5000,
    native_settings={"disent": {"scheduler": "StepLR", "lr_step_size": 20, "lr_gamma": 0.5,
                                "lr_decay_after_curr_step": True}}))


@dataclass(frozen=True)
class Family:
    """The networks of one architecture family (names in models/matrix_models.py ``MATRIX_MODELS``, or
    ``simple_conv_k1``: SimpleConvNet with 1x1 kernels): f (also LfF's two networks), DisEnt's encoders
    (``<f>_disentangle``), the biased g. ``f`` None: the benchmark's MLP."""

    name: str
    title: str
    g: str
    f: str | None = None

    def f_network(self, benchmark: Benchmark) -> str:
        return self.f or benchmark.mlp

    def encoder(self, benchmark: Benchmark) -> str:
        return self.f_network(benchmark) + "_disentangle"

    def networks(self, benchmark: Benchmark) -> dict[str, str]:
        """What results.json records: ``{"f": ..., "encoder": ..., "g": ...}``."""
        return {"f": self.f_network(benchmark), "encoder": self.encoder(benchmark), "g": self.g}


FAMILIES: dict[str, Family] = {
    "mlp": Family("mlp", "MLP family (CPU): f = the benchmark's MLP (LfF's 100-100-100; DisEnt's 100-100-16 on "
                         "DisEnt's protocol; on Biased MNIST without the originals' division by 255), "
                         "g = colour histogram + MLP", g="colour_histogram"),
    "conv": Family("conv", "conv family (GPU): f = SimpleConvNet 7x7, g = SimpleConvNet 1x1", g="simple_conv_k1",
                   f="simple_conv"),
}

METHODS: dict[str, str] = {
    "vanilla": "Vanilla", "biased": "Biased", "rebias": "ReBias", "learnedmixin": "LearnedMixin", "rubi": "RUBi",
    "lff": "LfF", "disent": "DisEnt",
}
"""Rows of the matrix: ``--method`` name -> the papers' name. ``biased`` is g of the ``vanilla`` run."""

TRAINED_METHODS = ("vanilla", "rebias", "learnedmixin", "rubi", "lff", "disent")
"""The ``--method`` values of main_matrix.py (``biased`` comes with ``vanilla``)."""


@dataclass(frozen=True)
class Variant:
    """An extra row of a family's matrix: ``method`` trained with ``settings`` changed (main_matrix.py with those
    flags, run name ``<variant>_seed<k>``). A sweep runs it only where asked for by name."""

    method: str
    title: str
    settings: Mapping[str, Any]
    families: tuple[str, ...]


MEDIAN_RADII: dict[str, Any] = {"rbf_sigma_x": "median", "rbf_sigma_y": "median", "update_sigma_per_epoch": True}
"""ReBias' kernel radii for features of unknown scale (its ImageNet setting): the median heuristic, every epoch."""

VARIANTS: dict[str, Variant] = {
    "rebias_median": Variant("rebias", "ReBias, median σ (variant)", MEDIAN_RADII, ("mlp",)),
}
"""Ablation rows (see the module docstring)."""


def rows(family: str) -> dict[str, str]:
    """The rows of ``family``'s matrix: the methods, then the family's variants (name -> title)."""
    return {**METHODS, **{name: variant.title for name, variant in VARIANTS.items() if family in variant.families}}

FG_RECIPES: dict[str, dict[str, Any]] = {
    "vanilla": {"outer_criterion": "RbfHSIC", "f_lambda_outer": 0.0, "g_lambda_inner": 0.0},
    "rebias": {"outer_criterion": "RbfHSIC", "f_lambda_outer": 1.0, "g_lambda_inner": 1.0, "rbf_sigma_x": 1,
               "rbf_sigma_y": 1, "hsic_alg": "unbiased"},
    "learnedmixin": {"outer_criterion": "LearnedMixin", "g_lambda_inner": 0.0, "n_g_pretrain_epochs": 5,
                     "n_g_update": 0},
    "rubi": {"outer_criterion": "RUBi", "g_lambda_inner": 0.0},
}
"""The f/g methods' own settings (ReBias' Biased MNIST flags, scripts/biased_mnist_table1.sh)."""

STEP_RECIPES: dict[str, dict[str, Any]] = {
    "lff": {"q": 0.7, "ema_alpha": 0.7},
    "disent": {"q": 0.7, "ema_alpha": 0.7, "lambda_dis_align": 10.0, "lambda_swap_align": 10.0, "lambda_swap": 1.0},
}
"""LfF's and DisEnt's own settings (DisEnt's Colored MNIST command; curr_step: DISENT_CURR_STEP_FRACTION)."""

FG_ONLY_FLAGS = frozenset({
    "optim", "n_f_pretrain_epochs", "n_g_pretrain_epochs", "f_lambda_outer", "g_lambda_inner", "n_g_update",
    "update_g_cls", "outer_criterion", "inner_criterion", "rbf_sigma_scale_x", "rbf_sigma_scale_y", "rbf_sigma_x",
    "rbf_sigma_y", "update_sigma_per_epoch", "sigma_update_sampling_rate", "hsic_alg", "feature_pos", "n_g_nets",
    "untrained_comparison_fc", "swap_inner_sigma"})
"""Flags only the f/g trainer reads."""
METHOD_ONLY_FLAGS: dict[str, frozenset[str]] = {
    "lff": frozenset({"q", "ema_alpha"}),
    "disent": frozenset({"q", "ema_alpha", "lambda_dis_align", "lambda_swap_align", "lambda_swap", "curr_step",
                         "lr_decay_after_curr_step"}),
}
"""Flags only LfF / DisEnt read (main_matrix.py refuses a flag the chosen method would ignore)."""


def own_settings(benchmark: Benchmark, method: str, family: str) -> dict[str, Any]:
    """The settings of ``method`` (or a variant row) itself on ``benchmark`` in ``family``: its paper's recipe,
    its paper's command on its own benchmark, the variant's changes (a variant of another family is an error)."""
    variant = VARIANTS.get(method)
    base = variant.method if variant else method
    if base not in FG_RECIPES and base not in STEP_RECIPES or (variant and family not in variant.families):
        raise KeyError(f"unknown method {method!r} for family {family!r} (expected one of {TRAINED_METHODS} or "
                       f"{[name for name in rows(family) if name in VARIANTS]})")
    return {**FG_RECIPES.get(base, {}), **STEP_RECIPES.get(base, {}), **benchmark.native_settings.get(base, {}),
            **(variant.settings if variant else {})}


def method_settings(benchmark: Benchmark, method: str, family: str) -> dict[str, Any]:
    """The configuration ``method`` trains with on ``benchmark`` in ``family`` through main_matrix.py: the
    benchmark's shared settings (length in evaluation intervals, optimiser, schedule in intervals) and the method's
    own (:func:`own_settings`). main_matrix.py derives the step counts of LfF/DisEnt from them (``curr_step``: 20 %
    of the steps)."""
    shared = {"lr": benchmark.lr, "weight_decay": benchmark.weight_decay, "batch_size": 256,
              "n_epochs": benchmark.epochs, "steps_per_epoch": benchmark.steps_per_epoch,
              "scheduler": "StepLR" if benchmark.lr_decay_epochs else "none",
              "lr_step_size": benchmark.lr_decay_epochs or benchmark.epochs, "lr_gamma": benchmark.lr_gamma}
    return {**shared, **own_settings(benchmark, method, family)}


def base_method(method: str) -> str:
    """The trained method of a matrix ``--method`` or variant row."""
    return VARIANTS[method].method if method in VARIANTS else method


def registry_name(method: str) -> str:
    """The METHODS registry name a matrix ``--method`` trains with: LfF's and DisEnt's own, else the f/g trainer."""
    method = base_method(method)
    return method if method in STEP_RECIPES else "rebias"


def ignored_flags(method: str, given: Mapping[str, Any]) -> list[str]:
    """The flags among ``given`` that ``method`` would not read."""
    method = base_method(method)
    other = set(FG_ONLY_FLAGS) if method in STEP_RECIPES else set()
    other |= set().union(*METHOD_ONLY_FLAGS.values()) - METHOD_ONLY_FLAGS.get(method, frozenset())
    return sorted(flag for flag in given if flag in other)


# --------------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """Where one (family, benchmark, method, seed) cell's number comes from: ``run_dir/results.json``, f's final
    metrics (``predictor`` 'f') or the first g's (``'g_0'``), and the command that writes it."""

    family: str
    benchmark: str
    method: str
    seed: int
    run_dir: str
    predictor: str
    command: str
    shared_with: str | None = None


NATIVE_RUNS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("cmnist_lff_1pct", "vanilla"): ("results/lff_cmnist/cmnist/cmnist_1pct_vanilla_seed{seed}", "LfF's table",
                                     "OUT= EXTRA= PERCENTS=1pct SEEDS={seed} JOBS=1 bash scripts/lff_cmnist_table.sh"),
    ("cmnist_lff_1pct", "lff"): ("results/lff_cmnist/cmnist/cmnist_1pct_lff_seed{seed}", "LfF's table",
                                 "OUT= EXTRA= PERCENTS=1pct SEEDS={seed} JOBS=1 bash scripts/lff_cmnist_table.sh"),
    **{("cmnist_disent_1pct", method): (f"results/disent_cmnist/lff_lff/cmnist/cmnist_1pct_{folder}_seed{{seed}}",
                                        "DisEnt's table",
                                        f"OUT= EXTRA= PERCENTS=1pct SEEDS={{seed}} METHODS={folder} JOBS=1 "
                                        "bash scripts/disent_cmnist_table.sh")
       for method, folder in (("vanilla", "vanilla"), ("lff", "lff"), ("disent", "ours"))},
}
"""MLP-family cells run by a paper table's own command (the paper's architecture and protocol): (benchmark,
method) -> (run directory, table, command)."""

MATRIX_ROOT = "results/matrix"


def matrix_run_dir(family: str, benchmark: str, method: str, seed: int, root: str = MATRIX_ROOT) -> str:
    return f"{root}/{family}/{benchmark}/{method}_seed{seed}"


def matrix_command(family: str, benchmark: str, method: str, seed: int, root: str = MATRIX_ROOT,
                   mnist_root: str = "../shared/data", python: str = "python") -> str:
    """The main_matrix.py command of one trained cell (resumable)."""
    return shlex.join([python, "main_matrix.py", "--family", family, "--benchmark", benchmark, "--method", method,
                       "--seed", str(seed), "--save_dir", f"{root}/{family}/{benchmark}", "--run_name",
                       f"{method}_seed{seed}", "--root", mnist_root, "--resume", "auto"])


def cell(family: str, benchmark: str, method: str, seed: int, root: str = MATRIX_ROOT,
         mnist_root: str = "../shared/data", python: str = "python") -> Cell:
    """The source of one matrix cell."""
    native = NATIVE_RUNS.get((benchmark, method)) if family == "mlp" else None
    if native is not None:
        run_dir, table, command = native
        return Cell(family, benchmark, method, seed, run_dir.format(seed=seed), "f", command.format(seed=seed),
                    shared_with=table)
    trained = "vanilla" if method == "biased" else method
    return Cell(family, benchmark, method, seed, matrix_run_dir(family, benchmark, trained, seed, root),
                "g_0" if method == "biased" else "f",
                matrix_command(family, benchmark, trained, seed, root, mnist_root, python))


def cells(family: str, seeds: list[int], benchmarks: list[str] | None = None, methods: list[str] | None = None,
          root: str = MATRIX_ROOT, mnist_root: str = "../shared/data", python: str = "python") -> Iterator[Cell]:
    """Every cell of a family's matrix (``methods``: default the methods, without the variant rows), seed-major
    (all cells of seed 0 first, so a partial sweep fills whole columns of one seed before starting the next)."""
    for seed in seeds:
        for benchmark in benchmarks or BENCHMARKS:
            for method in methods or METHODS:
                yield cell(family, benchmark, method, seed, root, mnist_root, python)


# ------------------------------------------------------------------------------------------------ the CLI
def _plan(args: argparse.Namespace) -> None:
    """One line per command still to run: ``RESULTS_JSON<TAB>COMMAND`` (deduplicated, the data commands first)."""
    seeds = [int(seed) for seed in args.seeds.replace(",", " ").split()]
    benchmarks = args.benchmarks.split() if args.benchmarks else None
    methods = args.methods.split() if args.methods else None
    unknown = [name for name in benchmarks or [] if name not in BENCHMARKS]
    known_rows = rows(args.family) if args.family in FAMILIES else METHODS
    unknown += [name for name in methods or [] if name not in known_rows]
    if unknown or args.family not in FAMILIES:
        sys.exit(f"unknown family, benchmark or method: {[args.family, *unknown]} (families {list(FAMILIES)}, "
                 f"benchmarks {list(BENCHMARKS)}, methods {list(known_rows)})")
    seen = set()
    for entry in cells(args.family, seeds, benchmarks, methods, args.root, args.mnist_root, args.python):
        if entry.command in seen or (Path(entry.run_dir) / "results.json").exists():
            continue
        seen.add(entry.command)
        command = entry.command + (f" {args.extra}" if args.extra and entry.shared_with is None else "")
        print(f"{entry.run_dir}/results.json\t{command}")


def _data(args: argparse.Namespace) -> None:
    """One line per Colored MNIST data set still to generate: ``DATA_DIR<TAB>COMMAND``."""
    for benchmark in BENCHMARKS.values():
        if benchmark.data_flags is None:
            continue
        manifest = Path(benchmark.data_dir) / "cmnist" / benchmark.percent / "manifest.json"
        if not manifest.exists():
            print(f"{benchmark.data_dir}\t{shlex.join(benchmark.data_command(args.python, args.mnist_root))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The matrix's cells as commands (used by scripts/matrix.sh).")
    sub = parser.add_subparsers(dest="what", required=True)
    plan = sub.add_parser("plan", help="commands of the cells without a results.json")
    plan.add_argument("--family", default="mlp")
    plan.add_argument("--seeds", default="0 1 2")
    plan.add_argument("--benchmarks", default="")
    plan.add_argument("--methods", default="")
    plan.add_argument("--root", default=MATRIX_ROOT)
    plan.add_argument("--mnist_root", default="../shared/data")
    plan.add_argument("--python", default="python")
    plan.add_argument("--extra", default="", help="flags appended to the main_matrix.py commands")
    data = sub.add_parser("data", help="commands generating the Colored MNIST data the benchmarks read")
    data.add_argument("--mnist_root", default="../shared/data")
    data.add_argument("--python", default="python")
    args = parser.parse_args(argv)
    {"plan": _plan, "data": _data}[args.what](args)


if __name__ == "__main__":
    main()

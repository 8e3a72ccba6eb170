"""The papers' tables as runs, for ``reproduce.py`` and ``launchers/``: per table its cells, seeds, inputs, the data
it generates first, every run (name, run directory, the entry script's argv, an estimated length) and the report
command. Each plan is the one its sweep script (scripts/*.sh) runs with the same settings, flag for flag and in
the same order (tests/test_reproduce.py compares them). Pure Python (no torch).

Relative paths are taken from the current directory, as the sweep scripts take them from the repository root: run
``reproduce.py`` from there, as the README does.
"""
from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reports.cmnist_tables import parse_run
from reports.paper_numbers import DISENT_TABLE1, LFF_CMNIST, PaperNumber
from utils import matrix
from utils.config import ConfigError, parse_seeds, require, split_list
from utils.protocol import paper_protocol

MNIST_ROOT = "../shared/data"
MNIST_TRAIN_IMAGES = "train-images-idx3-ubyte"
CMNIST_PERCENTS = ("0.5pct", "1pct", "2pct", "5pct")
REBIAS_METHODS = ("Vanilla", "LearnedMixin", "RUBi", "ReBias")


@dataclass(frozen=True)
class Run:
    """One training run: ``argv`` is the entry script and its flags (without the interpreter), ``length`` its
    training length in the table's unit (epochs or steps)."""

    name: str
    run_dir: str
    argv: tuple[str, ...]
    length: int

    @property
    def results_path(self) -> Path:
        return Path(self.run_dir) / "results.json"

    def finished(self) -> bool:
        """Whether the run wrote its results.json (the entry scripts write it last)."""
        return self.results_path.exists()

    def resumable(self) -> bool:
        """Whether an interrupted run left a ``last.pth`` that its ``--resume auto`` continues from."""
        return not self.finished() and (Path(self.run_dir) / "last.pth").exists()

    def with_flags(self, flags: Sequence[str]) -> Run:
        """The run with ``flags`` appended to its command."""
        return replace(self, argv=(*self.argv, *flags)) if flags else self

    def on_device(self, device: str) -> Run:
        """The run with ``--device device`` (replacing a ``--device`` it has)."""
        argv = list(self.argv)
        if "--device" in argv:
            argv[argv.index("--device") + 1] = device
            return replace(self, argv=tuple(argv))
        return self.with_flags(("--device", device))


@dataclass(frozen=True)
class DataStep:
    """A command (python argv without the interpreter) that generates data, needed while ``target`` is absent."""

    target: str
    argv: tuple[str, ...]

    def done(self) -> bool:
        return Path(self.target).exists()


@dataclass(frozen=True)
class Plan:
    """What reproducing (part of) a table takes: data steps, runs, and the ``scripts/report.py`` arguments."""

    data: tuple[DataStep, ...]
    runs: tuple[Run, ...]
    report: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    """The choices a plan is made from: cells and seeds, output folder, inputs (data paths), the ``--device`` every
    run gets (None: the entry script's choice) and whether runs go several at once (``quiet``: ``--progress False``
    where the sweep scripts add it for JOBS > 1)."""

    cells: tuple[str, ...]
    seeds: tuple[int, ...]
    out: str
    inputs: Mapping[str, str]
    device: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class Table:
    """One table of the papers: ``cells`` (values of ``axis``), default ``seeds`` and output folder, ``inputs``
    (flag -> default; None: required), the sweep script that runs the same, and how to plan it."""

    name: str
    title: str
    script: str
    axis: str
    cells: tuple[str, ...]
    seeds: tuple[int, ...]
    unit: str
    inputs: Mapping[str, str | None]
    build: Callable[[Settings], Plan]
    check: Callable[[Settings, Plan], None] = lambda settings, plan: None
    paper: Mapping[str, Mapping[float, PaperNumber]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def default_out(self) -> str:
        """``runs/<table>``: apart from results/, which holds the committed runs behind the README's tables."""
        return f"runs/{self.name}"

    def settings(self, cells: Any = None, seeds: Any = None, out: str | None = None,
                 inputs: Mapping[str, Any] | None = None, device: str | None = None, quiet: bool = False) -> Settings:
        """Validated settings (:class:`ConfigError` with one line for an unknown cell, bad seeds or unknown input)."""
        listed = ", ".join("--" + name for name in self.inputs) or "none"
        for name in sorted(set(inputs or {}) - set(self.inputs)):
            raise ConfigError(f"unknown flag --{name} for table {self.name} (its inputs: {listed})")
        given = {name: str(value) for name, value in (inputs or {}).items()}
        merged = {name: given.get(name, default) for name, default in self.inputs.items()}
        for name in [name for name, value in merged.items() if value is None]:
            raise ConfigError(f"table {self.name} needs --{name} (its inputs: {listed})")
        return Settings(self.select_cells(cells), table_seeds(seeds, self.seeds), str(out or self.default_out),
                        merged, device, quiet)

    def select_cells(self, value: Any) -> tuple[str, ...]:
        """``--cells``: None (all), one cell or several (``0.5pct,1pct``; fire may pass a tuple or a number), with
        or without the axis' name before the value (``rho0.997`` as in the run names)."""
        if value is None:
            return self.cells
        chosen = []
        for item in split_list(value):
            bare = item.removeprefix(self.axis)
            match = [cell for cell in self.cells if cell in (item, bare) or _same_number(cell, bare)]
            require(bool(match), f"unknown cell {item!r} of table {self.name} (its {self.axis} cells: "
                                 f"{', '.join(self.cells)})")
            chosen.append(match[0])
        return tuple(cell for cell in self.cells if cell in chosen)

    def plan(self, settings: Settings) -> Plan:
        """Every data step and run of ``settings`` (finished ones included) and the report arguments; a missing
        input is a :class:`ConfigError`."""
        plan = self.build(settings)
        self.check(settings, plan)
        return plan


def _same_number(cell: str, item: str) -> bool:
    try:
        return float(cell.removesuffix("pct")) == float(item.removesuffix("pct"))
    except ValueError:
        return False


def table_seeds(value: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    """``--seeds`` of a table (utils/config.parse_seeds): None gives the table's ``default``."""
    seeds = parse_seeds(value)
    return default if seeds is None else tuple(seeds)


def mnist_present(root: str) -> bool:
    """Whether ``root`` holds MNIST's training images where datasets/mnist_io.py looks (torchvision's layout)."""
    base = Path(root)
    return any((folder / name).exists() for folder in (base / "MNIST" / "raw", base / "raw", base)
               for name in (MNIST_TRAIN_IMAGES, MNIST_TRAIN_IMAGES + ".gz"))


def require_mnist(root: str, needed: bool = True) -> None:
    require(not needed or mnist_present(root),
            f"MNIST not found in '{root}' (expected MNIST/raw/{MNIST_TRAIN_IMAGES}): pass --mnist_root DIR")


def require_folders(settings: Settings, names: Iterable[str]) -> None:
    for name in names:
        path = settings.inputs[name]
        require(not path or Path(path).exists(), f"--{name} '{path}' does not exist")


# ------------------------------------------------------------------------------------------- ReBias (Tables 1-3)
REBIAS_TABLE1_FLAGS = {
    "Vanilla": ("--f_lambda_outer", "0", "--g_lambda_inner", "0"),
    "ReBias": (),
    "LearnedMixin": ("--outer_criterion", "LearnedMixin", "--g_lambda_inner", "0", "--n_g_pretrain_epochs", "5",
                     "--n_g_update", "0"),
    "RUBi": ("--outer_criterion", "RUBi", "--g_lambda_inner", "0"),
}
"""scripts/biased_mnist_table1.sh's method_flags (G_PRETRAIN=5)."""
RADII = ("--rbf_sigma_x", "1", "--rbf_sigma_y", "1")
REBIAS_IMAGENET_FLAGS = {
    "Vanilla": ("--f_lambda_outer", "0", "--g_lambda_inner", "0", *RADII),
    "ReBias": (),
    "LearnedMixin": ("--outer_criterion", "LearnedMixin", "--n_g_pretrain_epochs", "30", "--n_g_update", "0", *RADII),
    "RUBi": ("--outer_criterion", "RUBi", "--g_lambda_inner", "0", *RADII),
}
"""scripts/imagenet_table2.sh's method_flags (G_PRETRAIN=30)."""
REBIAS_ACTION_FLAGS = {**REBIAS_IMAGENET_FLAGS, "Vanilla": ("--f_lambda_outer", "0", "--g_lambda_inner", "0")}
"""scripts/action_table3.sh's method_flags (G_PRETRAIN=30)."""


def _device(settings: Settings) -> tuple[str, ...]:
    return ("--device", settings.device) if settings.device else ()


def _biased_mnist(settings: Settings) -> Plan:
    runs = []
    for method in REBIAS_METHODS:
        for rho in settings.cells:
            for seed in settings.seeds:
                name = f"biased_mnist_{method}_rho{rho}_seed{seed}"
                argv = ("main_biased_mnist.py", "--root", settings.inputs["mnist_root"], "--train_correlation", rho,
                        "--n_epochs", "80", *_device(settings), "--save_dir", settings.out, "--run_name", name,
                        "--resume", "auto", "--seed", str(seed), *REBIAS_TABLE1_FLAGS[method])
                runs.append(Run(name, f"{settings.out}/{name}", argv, 80))
    return Plan((), tuple(runs), (settings.out, "--out", f"{settings.out}/report"))


def _rebias_large(script: str, prefix: str, data_flags: Callable[[Settings], tuple[str, ...]],
                  flags: Mapping[str, tuple[str, ...]]) -> Callable[[Settings], Plan]:
    """ReBias' Tables 2 and 3 (scripts/imagenet_table2.sh, scripts/action_table3.sh with NPROC=1): method x seed."""
    def build(settings: Settings) -> Plan:
        runs = []
        for method in settings.cells:
            for seed in settings.seeds:
                name = f"{prefix}_{method}_seed{seed}"
                argv = (script, *data_flags(settings), *_device(settings), "--seed", str(seed), "--n_epochs", "120",
                        "--save_dir", settings.out, "--run_name", name, "--resume", "auto", *flags[method])
                runs.append(Run(name, f"{settings.out}/{name}", argv, 120))
        return Plan((), tuple(runs), (settings.out, "--out", f"{settings.out}/report"))
    return build


def _imagenet_data(settings: Settings) -> tuple[str, ...]:
    inputs = settings.inputs
    optional = ("--imageneta_root", inputs["imageneta_root"]) if inputs["imageneta_root"] else ()
    return ("--train_root", inputs["train_root"], "--val_root", inputs["val_root"], *optional)


def _action_data(settings: Settings) -> tuple[str, ...]:
    inputs = settings.inputs
    return ("--train_root", inputs["train_root"], "--train_annotation_file", inputs["train_annotation"],
            "--eval_root", inputs["eval_root"], "--eval_annotation_file", inputs["eval_annotation"])


# --------------------------------------------------------------------------------------- DisEnt / LfF (train_disent)
DISENT_SETTINGS = {
    "cmnist": ("0.01", "0.01", ("10", "10", "1"), "0.5"),
    "cifar10c/0.5pct": ("0.001", "0.0005", ("1", "1", "1"), "0.5"),
    "cifar10c/1pct": ("0.001", "0.001", ("5", "5", "1"), "0.5"),
    "cifar10c/2pct": ("0.001", "0.001", ("5", "5", "1"), "0.5"),
    "cifar10c/5pct": ("0.001", "0.001", ("1", "1", "1"), "0.5"),
    "bffhq": ("0.0001", "0.0001", ("2", "2", "0.1"), "0.1"),
}
"""scripts/disent_sweep.sh's settings of the original scripts: (lr Vanilla/LfF, lr DisEnt, lambdas dis_align /
swap_align / swap, lr_gamma) by dataset or dataset/ratio."""


def disent_method_flags(dataset: str, percent: str, method: str, protocol: str) -> tuple[str, ...]:
    """scripts/disent_sweep.sh's method_flags: the original scripts' flags, or the lff_paper preset's."""
    if protocol == "lff_paper":
        return ("--preset", "lff_paper", "--train_vanilla" if method == "vanilla" else "--train_lff")
    lr_vanilla, lr_ours, (dis_align, swap_align, swap), gamma = DISENT_SETTINGS.get(
        f"{dataset}/{percent}", DISENT_SETTINGS.get(dataset))
    if method in ("vanilla", "lff"):
        return (f"--train_{method}", "--lr", lr_vanilla)
    return ("--train_ours", "--lr", lr_ours, "--curr_step", "10000", "--lambda_dis_align", dis_align,
            "--lambda_swap_align", swap_align, "--lambda_swap", swap, "--use_lr_decay", "--lr_decay_step", "10000",
            "--lr_gamma", gamma)


def disent_runs(dataset: str, percents: Iterable[str], methods: Iterable[str], seeds: Iterable[int], data_dir: str,
                log_dir: str, protocol: str = "disent", device: str | None = None, quiet: bool = False,
                extra: tuple[str, ...] = ()) -> list[Run]:
    """The runs of ``scripts/disent_sweep.sh DATASET "METHODS"`` (ratio, then method, then seed)."""
    common = ("--dataset", dataset, "--data_dir", data_dir, "--log_dir", log_dir, "--resume", "auto",
              *(("--device", device) if device else ()), *(("--progress", "False") if quiet else ()))
    length = paper_protocol(f"disent_{dataset}", {"preset": protocol if protocol == "lff_paper" else None}).length
    runs = []
    for percent in percents:
        for method in methods:
            flags = disent_method_flags(dataset, percent, method, protocol)
            for seed in seeds:
                exp = f"{dataset}_{percent}_{method}_seed{seed}"
                argv = ("train_disent.py", *common, "--percent", percent, "--exp", exp, "--seed", str(seed), *flags,
                        *extra)
                runs.append(Run(exp, f"{log_dir}/{dataset}/{exp}", argv, length))
    return runs


def cmnist_data(mnist_root: str, data_dir: str, percents: Iterable[str], flags: tuple[str, ...]) -> list[DataStep]:
    """The Colored MNIST generation of the cmnist table scripts: one command per ratio whose manifest is absent."""
    return [DataStep(f"{data_dir}/cmnist/{percent}/manifest.json",
                     ("-m", "datasets.make_disent_data", "cmnist", "--mnist_root", mnist_root, "--out", data_dir,
                      "--percents", percent.removesuffix("pct"), *flags))
            for percent in percents]


LFF_DATA_FLAGS = ("--preset", "lff_paper")
DISENT_VARIANT = ("lff", "lff")
"""scripts/disent_cmnist_table.sh's default VARIANTS (palette:renderer)."""
DISENT_VARIANT_FLAGS = ("--palette", DISENT_VARIANT[0], "--render", DISENT_VARIANT[1])


def lff_cmnist_runs(settings: Settings, percents: Iterable[str], out: str) -> list[Run]:
    return disent_runs("cmnist", percents, ("vanilla", "lff"), settings.seeds, settings.inputs["data_dir"], out,
                       "lff_paper", settings.device, settings.quiet)


def _lff_cmnist(settings: Settings) -> Plan:
    """scripts/lff_cmnist_table.sh."""
    data = cmnist_data(settings.inputs["mnist_root"], settings.inputs["data_dir"], settings.cells, LFF_DATA_FLAGS)
    runs = lff_cmnist_runs(settings, settings.cells, settings.out)
    return Plan(tuple(data), tuple(runs), ("lff", settings.out, "--out", f"{settings.out}/report"))


def disent_cmnist_runs(settings: Settings, percents: Iterable[str], methods: Iterable[str], out: str) -> list[Run]:
    variant = "_".join(DISENT_VARIANT)
    return disent_runs("cmnist", percents, methods, settings.seeds, settings.inputs["data_dir"], f"{out}/{variant}",
                       device=settings.device, quiet=settings.quiet, extra=DISENT_VARIANT_FLAGS)


def _disent_cmnist(settings: Settings) -> Plan:
    """scripts/disent_cmnist_table.sh with its default variant."""
    data = cmnist_data(settings.inputs["mnist_root"], settings.inputs["data_dir"], settings.cells,
                       DISENT_VARIANT_FLAGS)
    runs = disent_cmnist_runs(settings, settings.cells, ("vanilla", "lff", "ours"), settings.out)
    return Plan(tuple(data), tuple(runs), ("cmnist", settings.out, "--out", f"{settings.out}/report"))


def _disent_sweep(dataset: str) -> Callable[[Settings], Plan]:
    """``scripts/disent_sweep.sh DATASET "vanilla lff ours"`` (the three scripts/disent_DATASET_METHOD.sh)."""
    def build(settings: Settings) -> Plan:
        runs = disent_runs(dataset, settings.cells, ("vanilla", "lff", "ours"), settings.seeds,
                           settings.inputs["data_dir"], settings.out, device=settings.device, quiet=settings.quiet)
        return Plan((), tuple(runs), (settings.out, "--out", f"{settings.out}/report", "--skip_invalid"))
    return build


def _check_cmnist(settings: Settings, plan: Plan) -> None:
    require_mnist(settings.inputs["mnist_root"], any(not step.done() for step in plan.data))


def _check_disent_data(dataset: str, hint: str) -> Callable[[Settings, Plan], None]:
    def check(settings: Settings, plan: Plan) -> None:
        folder = Path(settings.inputs["data_dir"]) / dataset
        require(folder.is_dir(), f"no {dataset} data in '{folder}': {hint}")
    return check


# ------------------------------------------------------------------------------------------- the comparison matrix
NATIVE_METHOD_FOLDERS = {"vanilla": "vanilla", "lff": "lff", "disent": "ours"}
"""Matrix rows -> the method names of the DisEnt table's runs (utils/matrix.py NATIVE_RUNS)."""
LFF_TABLE_OUT = "results/lff_cmnist"
DISENT_TABLE_OUT = "results/disent_cmnist"
"""Where scripts/matrix.sh's shared cells run (the paper tables' scripts with their default OUT)."""


def _matrix(family: str) -> Callable[[Settings], Plan]:
    """scripts/matrix.sh with FAMILY=family: the data, then every cell seed-major; the cells a paper table shares
    are that table's runs (the table scripts' commands that scripts/matrix.sh runs for them)."""
    def build(settings: Settings) -> Plan:
        mnist_root = settings.inputs["mnist_root"]
        data = [DataStep(f"{benchmark.data_dir}/cmnist/{benchmark.percent}/manifest.json",
                         tuple(benchmark.data_command("python", mnist_root)[1:]))
                for benchmark in matrix.BENCHMARKS.values() if benchmark.data_flags is not None]
        extra = (*_device(settings), *(("--progress", "False") if settings.quiet else ()))
        native = replace(settings, quiet=False)
        runs: dict[str, Run] = {}
        for cell in matrix.cells(family, list(settings.seeds), list(settings.cells), None, settings.out, mnist_root):
            one_seed = replace(native, seeds=(cell.seed,))
            if cell.shared_with == "LfF's table":
                found = lff_cmnist_runs(replace(one_seed, inputs={"data_dir": "data/cmnist_lff_paper"}),
                                        ("1pct",), LFF_TABLE_OUT)
            elif cell.shared_with is not None:
                found = disent_cmnist_runs(replace(one_seed, inputs={"data_dir": "data/cmnist_lff_lff"}), ("1pct",),
                                           (NATIVE_METHOD_FOLDERS[cell.method],), DISENT_TABLE_OUT)
            else:
                argv = (*shlex.split(cell.command)[1:], *extra)
                benchmark = matrix.BENCHMARKS[cell.benchmark]
                found = [Run(Path(cell.run_dir).name, cell.run_dir, argv, benchmark.num_steps)]
            for run in found:
                runs.setdefault(run.run_dir, run)
        return Plan(tuple(data), tuple(runs.values()),
                    ("matrix", "--family", family, "--root", settings.out, "--out", f"{settings.out}/report"))
    return build


# ------------------------------------------------------------------------------------------------- the registry
MNIST_INPUTS = {"mnist_root": MNIST_ROOT}

TABLES: dict[str, Table] = {table.name: table for table in (
    Table("rebias_table1", "ReBias Table 1: Biased MNIST, unbiased accuracy by rho",
          "bash scripts/biased_mnist_table1.sh", "rho", ("0.999", "0.997", "0.995", "0.99"), (0, 1, 2), "epochs",
          MNIST_INPUTS, _biased_mnist, lambda settings, plan: require_mnist(settings.inputs["mnist_root"]),
          aliases=("biased_mnist_table1",)),
    Table("rebias_table2", "ReBias Table 2: 9-class ImageNet (biased, unbiased, ImageNet-A)",
          "TRAIN_ROOT=... VAL_ROOT=... bash scripts/imagenet_table2.sh", "method", REBIAS_METHODS, (0, 1, 2), "epochs",
          {"train_root": None, "val_root": None, "imageneta_root": ""},
          _rebias_large("main_imagenet.py", "imagenet", _imagenet_data, REBIAS_IMAGENET_FLAGS),
          lambda settings, plan: require_folders(settings, ("train_root", "val_root", "imageneta_root")),
          aliases=("imagenet_table2",)),
    Table("rebias_table3", "ReBias Table 3: Kinetics-10 -> Mimetics-10",
          "TRAIN_ROOT=... TRAIN_ANNOTATION=... EVAL_ROOT=... bash scripts/action_table3.sh", "method", REBIAS_METHODS,
          (0, 1, 2), "epochs",
          {"train_root": None, "train_annotation": None, "eval_root": None,
           "eval_annotation": "../shared/reference/data/mimetics/mimetics_v1.0.csv"},
          _rebias_large("main_action.py", "action", _action_data, REBIAS_ACTION_FLAGS),
          lambda settings, plan: require_folders(settings, ("train_root", "train_annotation", "eval_root",
                                                            "eval_annotation")),
          aliases=("action_table3",)),
    Table("lff_cmnist", "LfF's Colored MNIST table (LfF's protocol): Vanilla and LfF by ratio",
          "bash scripts/lff_cmnist_table.sh", "percent", CMNIST_PERCENTS, (0, 1, 2), "steps",
          {**MNIST_INPUTS, "data_dir": "data/cmnist_lff_paper"}, _lff_cmnist, _check_cmnist, LFF_CMNIST),
    Table("disent_cmnist", "DisEnt Table 1, Colored MNIST: Vanilla, LfF, DisEnt by ratio",
          "bash scripts/disent_cmnist_table.sh", "percent", CMNIST_PERCENTS, (0, 1, 2), "steps",
          {**MNIST_INPUTS, "data_dir": "data/cmnist_lff_lff"}, _disent_cmnist, _check_cmnist,
          DISENT_TABLE1["cmnist"]),
    Table("disent_cifar10c", "DisEnt Table 1, Corrupted CIFAR-10: Vanilla, LfF, DisEnt by ratio",
          'bash scripts/disent_sweep.sh cifar10c "vanilla lff ours"', "percent", CMNIST_PERCENTS, (0, 1, 2, 3, 4),
          "steps", {"data_dir": "dataset"}, _disent_sweep("cifar10c"),
          _check_disent_data("cifar10c", "python -m datasets.make_disent_data cifar10c --cifar_root CIFAR_ROOT "
                                         "--frost_dir ../shared/reference/data/lff_resource --out DATA_DIR")),
    Table("disent_bffhq", "DisEnt Table 1, BFFHQ: Vanilla, LfF, DisEnt",
          'bash scripts/disent_sweep.sh bffhq "vanilla lff ours"', "percent", ("0.5pct",), (0, 1, 2, 3, 4), "steps",
          {"data_dir": "dataset"}, _disent_sweep("bffhq"),
          _check_disent_data("bffhq", "BFFHQ is not generated: put DisEnt's published bffhq folder there")),
    *(Table(f"matrix_{family}", f"The comparison matrix, {matrix.FAMILIES[family].title}",
            f"FAMILY={family} bash scripts/matrix.sh", "benchmark", tuple(matrix.BENCHMARKS), (0, 1, 2), "steps",
            MNIST_INPUTS, _matrix(family), _check_cmnist) for family in matrix.FAMILIES),
)}
"""Every table reproduce.py knows, by name."""


TABLE_ALIASES: dict[str, str] = {alias: table.name for table in TABLES.values() for alias in table.aliases}
"""Other names of tables: the ReBias tables by their sweep scripts' names (``biased_mnist_table1``...)."""


def get_table(name: Any) -> Table:
    """The table called ``name`` (or one of its :data:`TABLE_ALIASES`); :class:`ConfigError` listing the tables
    otherwise."""
    name = TABLE_ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in TABLES:
        raise ConfigError(f"unknown table {name!r} (tables: {', '.join(TABLES)}; python reproduce.py list)")
    return TABLES[name]


def run_numbers(table: Table, runs: Iterable[Run]) -> list[str]:
    """For the Colored MNIST tables: one line per finished run with its unbiased accuracy (last step and best
    evaluation) beside the paper's mean ± std for that method and ratio; empty for the other tables."""
    lines = []
    for run in runs:
        if not table.paper or not run.finished():
            continue
        parsed = parse_run(run.results_path)
        paper = table.paper.get(parsed.method, {}).get(parsed.percent)
        shown = "no paper number" if paper is None else f"{paper.label(True)} {paper.value:.2f} ± {paper.std:.2f}"
        shortened = "" if parsed.paper_length else f"  (SHORTENED: {parsed.steps} steps)"
        lines.append(f"{parsed.method:8s} {parsed.percent:g} pct seed {parsed.seed}: unbiased accuracy "
                     f"{parsed.values['last']:.1f} at the last step, {parsed.values['best_test']:.1f} best "
                     f"evaluation | {shown}{shortened}")
    return lines

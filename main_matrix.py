"""One cell of the comparison matrix: a method on a benchmark with a family's networks (utils/matrix.py).

    python main_matrix.py --benchmark biased_mnist_rho0.997 --method rebias [--family mlp] [--seed 0] \\
        [--root ../shared/data] [--save_dir results/matrix/mlp/biased_mnist_rho0.997]

--benchmark   biased_mnist_rho0.997 | biased_mnist_rho0.990 | cmnist_lff_1pct | cmnist_disent_1pct
--method      vanilla (f alone and g alone: the Vanilla and Biased rows) | rebias | learnedmixin | rubi | lff | disent
              | a variant row of the family (mlp: rebias_median, ReBias with median kernel radii every epoch)
--family      mlp (CPU: the benchmark's MLP, colour-histogram g) | conv (SimpleConvNet 7x7 / 1x1; for GPUs)
--root        MNIST root for Biased MNIST (torchvision layout); --data_dir the generated Colored MNIST (default: the
              benchmark's folder, e.g. data/cmnist_lff_lff; ``python -m utils.matrix data`` prints the command)
The benchmark sets the length (--n_epochs evaluation intervals of --steps_per_epoch steps), --lr, --weight_decay,
--scheduler (StepLR every --lr_step_size intervals by --lr_gamma, or none) and --batch_size; the method adds its own
settings (utils/matrix.py own_settings: FG_RECIPES / STEP_RECIPES, a variant row's changes; DisEnt on DisEnt's
benchmark also --lr_decay_after_curr_step).
Any of them can be given to override it (the run is then no longer the matrix's protocol unless the length,
steps per epoch and batch size stay); a flag the method does not read is refused. Run control as
main_biased_mnist.py (--device, --resume, --overwrite, --limit_eval_batches, --progress, --tensorboard, --wandb,
--flush_denormal, ...); --limit_train_batches shortens the passes over the data (the loader then cycles), not the
epochs: --n_epochs and --steps_per_epoch shorten a run.
Outputs: SAVE_DIR/RUN_NAME/{config.json, last.pth, results.json}; RUN_NAME = <method><flags>_seed<seed> by default,
<flags> naming every flag that differs from the cell's settings (none for the matrix's own runs).
"""
from __future__ import annotations

from typing import Any

from munch import Munch

from datasets.lff_protocols import DEFAULT_PALETTE, DEFAULT_RENDERER
from experiment import (REBIAS_DEFAULTS, REBIAS_UNTYPED_FLAGS, USER_ERRORS, default_run_name, run_experiment,
                        validate_rebias)
from utils.config import build_config, require, run_cli
from utils.matrix import (BENCHMARKS, DISENT_CURR_STEP_FRACTION, FAMILIES, TRAINED_METHODS, VARIANTS, base_method,
                          ignored_flags, method_settings, registry_name, rows)

DEFAULTS: dict[str, Any] = {
    **REBIAS_DEFAULTS,
    "benchmark": None,
    "method": None,
    "family": "mlp",
    "root": None,
    "data_dir": None,
    "batch_size": 256,
    "steps_per_epoch": None,
    "lr_gamma": 0.1,
    "n_confusing_labels": 9,
    "q": 0.7,
    "ema_alpha": 0.7,
    "lambda_dis_align": 1.0,
    "lambda_swap_align": 1.0,
    "lambda_swap": 1.0,
    "curr_step": None,
    "lr_decay_after_curr_step": False,
    "num_workers": 0,
}


def cell_defaults(benchmark: str, method: str, family: str) -> dict[str, Any]:
    """The flag defaults of a matrix cell: :data:`DEFAULTS` with the benchmark's and the method's settings."""
    return {**DEFAULTS, **method_settings(BENCHMARKS[benchmark], method, family)}


def resolve(flags: dict[str, Any]) -> tuple[Munch, str]:
    """The run's configuration (defaults < benchmark and method settings < flags) and its METHODS name; a flag the
    method would not read is refused."""
    benchmark_name, method = flags.get("benchmark"), flags.get("method")
    require(benchmark_name in BENCHMARKS, f"--benchmark must be one of {list(BENCHMARKS)}, got {benchmark_name!r}")
    family = flags.get("family", "mlp")
    require(family in FAMILIES, f"--family must be one of {list(FAMILIES)}")
    variants = [name for name in rows(family) if name in VARIANTS]
    require(method in TRAINED_METHODS or method in variants,
            f"--method must be one of {list(TRAINED_METHODS) + variants} for --family {family}, got {method!r} (the "
            "Biased row is g of --method vanilla)")
    ignored = ignored_flags(method, flags)
    require(not ignored, f"--method {method} does not read " + ", ".join(f"--{flag}" for flag in ignored))
    benchmark = BENCHMARKS[benchmark_name]
    defaults = cell_defaults(benchmark_name, method, family)
    config = build_config(defaults, flags, untyped=REBIAS_UNTYPED_FLAGS + ("curr_step",))
    name = default_run_name(method, config, defaults, spelled=("benchmark", "method", "family", "seed", "data_dir"))
    config.run_name = config.run_name or f"{name}_seed{config.seed}"
    config.data_dir = config.data_dir or benchmark.data_dir
    config.train_correlation = benchmark.rho
    config.dataset, config.percent = "cmnist", benchmark.percent
    config.palette, config.render = DEFAULT_PALETTE, DEFAULT_RENDERER
    config.drop_last, config.select_on = benchmark.drop_last, "final"
    validate_rebias(config)
    require(config.steps_per_epoch >= 1, "--steps_per_epoch must be a positive integer")
    require(benchmark.source != "biased_mnist" or config.root is not None,
            "--root is required for Biased MNIST: the MNIST root (holding MNIST/raw/*-ubyte)")
    if registry_name(method) == "rebias":
        return config, "rebias"
    require(config.scheduler in ("StepLR", "none"), "--scheduler must be StepLR or none for lff and disent")
    config.num_steps = config.n_epochs * config.steps_per_epoch
    config.valid_freq = config.steps_per_epoch
    config.use_lr_decay = config.scheduler == "StepLR"
    config.lr_decay_step = config.lr_step_size * config.steps_per_epoch
    if config.curr_step is None:
        config.curr_step = round(DISENT_CURR_STEP_FRACTION * config.num_steps) if base_method(method) == "disent" else 0
    config.lr_decay_start = config.curr_step if config.lr_decay_after_curr_step else 0
    return config, registry_name(method)


def main(**flags: Any) -> None:
    """Train one matrix cell; see the module docstring for the flags."""
    config, registry_name = resolve(flags)
    results = run_experiment("matrix", registry_name, config,
                             defaults=cell_defaults(config.benchmark, config.method, config.family))
    if results is None:
        return
    split = BENCHMARKS[config.benchmark].unbiased_split
    rows = [("f", results["final_metrics"])] + [(f"g_{i}", m) for i, m in enumerate(results["g_metrics"])]
    for name, metrics in rows:
        print(f"{results['method']} on {config.benchmark} ({config.family}, seed {config.seed}) {name}: "
              f"unbiased ({split}) {metrics[split]:.2f}  "
              + "  ".join(f"{key}={value:.2f}" for key, value in metrics.items() if key != split))
    print(f"results: {config.save_dir}/{config.run_name}/results.json")


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)

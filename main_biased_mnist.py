"""Biased MNIST experiments of ReBias (Table 1): ReBias, Vanilla/Biased, LearnedMixin, RUBi.

    python main_biased_mnist.py --root ROOT [--train_correlation 0.999] [--flag value ...]

Flags (defaults as in the original code):
  --root                  MNIST root (torchvision layout: ROOT/MNIST/raw/*-ubyte)
  --batch_size 256        --train_correlation 0.999 (rho)   --n_confusing_labels 9
  --lr 0.001              --optim Adam|AdamP                --weight_decay 0.0001
  --n_epochs 80           --lr_step_size 20                 --scheduler StepLR|CosineAnnealingLR|none
  --n_f_pretrain_epochs 0 --n_g_pretrain_epochs 0
  --f_lambda_outer 1      --g_lambda_inner 1                --n_g_update 1 (0 freezes g)   --update_g_cls True
  --outer_criterion RbfHSIC|LearnedMixin|RUBi              --inner_criterion MinusRbfHSIC
  --rbf_sigma_x 1 | median  --rbf_sigma_y 1   --rbf_sigma_scale_x 1  --rbf_sigma_scale_y 1
  --update_sigma_per_epoch False  --sigma_update_sampling_rate 0.25  --hsic_alg unbiased|biased
  --feature_pos post|pre|logits   --n_g_nets 1   --f_kernel_size 7   --g_kernel_size 1
  --untrained_comparison_fc False (original quirk: LearnedMixin/RUBi fc layers never trained)
  --swap_inner_sigma False        (original quirk: inner HSIC(g, f) puts f's kernel radius on g, g's on f)
Run control:
  --seed 0  --seeds 0,1,2 (several seeds in one process, as seed-stacked networks; Adam only; each seed's
            config.json and results.json in SAVE_DIR/NAME_seed<k>/, the shared checkpoint in SAVE_DIR/NAME_seeds0-1-2/,
            NAME = --run_name or biased_mnist_<method>_rho<rho><flags>)
  --deterministic False  --device cuda|cpu (default: cuda if available)  --amp none|bf16
  --flush_denormal True (on a CPU, flush denormal floats to zero: much faster late in training)
  --channels_last False  --compile False (torch.compile the networks)
  --save_dir ./checkpoints  --run_name NAME (default: biased_mnist_<method>_rho<rho><flags>_seed<seed>, where
            <flags> is _<flag>-<value> for every flag that changes the result and differs from its default)
  --overwrite False (replace a finished run's results.json; otherwise such a run is refused)
  --resume [auto|PATH]  --tensorboard  --wandb  --wandb_project debias  --progress True
  --limit_train_batches N  --limit_eval_batches N  (per epoch; an int, or a fraction in (0, 1])
  --val_epoch_step 1  --checkpoint_every_steps N (also write last.pth every N steps; default: every epoch only)
Outputs: SAVE_DIR/RUN_NAME/{config.json, last.pth, results.json, tensorboard/}.
"""
from __future__ import annotations

from typing import Any

from munch import Munch
from experiment import (REBIAS_DEFAULTS, REBIAS_UNTYPED_FLAGS, RUN_CONTROL_FLAGS, USER_ERRORS,
                        print_rebias_results, rebias_run_name, run_experiment, validate_rebias)
from methods.rebias import rebias_method_name
from reports.paper_numbers import REBIAS_TABLE1_UNBIASED
from trainer import SeedStackedTrainer
from utils.config import build_config, parse_seeds, require, run_cli
from utils.distributed import launched_by_torchrun

DEFAULTS: dict[str, Any] = {
    **REBIAS_DEFAULTS,
    "root": None,
    "batch_size": 256,
    "train_correlation": 0.999,
    "n_confusing_labels": 9,
    "f_kernel_size": 7,
    "g_kernel_size": 1,
    "seeds": None,
}
PAPER_COMMAND = "python main_biased_mnist.py --root {root} --train_correlation {rho}"
PAPER_UNBIASED = {method: values for method, values in REBIAS_TABLE1_UNBIASED.items() if method != "Biased"}
"""f's unbiased accuracy (%) in the paper's Table 1 (80 epochs, mean of 3 runs), by method and rho."""
SHORTENING_FLAGS = ("n_epochs", "batch_size", "limit_train_batches", "limit_eval_batches")
COLOUR_ONLY_UNBIASED = 20.0
"""Below this unbiased accuracy (%) f has learned little beyond the background colour, which alone gives ~10 %."""


def validate(config) -> None:
    """One-line errors for impossible flag values."""
    validate_rebias(config)
    require(config.root is not None, "--root is required: the MNIST root (holding MNIST/raw/*-ubyte)")
    rho = config.train_correlation
    require(0 < rho <= 1, f"--train_correlation must lie in (0, 1], got {rho}")
    require(1 <= config.n_confusing_labels <= 9,
            f"--n_confusing_labels must lie in 1..9, got {config.n_confusing_labels}")
    for flag in ("f_kernel_size", "g_kernel_size"):
        require(config[flag] >= 1 and config[flag] % 2 == 1, f"--{flag} must be a positive odd integer")
    config.seeds = parse_seeds(config.seeds)
    if config.seeds is not None:
        require(config.optim == "Adam", "--seeds needs --optim Adam: AdamP's per-tensor projection would couple "
                                        "the seeds stacked in one tensor")
        require(not launched_by_torchrun(), "--seeds fills one device; under torchrun train the seeds separately")


def main(**flags: Any) -> None:
    """Train one Biased MNIST model (or one per seed with --seeds); see the module docstring for the flags."""
    config = build_config(DEFAULTS, flags, untyped=REBIAS_UNTYPED_FLAGS + ("seeds",))
    validate(config)
    method = rebias_method_name(config)
    name = rebias_run_name(f"biased_mnist_{method}_rho{config.train_correlation}", config, DEFAULTS,
                           spelled=("train_correlation",))
    if config.seeds is None:
        config.run_name = config.run_name or f"{name}_seed{config.seed}"
        results = run_experiment("biased_mnist", "rebias", config, defaults=DEFAULTS)
        runs = [] if results is None else [results]
    else:
        base = config.run_name or name
        config.seed_run_names = [f"{base}_seed{seed}" for seed in config.seeds]
        config.run_name = f"{base}_seeds{'-'.join(map(str, config.seeds))}"
        results = run_experiment("biased_mnist_seeds", "rebias_seeds", config, SeedStackedTrainer, defaults=DEFAULTS)
        runs = [] if results is None else results["runs"]
    for run in runs:
        run_config = Munch(run["config"])
        print_rebias_results(run, f"{method} (rho={config.train_correlation}, seed={run_config.seed})", run_config)
    shortened = (config.limit_train_batches is not None or config.limit_eval_batches is not None
                 or config.n_epochs < DEFAULTS["n_epochs"])
    if runs and shortened:
        print(shortened_run_note(config, method, [run["metrics"]["unbiased"] for run in runs]))


def paper_command(config: Munch) -> str:
    """This run's command at the paper's length: its flags that differ from the defaults, less the shortening and
    run-control ones."""
    skipped = RUN_CONTROL_FLAGS | set(SHORTENING_FLAGS) | {"train_correlation", "seeds"}
    flags = "".join(f" --{flag} {config[flag]}" for flag, default in DEFAULTS.items()
                    if flag not in skipped and config[flag] != default)
    return PAPER_COMMAND.format(root=config.root, rho=config.train_correlation) + flags


def shortened_run_note(config: Munch, method: str, unbiased: list[float]) -> str:
    """What a shortened run shows: near-chance unbiased accuracy means only colour has been learned yet (the README's
    first command ends at about 8-10 % on a CPU), and the paper-length command with the paper's figure."""
    lines = ["This was a shortened run."]
    if max(unbiased) < COLOUR_ONLY_UNBIASED:
        accuracies = ", ".join(f"{value:.1f}" for value in unbiased)
        lines.append(f"Its unbiased accuracy ({accuracies} %) is near chance (10 %): this early, the networks have "
                     "learned at most the background colour (a colour-only model scores ~10 %), as expected; this is "
                     "not a failure.")
    paper = PAPER_UNBIASED.get(method, {}).get(config.train_correlation)
    reaches = "" if paper is None else (f"; the paper reports {paper} % unbiased accuracy for {method} at "
                                        f"rho={config.train_correlation}")
    lines.append(f"The paper-length run (80 epochs, batches of 256, best on a GPU){reaches}:\n"
                 f"  {paper_command(config)}")
    return "\n".join(lines)


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)

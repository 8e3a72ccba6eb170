"""Biased MNIST experiments of ReBias (Table 1): ReBias, Vanilla/Biased, LearnedMixin, RUBi.

    python main_biased_mnist.py --root ROOT [--train_correlation 0.999] [--flag value ...]

Flags (defaults as in the original code):
  --root                  MNIST root (torchvision layout: ROOT/MNIST/raw/*-ubyte)
  --batch_size 256        --train_correlation 0.999 (rho)   --n_confusing_labels 9
  --lr 0.001              --optim Adam|AdamP                --weight_decay 0.0001
  --n_epochs 80           --lr_step_size 20                 --scheduler StepLR|CosineAnnealingLR
  --n_f_pretrain_epochs 0 --n_g_pretrain_epochs 0
  --f_lambda_outer 1      --g_lambda_inner 1                --n_g_update 1 (0 freezes g)   --update_g_cls True
  --outer_criterion RbfHSIC|LearnedMixin|RUBi              --inner_criterion MinusRbfHSIC
  --rbf_sigma_x 1 | median  --rbf_sigma_y 1   --rbf_sigma_scale_x 1  --rbf_sigma_scale_y 1
  --update_sigma_per_epoch False  --sigma_update_sampling_rate 0.25  --hsic_alg unbiased|biased
  --feature_pos post|pre|logits   --n_g_nets 1   --f_kernel_size 7   --g_kernel_size 1
  --untrained_comparison_fc False (original quirk: LearnedMixin/RUBi fc layers never trained)
  --swap_inner_sigma False        (original quirk: inner HSIC kernel radii swapped; matters with median sigma)
Run control:
  --seed 0  --deterministic False  --device cuda|cpu (default: cuda if available)  --amp none|bf16
  --channels_last False  --compile False (torch.compile the networks)
  --save_dir ./checkpoints  --run_name NAME (default: biased_mnist_<method>_rho<rho>_seed<seed>)
  --resume [auto|PATH]  --tensorboard  --wandb  --wandb_project debias  --progress True
  --limit_train_batches N  --limit_eval_batches N  (per epoch; an int, or a fraction in (0, 1])
  --val_epoch_step 1
Outputs: SAVE_DIR/RUN_NAME/{config.json, last.pth, results.json, tensorboard/}.
"""
from __future__ import annotations

from typing import Any

from experiment import (COMMON_DEFAULTS, REBIAS_UNTYPED_FLAGS, USER_ERRORS, print_rebias_results, run_experiment,
                        validate_rebias)
from methods.rebias import rebias_method_name
from utils.config import build_config, require, run_cli

DEFAULTS: dict[str, Any] = {
    "root": None,
    "batch_size": 256,
    "train_correlation": 0.999,
    "n_confusing_labels": 9,
    "lr": 0.001,
    "weight_decay": 1e-4,
    "optim": "Adam",
    "n_epochs": 80,
    "lr_step_size": 20,
    "scheduler": "StepLR",
    "n_f_pretrain_epochs": 0,
    "n_g_pretrain_epochs": 0,
    "f_lambda_outer": 1.0,
    "g_lambda_inner": 1.0,
    "n_g_update": 1,
    "update_g_cls": True,
    "outer_criterion": "RbfHSIC",
    "inner_criterion": "MinusRbfHSIC",
    "rbf_sigma_scale_x": 1.0,
    "rbf_sigma_scale_y": 1.0,
    "rbf_sigma_x": 1,
    "rbf_sigma_y": 1,
    "update_sigma_per_epoch": False,
    "sigma_update_sampling_rate": 0.25,
    "hsic_alg": "unbiased",
    "feature_pos": "post",
    "n_g_nets": 1,
    "f_kernel_size": 7,
    "g_kernel_size": 1,
    "untrained_comparison_fc": False,
    "swap_inner_sigma": False,
    **COMMON_DEFAULTS,
}
PAPER_COMMAND = "python main_biased_mnist.py --root {root} --train_correlation {rho}"


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


def main(**flags: Any) -> None:
    """Train one Biased MNIST model; see the module docstring for the flags."""
    config = build_config(DEFAULTS, flags, untyped=REBIAS_UNTYPED_FLAGS)
    validate(config)
    method = rebias_method_name(config)
    config.run_name = config.run_name or f"biased_mnist_{method}_rho{config.train_correlation}_seed{config.seed}"
    results = run_experiment("biased_mnist", "rebias", config)
    if results is None:
        return
    print_rebias_results(results, f"{method} (rho={config.train_correlation}, seed={config.seed})", config)
    shortened = (config.limit_train_batches is not None or config.limit_eval_batches is not None
                 or config.n_epochs < DEFAULTS["n_epochs"])
    if shortened:
        print("This was a shortened run. The paper-length run (80 epochs, best on a GPU):\n  "
              + PAPER_COMMAND.format(root=config.root, rho=config.train_correlation))


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)

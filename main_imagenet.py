"""9-class ImageNet experiments of ReBias (Table 2): ReBias, Vanilla/Biased, LearnedMixin, RUBi.

    python main_imagenet.py --train_root IN/train --val_root IN/val [--imageneta_root IN-A] [--flag value ...]

Flags (defaults as in the original code):
  --train_root, --val_root  ImageNet-style folders (ROOT/<wnid>/*.JPEG); only the 42 wnids of the 9 classes are read
  --imageneta_root          ImageNet-A folder (optional; adds the 'imagenet-a' accuracy)
  --cluster_csv ../shared/reference/data/rebias_clusters/9class_imagenet_val.csv  (texture clusters of val)
  --min_cell_count 10       (class, cluster) cells with fewer samples are left out of the unbiased accuracy
  --batch_size 128          --num_classes 9 (must be 9)     --image_size 224   --num_workers 8
  --lr 0.001                --optim Adam|AdamP              --weight_decay 0.0001
  --n_epochs 120            --lr_step_size 30               --scheduler CosineAnnealingLR|StepLR|none
  --n_f_pretrain_epochs 0   --n_g_pretrain_epochs 0
  --f_lambda_outer 1        --g_lambda_inner 1              --n_g_update 1 (0 freezes g)   --update_g_cls True
  --outer_criterion RbfHSIC|LearnedMixin|RUBi              --inner_criterion MinusRbfHSIC
  --rbf_sigma_x median | number  --rbf_sigma_y median | number  --rbf_sigma_scale_x 1  --rbf_sigma_scale_y 1
  --update_sigma_per_epoch True  --sigma_update_sampling_rate 0.25  --hsic_alg unbiased|biased
  --feature_pos post|pre|logits  --n_g_nets 1
  --final_bottleneck_dim 0  (accepted for compatibility; unused, as in the original)
  --log_step 10             (accepted for compatibility; losses are logged every 10 steps)
  --untrained_comparison_fc False (original quirk: LearnedMixin/RUBi fc layers never trained)
  --swap_inner_sigma False        (original quirk: inner HSIC(g, f) puts f's kernel radius on g, g's on f)
Run control:
  --seed 0  --deterministic False  --device cuda|cpu (default: cuda if available)  --amp none|bf16
  --flush_denormal True (on a CPU, flush denormal floats to zero)
  --channels_last False  --compile False
  --save_dir ./checkpoints  --run_name NAME (default: imagenet_<method><flags>_seed<seed>, where <flags> is
            _<flag>-<value> for every flag that changes the result and differs from its default)
  --overwrite False (replace a finished run's results.json; otherwise such a run is refused)
  --resume [auto|PATH]  --tensorboard  --wandb  --wandb_project debias  --progress True
  --limit_train_batches N  --limit_eval_batches N  --val_epoch_step 1
  --checkpoint_every_steps N (also write last.pth every N training steps; default: after every epoch only)
Several GPUs or nodes: torchrun --nproc_per_node N main_imagenet.py ... (--batch_size is per process).
Outputs: SAVE_DIR/RUN_NAME/{config.json, last.pth, results.json, tensorboard/}.
"""
from __future__ import annotations

from typing import Any

from experiment import (REBIAS_DEFAULTS, REBIAS_UNTYPED_FLAGS, USER_ERRORS, print_rebias_results, rebias_run_name,
                        run_experiment, validate_rebias)
from methods.rebias import rebias_method_name
from utils.config import build_config, require, run_cli

DEFAULTS: dict[str, Any] = {
    **REBIAS_DEFAULTS,
    "train_root": None,
    "val_root": None,
    "imageneta_root": None,
    "cluster_csv": "../shared/reference/data/rebias_clusters/9class_imagenet_val.csv",
    "min_cell_count": 10,
    "batch_size": 128,
    "num_classes": 9,
    "image_size": 224,
    "num_workers": 8,
    "n_epochs": 120,
    "lr_step_size": 30,
    "scheduler": "CosineAnnealingLR",
    "rbf_sigma_x": "median",
    "rbf_sigma_y": "median",
    "update_sigma_per_epoch": True,
    "final_bottleneck_dim": 0,
    "log_step": 10,
}
PAPER_COMMAND = "python main_imagenet.py --train_root {train_root} --val_root {val_root}"


def validate(config) -> None:
    """One-line errors for impossible flag values."""
    validate_rebias(config)
    require(config.train_root is not None, "--train_root is required: an ImageNet train folder (ROOT/<wnid>/*.JPEG)")
    require(config.val_root is not None, "--val_root is required: an ImageNet val folder (ROOT/<wnid>/*.JPEG)")
    require(config.num_classes == 9, f"--num_classes must be 9 (the 9 super-classes), got {config.num_classes}")
    require((config.rbf_sigma_x == "median") == (config.rbf_sigma_y == "median"),
            "--rbf_sigma_x and --rbf_sigma_y must both be 'median' or both be numbers")
    require(config.outer_criterion in ("RbfHSIC", "MinusRbfHSIC") or config.feature_pos == "post",
            f"--outer_criterion {config.outer_criterion} needs --feature_pos post (512-d features)")
    require(config.min_cell_count >= 1, f"--min_cell_count must be at least 1, got {config.min_cell_count}")
    require(config.image_size >= 32, f"--image_size must be at least 32, got {config.image_size}")
    for flag in ("num_workers", "final_bottleneck_dim", "log_step"):
        require(config[flag] >= 0, f"--{flag} must be >= 0, got {config[flag]}")


def main(**flags: Any) -> None:
    """Train one 9-class ImageNet model; see the module docstring for the flags."""
    config = build_config(DEFAULTS, flags, untyped=REBIAS_UNTYPED_FLAGS)
    validate(config)
    method = rebias_method_name(config)
    name = rebias_run_name(f"imagenet_{method}", config, DEFAULTS)
    config.run_name = config.run_name or f"{name}_seed{config.seed}"
    results = run_experiment("imagenet", "rebias", config, defaults=DEFAULTS)
    if results is None:
        return
    print_rebias_results(results, f"{method} (9-class ImageNet, seed={config.seed})", config)
    shortened = (config.limit_train_batches is not None or config.limit_eval_batches is not None
                 or config.n_epochs < DEFAULTS["n_epochs"] or config.image_size != DEFAULTS["image_size"])
    if shortened:
        print("This was a shortened run. The paper-length run (120 epochs at 224 px, on GPUs):\n  "
              + PAPER_COMMAND.format(train_root=config.train_root, val_root=config.val_root))


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)

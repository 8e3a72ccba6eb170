"""Kinetics-10 -> Mimetics-10 action recognition of ReBias (Table 3): ReBias, Vanilla/Biased, LearnedMixin, RUBi.

    python main_action.py --train_root KINETICS --train_annotation_file kinetics.json --eval_root MIMETICS [...]

Data (spec §11):
  --train_root              Kinetics root: ROOT/{train,val}/<label>/<video>.{mp4,mkv,webm,mp4.mkv,mp4.webm}
  --train_annotation_file   Kinetics JSON (database.<key>.subset / annotations.label) or CSV
                            (label,youtube_id,time_start,time_end,split); labels with spaces or underscores
  --eval_root               Mimetics root: ROOT/data/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4
  --eval_annotation_file ../shared/reference/data/mimetics/mimetics_v1.0.csv
  --train_dataset kinetics10  --eval_dataset mimetics10  --num_classes 10 (the only supported values)
  --frame_folders False     videos pre-extracted to folders of frames (the video path without extension is a
                            folder of img_00001.jpg ...), read at --frames_fps 30
  --num_frames 8  --sampling_rate 8  --target_fps 30      (clip: 8 frames, 8 apart at 30 fps)
  --crop_size 224  --train_min_scale 256  --train_max_scale 320  --test_crop_size 256  --num_clips 10
  --kinetics_val_protocol original|multiclip  ('original': one clip with the training transforms, as the
                            original's Kinetics validation; 'multiclip': like Mimetics)
  --num_workers 8
Model and optimisation (defaults as in the original code):
  --resnet_depth 18  --resnet_base_width 32 (widths 32..1024)
  --f_temporal_kernel_sizes 33333 (3D ResNet)  --g_temporal_kernel_sizes 11111 (frame-wise 2D ResNet)
  --batch_size 128          --lr 0.1                        --optim Adam|AdamP   --weight_decay 0.0001
  --n_epochs 120            --lr_step_size 20               --scheduler CosineAnnealingLR|StepLR|none
  --n_f_pretrain_epochs 0   --n_g_pretrain_epochs 0
  --f_lambda_outer 1        --g_lambda_inner 1              --n_g_update 1 (0 freezes g)   --update_g_cls True
  --outer_criterion RbfHSIC|LearnedMixin|RUBi              --inner_criterion MinusRbfHSIC
  --rbf_sigma_x 1 | median  --rbf_sigma_y 1 | median  --rbf_sigma_scale_x 2  --rbf_sigma_scale_y 0.5
                            (the scales only apply to median radii, as in the original)
  --update_sigma_per_epoch False  --sigma_update_sampling_rate 0.25  --hsic_alg unbiased|biased
  --feature_pos post|logits  --n_g_nets 1
  --final_bottleneck_dim 0  --log_step 10  (accepted for compatibility; the bottleneck is not implemented)
  --untrained_comparison_fc False (original quirk: LearnedMixin/RUBi fc layers never trained)
  --swap_inner_sigma False        (original quirk: inner HSIC(g, f) puts f's kernel radius on g, g's on f)
Run control:
  --seed 0  --deterministic False  --device cuda|cpu (default: cuda if available)  --amp none|bf16
  --flush_denormal True (on a CPU, flush denormal floats to zero)
  --channels_last False  --compile False
  --save_dir ./checkpoints  --run_name NAME (default: action_<method><flags>_seed<seed>, where <flags> is
            _<flag>-<value> for every flag that changes the result and differs from its default)
  --overwrite False (replace a finished run's results.json; otherwise such a run is refused)
  --resume [auto|PATH]  --tensorboard  --wandb  --wandb_project debias  --progress True
  --limit_train_batches N  --limit_eval_batches N  --val_epoch_step 20
  --checkpoint_every_steps N (also write last.pth every N training steps; default: after every epoch only)
Several GPUs or nodes: torchrun --nproc_per_node N main_action.py ... (--batch_size is per process).
Outputs: SAVE_DIR/RUN_NAME/{config.json, last.pth, results.json, tensorboard/}.
"""
from __future__ import annotations

from typing import Any

from experiment import (REBIAS_DEFAULTS, REBIAS_UNTYPED_FLAGS, USER_ERRORS, print_rebias_results, rebias_run_name,
                        run_experiment, validate_rebias)
from methods.rebias import rebias_method_name
from models.action_models.resnet3d import STAGE_BLOCKS
from tasks.action import KINETICS_VAL_PROTOCOLS
from utils.config import build_config, require, run_cli

DEFAULTS: dict[str, Any] = {
    **REBIAS_DEFAULTS,
    "train_root": None,
    "train_annotation_file": None,
    "eval_root": None,
    "eval_annotation_file": "../shared/reference/data/mimetics/mimetics_v1.0.csv",
    "train_dataset": "kinetics10",
    "eval_dataset": "mimetics10",
    "frame_folders": False,
    "frames_fps": 30.0,
    "num_frames": 8,
    "sampling_rate": 8,
    "target_fps": 30.0,
    "crop_size": 224,
    "train_min_scale": 256,
    "train_max_scale": 320,
    "test_crop_size": 256,
    "num_clips": 10,
    "kinetics_val_protocol": "original",
    "num_workers": 8,
    "batch_size": 128,
    "num_classes": 10,
    "lr": 0.1,
    "n_epochs": 120,
    "scheduler": "CosineAnnealingLR",
    "rbf_sigma_scale_x": 2.0,
    "rbf_sigma_scale_y": 0.5,
    "final_bottleneck_dim": 0,
    "resnet_depth": 18,
    "f_temporal_kernel_sizes": "33333",
    "g_temporal_kernel_sizes": "11111",
    "resnet_base_width": 32,
    "log_step": 10,
    "val_epoch_step": 20,
}
PAPER_COMMAND = ("python main_action.py --train_root {train_root} --train_annotation_file {train_annotation_file} "
                 "--eval_root {eval_root}")


def _is_kernel_string(value: str) -> bool:
    return len(value) == 5 and all(digit in "1357" for digit in value)


def validate(config) -> None:
    """One-line errors for impossible flag values."""
    validate_rebias(config)
    require(config.train_root is not None,
            "--train_root is required: the Kinetics root (ROOT/{train,val}/<label>/<video>)")
    require(config.train_annotation_file is not None,
            "--train_annotation_file is required: the Kinetics annotation JSON or CSV")
    require(config.eval_root is not None, "--eval_root is required: the Mimetics root (ROOT/data/<label>/<video>)")
    require(config.train_dataset == "kinetics10", f"--train_dataset must be 'kinetics10', got {config.train_dataset!r}")
    require(config.eval_dataset == "mimetics10", f"--eval_dataset must be 'mimetics10', got {config.eval_dataset!r}")
    require(config.num_classes == 10, f"--num_classes must be 10 (Kinetics-10), got {config.num_classes}")
    require((config.rbf_sigma_x == "median") == (config.rbf_sigma_y == "median"),
            "--rbf_sigma_x and --rbf_sigma_y must both be 'median' or both be numbers")
    require(config.feature_pos in ("post", "logits"), "--feature_pos must be 'post' or 'logits'")
    require(config.resnet_depth in STAGE_BLOCKS, f"--resnet_depth must be one of {sorted(STAGE_BLOCKS)}, "
                                                 f"got {config.resnet_depth}")
    for flag in ("f_temporal_kernel_sizes", "g_temporal_kernel_sizes"):
        require(_is_kernel_string(config[flag]),
                f"--{flag} must be 5 odd digits (stem, s2..s5), e.g. 33333, got {config[flag]!r}")
    require(config.final_bottleneck_dim == 0, "--final_bottleneck_dim is not implemented; use 0")
    require(config.kinetics_val_protocol in KINETICS_VAL_PROTOCOLS,
            f"--kinetics_val_protocol must be one of {KINETICS_VAL_PROTOCOLS}, got {config.kinetics_val_protocol!r}")
    for flag in ("resnet_base_width", "num_frames", "sampling_rate", "num_clips", "crop_size", "test_crop_size"):
        require(config[flag] >= 1, f"--{flag} must be at least 1, got {config[flag]}")
    require(config.crop_size <= config.train_min_scale <= config.train_max_scale,
            "--crop_size <= --train_min_scale <= --train_max_scale must hold")
    for flag in ("target_fps", "frames_fps"):
        require(config[flag] > 0, f"--{flag} must be positive, got {config[flag]}")
    for flag in ("num_workers", "log_step"):
        require(config[flag] >= 0, f"--{flag} must be >= 0, got {config[flag]}")


def main(**flags: Any) -> None:
    """Train one Kinetics-10 model and evaluate it on Mimetics-10; see the module docstring for the flags."""
    config = build_config(DEFAULTS, flags, untyped=REBIAS_UNTYPED_FLAGS)
    validate(config)
    method = rebias_method_name(config)
    name = rebias_run_name(f"action_{method}", config, DEFAULTS)
    config.run_name = config.run_name or f"{name}_seed{config.seed}"
    results = run_experiment("action", "rebias", config, defaults=DEFAULTS)
    if results is None:
        return
    print_rebias_results(results, f"{method} (Kinetics-10 -> Mimetics-10, seed={config.seed})", config)
    skipped = "  ".join(f"{name}: {counts['missing']} missing, {counts['undecodable']} undecodable"
                        for name, counts in results["skipped_videos"].items())
    print(f"skipped videos: {skipped}")
    shortened = (config.limit_train_batches is not None or config.limit_eval_batches is not None
                 or config.n_epochs < DEFAULTS["n_epochs"] or config.crop_size != DEFAULTS["crop_size"])
    if shortened:
        print("This was a shortened run. The paper-length run (120 epochs at 224 px, on GPUs):\n  "
              + PAPER_COMMAND.format(train_root=config.train_root, train_annotation_file=config.train_annotation_file,
                                     eval_root=config.eval_root))


if __name__ == "__main__":
    run_cli(main, user_errors=USER_ERRORS)

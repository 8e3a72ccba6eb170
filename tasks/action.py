"""Kinetics-10 -> Mimetics-10 action recognition of ReBias (Table 3): f = 3D ResNet-18, g = frame-wise 2D ResNet-18.

Training: Kinetics-10 ``train`` (one random clip per video and epoch, drop_last as in the original). Evaluation
(spec §9, §11):

* ``unbiased``: Mimetics-10, ``num_clips`` uniform clips x one left/top 256 px crop per video; a video's prediction
  is the argmax of its clips' summed softmax probabilities (the loader yields the clips of each video stacked, and
  :func:`evaluator.multi_clip_scores` aggregates them);
* ``biased``: Kinetics-10 ``val``, by default as in the original (``--kinetics_val_protocol original``: one clip
  with the training transforms, seeded per video here), or like Mimetics (``multiclip``).

There is no bias label: ``bias = 0`` for every video, so ``per_cell_accuracy`` is the per-class accuracy.
Videos absent from disk or undecodable are left out (see :mod:`datasets.kinetics`); their numbers are printed at
start-up and written to ``results.json`` as ``skipped_videos``.
"""
from __future__ import annotations

from typing import Any

import torch
from munch import Munch
from torch import nn

from datasets.kinetics import (ACTION_CLASSES, ClipSettings, VideoClips, read_kinetics_annotations,
                               read_mimetics_annotations)
from datasets.loaders import DeviceLoader
from datasets.mnist_io import DataNotFoundError
from models.action_models import ResNet3D, feature_map_size
from tasks.base import Task
from utils.distributed import all_reduce_sum, is_main_process, world_size
from utils.seed import derived_seed

KINETICS_VAL_PROTOCOLS = ("original", "multiclip")


def clip_settings(config: Munch) -> ClipSettings:
    """The clip sampling and sizes of ``config`` (flags of main_action.py)."""
    return ClipSettings(num_frames=config.num_frames, sampling_rate=config.sampling_rate,
                        target_fps=config.target_fps, crop_size=config.crop_size, min_scale=config.train_min_scale,
                        max_scale=config.train_max_scale, test_crop_size=config.test_crop_size,
                        num_clips=config.num_clips)


class ActionTask(Task):
    """Kinetics-10 (train, ``biased``) and Mimetics-10 (``unbiased``, multi-clip)."""

    name = "action"
    num_classes = len(ACTION_CLASSES)
    num_biases = 1

    def __init__(self, config: Munch, device: torch.device):
        self.config = config
        self.device = device
        settings = clip_settings(config)
        frames = dict(frame_folders=config.frame_folders, frames_fps=config.frames_fps)
        train_root = config.train_root
        annotations = {"train": read_kinetics_annotations(config.train_annotation_file, "train"),
                       "val": read_kinetics_annotations(config.train_annotation_file, "val"),
                       "mimetics": read_mimetics_annotations(config.eval_annotation_file)}
        train = VideoClips(f"{train_root}/train", annotations["train"], mode="train", settings=settings,
                           seed=config.seed, **frames)
        per_process = len(train) // world_size()
        if per_process < config.batch_size:
            raise DataNotFoundError(f"Kinetics-10 train has {len(train)} videos, fewer than --batch_size "
                                    f"{config.batch_size} per process (the incomplete last batch is dropped)")
        val_mode = "val" if config.kinetics_val_protocol == "original" else "test"
        kinetics_val = VideoClips(f"{train_root}/val", annotations["val"], mode=val_mode, settings=settings,
                                  probe=True, seed=derived_seed(config.seed, 2), **frames)
        mimetics = VideoClips(f"{config.eval_root}/data", annotations["mimetics"], mode="test", settings=settings,
                              probe=True, **frames)
        self.datasets = {"train": train, "unbiased": mimetics, "biased": kinetics_val}
        self.train_loader = DeviceLoader(train, config.batch_size, shuffle=True, device=device,
                                         seed=derived_seed(config.seed, 1), num_workers=config.num_workers,
                                         drop_last=True)
        video_batch = max(1, config.batch_size // config.num_clips)
        self.eval_loaders = {
            name: DeviceLoader(dataset, video_batch if dataset.mode == "test" else config.batch_size, shuffle=False,
                               device=device, num_workers=config.num_workers)
            for name, dataset in (("unbiased", mimetics), ("biased", kinetics_val))}
        self.feature_dim = config.resnet_base_width * 32
        self.criterion_extras = {"feat_dim": self.feature_dim if config.feature_pos == "post" else self.num_classes,
                                 "num_classes": self.num_classes}
        if is_main_process():
            for name, dataset in self.datasets.items():
                counts = dataset.skip_counts()
                print(f"{name}: {len(dataset)} videos from {dataset.folder} ({counts['missing']} annotated videos "
                      f"not on disk, {counts['undecodable']} undecodable)", flush=True)

    def _network(self, temporal_kernel_sizes: str) -> nn.Module:
        config = self.config
        return ResNet3D(self.num_classes, temporal_kernel_sizes=temporal_kernel_sizes, depth=config.resnet_depth,
                        width_per_group=config.resnet_base_width, feature_pos=config.feature_pos,
                        pool_size=feature_map_size(config.num_frames, config.crop_size))

    def build_f(self) -> nn.Module:
        return self._network(self.config.f_temporal_kernel_sizes)

    def build_g(self) -> nn.Module:
        return self._network(self.config.g_temporal_kernel_sizes)

    def skipped_videos(self) -> dict[str, dict[str, int]]:
        """Per dataset, the videos not on disk and the undecodable ones (over all processes under torchrun)."""
        counts = {name: dataset.skip_counts() for name, dataset in self.datasets.items()}
        failed = all_reduce_sum(self.datasets["train"].failed.to(self.device, torch.int32))
        counts["train"]["undecodable"] = (len(self.datasets["train"].undecodable_at_start)
                                          + int((failed > 0).sum()))
        return counts

    def results_fields(self) -> dict[str, Any]:
        return {"crop_size": self.config.crop_size, "num_clips": self.config.num_clips,
                "skipped_videos": self.skipped_videos()}

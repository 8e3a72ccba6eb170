"""Kinetics-10 and Mimetics-10 of ReBias (spec §11): annotations, on-disk layouts, clip sampling and transforms.

* Classes: every 5th class of Mimetics' ``mimetics_v1.0_clsannot.txt`` (:data:`ACTION_CLASSES`, labels 0-9).
  Labels are compared after :func:`normalise_label`, so ``shooting goal (soccer)`` (Kinetics) and
  ``shooting_goal_(soccer)`` (Mimetics) match; the original matched underscores only (spec §14.4).
* Kinetics: an ActivityNet-style JSON (``{"database": {key: {"subset", "annotations": {"label", "segment"}}}}``, or
  the same entries at the top level) or the official CSV ``label,youtube_id,time_start,time_end,split``; videos
  ``ROOT/{train|val}/<label>/<name>{.mp4|.mkv|.webm|.mp4.mkv|.mp4.webm}`` where ``<name>`` is the key, the key
  without its ``_<start:06d>_<end:06d>`` suffix, or ``<youtube_id>_<start:06d>_<end:06d>``.
* Mimetics: the CSV ``label,youtube_id,time_start,time_end,split,is_cc``; videos
  ``ROOT/data/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``.
* Pre-extracted frames (``frame_folders=True``): the same paths without extension are folders of images
  (``img_00001.jpg``, ...; any ``.jpg``/``.jpeg``/``.png`` names, read in sorted order) at ``frames_fps``.

Clips are 8 frames at sampling rate 8 of a 30 fps time base (:func:`clip_frame_indices`), normalised with mean
0.45 and std 0.225. Modes of :class:`VideoClips`: ``train`` (random clip, short-side jitter, random crop, flip),
``val`` (the original's Kinetics validation: the train transforms on one clip, here seeded per video so that the
evaluation is repeatable) and ``test`` (``num_clips`` uniform clips x one left/top crop, stacked per video).

Broken videos: videos absent from disk are dropped when the index is built (counted as ``missing``). With
``probe=True`` (the evaluation sets) every video is opened and its first frame decoded once at start-up, and the
undecodable ones are dropped, so every evaluated video counts exactly once. A video that fails later (always
possible in training, which is not probed) is flagged in a shared-memory table visible to every loader worker,
reported with a :class:`SkippedVideoWarning`, and replaced by the next decodable video of the index (index + 1,
+ 2, ... cyclically; flagged videos are never tried again): the batch keeps its size and the run never stops
mid-epoch. :meth:`VideoClips.skip_counts` gives the counts written to ``results.json``.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from datasets.mnist_io import DataNotFoundError
from utils.config import ConfigError
from utils.seed import derived_seed

if TYPE_CHECKING:
    import av

ACTION_CLASSES: tuple[str, ...] = (
    "canoeing_or_kayaking", "climbing_a_rope", "driving_car", "golf_driving", "opening_bottle", "playing_piano",
    "playing_volleyball", "shooting_goal_(soccer)", "surfing_water", "writing",
)
"""The 10 classes of Kinetics-10 / Mimetics-10 (spec §11); the position is the label."""

LABEL_OF: dict[str, int] = {name: label for label, name in enumerate(ACTION_CLASSES)}
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mp4.mkv", ".mp4.webm")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
MEAN, STD = 0.45, 0.225
DEFAULT_FPS = 30.0
KINETICS_SUBSETS = {"train": {"training", "train"}, "val": {"validation", "val"}}
MIMETICS_SUBDIR, MIMETICS_SPLITS = "data", {"test"}
SEGMENT_SUFFIX = re.compile(r"_\d{6}_\d{6}$")
MODES = ("train", "val", "test")


class VideoDecodeError(RuntimeError):
    """A video (or frame folder) cannot be opened or holds no decodable frame."""


class SkippedVideoWarning(UserWarning):
    """A video failed to decode and was replaced in its batch."""


# ------------------------------------------------------------------------------------------------ annotations
def normalise_label(label: str) -> str:
    """``'Shooting goal (soccer)'`` -> ``'shooting_goal_(soccer)'``: lower case, runs of spaces/underscores -> ``_``."""
    return re.sub(r"[\s_]+", "_", label.strip().lower())


def classes_from_clsannot(path: str | os.PathLike) -> tuple[str, ...]:
    """Every 5th class of a Mimetics class-annotation file (lines 5, 10, ..., 50 after the ``#`` header)."""
    with open(path) as stream:
        names = [line.split()[0] for line in stream if line.strip() and not line.startswith("#")]
    return tuple(names[4::5])


@dataclass(frozen=True)
class Annotation:
    """One annotated clip: its class label (0-9) and the file names (without extension) it may be stored under."""

    label: int
    names: tuple[str, ...]


def _segment_name(video_id: str, start: str | float, end: str | float) -> str:
    return f"{video_id}_{int(float(start)):06d}_{int(float(end)):06d}"


def read_kinetics_json(path: str | os.PathLike, split: str) -> list[Annotation]:
    """Annotations of the 10 classes in ``split`` ('train' or 'val') of a Kinetics JSON."""
    data = json.loads(Path(path).read_text())
    database = data.get("database", data) if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise DataNotFoundError(f"'{path}' is not a Kinetics annotation JSON (expected an object of videos)")
    annotations = []
    for key, entry in database.items():
        if not isinstance(entry, dict) or entry.get("subset") not in KINETICS_SUBSETS[split]:
            continue
        label = normalise_label(str((entry.get("annotations") or {}).get("label", "")))
        if label not in LABEL_OF:
            continue
        names = [key]
        if SEGMENT_SUFFIX.search(key):
            names.append(key[:-14])
        segment = entry["annotations"].get("segment")
        if segment and len(segment) == 2:
            names.append(_segment_name(key, *segment))
        annotations.append(Annotation(LABEL_OF[label], tuple(dict.fromkeys(names))))
    return annotations


def read_annotation_csv(path: str | os.PathLike, splits: Iterable[str]) -> list[Annotation]:
    """Annotations of the 10 classes whose ``split`` is in ``splits``, from a Kinetics or Mimetics CSV
    (``label,youtube_id,time_start,time_end,split[,is_cc]``)."""
    splits = set(splits)
    with open(path, newline="") as stream:
        reader = csv.DictReader(stream)
        required = {"label", "youtube_id", "time_start", "time_end", "split"}
        if not required <= set(reader.fieldnames or ()):
            raise DataNotFoundError(f"'{path}' lacks the columns {sorted(required - set(reader.fieldnames or ()))} "
                                    "(expected label,youtube_id,time_start,time_end,split)")
        annotations = []
        for row in reader:
            label = normalise_label(row["label"])
            if row["split"] not in splits or label not in LABEL_OF:
                continue
            try:
                segment = _segment_name(row["youtube_id"], row["time_start"], row["time_end"])
            except ValueError as error:
                raise DataNotFoundError(f"'{path}' line {reader.line_num}: bad time ({error})") from error
            annotations.append(Annotation(LABEL_OF[label], (segment, row["youtube_id"])))
    return annotations


def read_kinetics_annotations(path: str | os.PathLike, split: str) -> list[Annotation]:
    """Kinetics annotations of ``split`` ('train' or 'val') from a ``.json`` or ``.csv`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"Kinetics annotation file '{path}' does not exist")
    if path.suffix.lower() == ".csv":
        return read_annotation_csv(path, KINETICS_SUBSETS[split])
    return read_kinetics_json(path, split)


def read_mimetics_annotations(path: str | os.PathLike) -> list[Annotation]:
    """Mimetics-10 annotations (split ``test``) from ``mimetics_v1.0.csv``."""
    if not Path(path).is_file():
        raise DataNotFoundError(f"Mimetics annotation file '{path}' does not exist")
    return read_annotation_csv(path, MIMETICS_SPLITS)


def find_videos(folder: str | os.PathLike, annotations: list[Annotation], frame_folders: bool = False
                ) -> tuple[list[tuple[str, int]], list[str]]:
    """``(relative path, label)`` of the annotated videos found under ``folder/<label>/`` (label folders may use
    spaces or underscores), sorted by path and without duplicates, and the names of those not found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"video folder '{folder}' does not exist (expected FOLDER/<label>/<video>)")
    label_dirs = {normalise_label(entry.name): entry.name for entry in os.scandir(folder) if entry.is_dir()}
    listings: dict[int, dict[str, bool]] = {}
    for label, name in enumerate(ACTION_CLASSES):
        if name in label_dirs:
            listings[label] = {entry.name: entry.is_dir() for entry in os.scandir(folder / label_dirs[name])}
    found: dict[str, int] = {}
    missing = []
    for annotation in annotations:
        listing = listings.get(annotation.label, {})
        suffixes = ("",) if frame_folders else VIDEO_EXTENSIONS
        match = next((name + suffix for name in annotation.names for suffix in suffixes
                      if listing.get(name + suffix) == frame_folders), None)
        if match is None:
            missing.append(annotation.names[0])
        else:
            found[f"{label_dirs[ACTION_CLASSES[annotation.label]]}/{match}"] = annotation.label
    return sorted(found.items()), missing


# -------------------------------------------------------------------------------------------- clip sampling
def clip_frame_indices(video_frames: int, video_fps: float, num_frames: int = 8, sampling_rate: int = 8,
                       target_fps: float = 30.0, clip_index: int | None = None, num_clips: int = 1,
                       generator: torch.Generator | None = None) -> list[int]:
    """Frame indices of one clip (spec §11): ``num_frames`` frames spaced ``sampling_rate`` frames of a
    ``target_fps`` time base apart, i.e. a span of ``sampling_rate * num_frames * video_fps / target_fps`` video
    frames. The span starts uniformly at random in ``[0, video_frames - span]`` (``clip_index=None``, training) or
    at ``i / num_clips`` of that range for clip ``i`` (testing); indices past the end repeat the last frame."""
    span = sampling_rate * num_frames * video_fps / target_fps
    slack = max(video_frames - span, 0.0)
    if clip_index is None:
        start = float(torch.rand((), generator=generator)) * slack
    else:
        start = slack * clip_index / num_clips
    positions = np.linspace(start, start + span - 1, num_frames)
    return [int(position) for position in np.clip(positions, 0, video_frames - 1)]


# ---------------------------------------------------------------------------------------------- decoding
def _pyav() -> ModuleType:
    """PyAV, imported when a video is first decoded: every other task (and frame folders) runs without it."""
    try:
        import av
    except ImportError as error:
        raise ConfigError("decoding videos needs PyAV (pip install av, as in requirements.txt); pre-extracted "
                          "frames need none (--frame_folders True)") from error
    return av


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoDecodeError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _frame_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream, fps: float) -> int:
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None:
        return max(int(round(float(stream.duration * stream.time_base) * fps)), 0)
    if container.duration is not None:
        return max(int(round(container.duration / _pyav().time_base * fps)), 0)
    return sum(1 for _ in container.decode(stream))


def _frame_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in FRAME_EXTENSIONS)


def read_video_info(path: str | os.PathLike, frames_fps: float | None = None) -> tuple[int, float]:
    """``(frame count, fps)`` of a video file from its header, or of a frame folder (``frames_fps`` given)."""
    path = Path(path)
    if frames_fps is not None:
        if not path.is_dir():
            raise VideoDecodeError(f"frame folder '{path}' does not exist")
        return len(_frame_files(path)), frames_fps
    av = _pyav()
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container)
            fps = float(stream.average_rate or stream.guessed_rate or 0) or DEFAULT_FPS
            return _frame_count(container, stream, fps), fps
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(f"'{path}': {error}") from error


def read_frames(path: str | os.PathLike, indices: list[int], frames_fps: float | None = None) -> Tensor:
    """uint8 frames ``(len(indices), H, W, 3)`` of a video file (decoded up to the last index wanted; if the video
    ends or breaks earlier, its last decoded frame stands in) or of a frame folder (``frames_fps`` given)."""
    path = Path(path)
    if frames_fps is not None:
        files = _frame_files(path) if path.is_dir() else []
        if not files:
            raise VideoDecodeError(f"'{path}': no frame images")
        try:
            images = {i: np.asarray(Image.open(files[min(i, len(files) - 1)]).convert("RGB")) for i in set(indices)}
        except OSError as error:
            raise VideoDecodeError(f"'{path}': {error}") from error
        return torch.from_numpy(np.stack([images[i] for i in indices]))
    av = _pyav()
    wanted, last_wanted = set(indices), max(indices)
    decoded: dict[int, np.ndarray] = {}
    last_frame, last_index = None, -1
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container)
            try:
                for last_index, frame in enumerate(container.decode(stream)):
                    last_frame = frame
                    if last_index in wanted:
                        decoded[last_index] = frame.to_ndarray(format="rgb24")
                    if last_index >= last_wanted:
                        break
            except av.FFmpegError:
                pass
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoDecodeError(f"'{path}': {error}") from error
    if last_frame is None:
        raise VideoDecodeError(f"'{path}': no decodable frame")
    if last_wanted > last_index:
        decoded[last_index] = last_frame.to_ndarray(format="rgb24")
    return torch.from_numpy(np.stack([decoded[min(i, last_index)] for i in indices]))


# --------------------------------------------------------------------------------------------- transforms
def scale_short_side(clip: Tensor, size: int) -> Tensor:
    """Bilinearly resize ``(T, C, H, W)`` frames so that their shorter side is ``size``."""
    height, width = clip.shape[-2:]
    if height <= width:
        new_size = (size, int(math.floor(width * size / height)))
    else:
        new_size = (int(math.floor(height * size / width)), size)
    if new_size == (height, width):
        return clip
    return F.interpolate(clip, size=new_size, mode="bilinear", align_corners=False)


def random_crop(clip: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """The same random ``size`` x ``size`` window of every frame."""
    height, width = clip.shape[-2:]
    top = int(torch.randint(0, height - size + 1, (), generator=generator))
    left = int(torch.randint(0, width - size + 1, (), generator=generator))
    return clip[..., top:top + size, left:left + size]


def uniform_crop(clip: Tensor, size: int, spatial_index: int = 0) -> Tensor:
    """Crop ``size`` x ``size`` along the longer side: 0 = left/top, 1 = centre, 2 = right/bottom (the shorter
    side is centred). The original's single test crop is index 0 (spec §11)."""
    height, width = clip.shape[-2:]
    top, left = (height - size + 1) // 2, (width - size + 1) // 2
    position = {0: 0.0, 1: 0.5, 2: 1.0}[spatial_index]
    if height > width:
        top = int(round((height - size) * position))
    else:
        left = int(round((width - size) * position))
    return clip[..., top:top + size, left:left + size]


def to_network_input(frames: Tensor) -> Tensor:
    """uint8 ``(T, H, W, 3)`` -> float ``(T, 3, H, W)`` in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def normalise(clip: Tensor) -> Tensor:
    """``(T, 3, H, W)`` in [0, 1] -> ``(3, T, H, W)`` normalised with mean 0.45 and std 0.225."""
    return clip.sub(MEAN).div_(STD).permute(1, 0, 2, 3).contiguous()


@dataclass(frozen=True)
class ClipSettings:
    """Temporal sampling and spatial sizes (spec §11 defaults; smaller sizes for tests)."""

    num_frames: int = 8
    sampling_rate: int = 8
    target_fps: float = 30.0
    crop_size: int = 224
    min_scale: int = 256
    max_scale: int = 320
    test_crop_size: int = 256
    num_clips: int = 10


def train_transform(frames: Tensor, settings: ClipSettings, generator: torch.Generator | None = None) -> Tensor:
    """Short side to a random size in [min_scale, max_scale], random crop, horizontal flip with probability 0.5."""
    size = int(torch.randint(settings.min_scale, settings.max_scale + 1, (), generator=generator))
    clip = random_crop(scale_short_side(to_network_input(frames), size), settings.crop_size, generator)
    if float(torch.rand((), generator=generator)) < 0.5:
        clip = clip.flip(-1)
    return normalise(clip)


def eval_transform(frames: Tensor, settings: ClipSettings) -> Tensor:
    """Short side to ``test_crop_size``, then its left/top square crop."""
    clip = scale_short_side(to_network_input(frames), settings.test_crop_size)
    return normalise(uniform_crop(clip, settings.test_crop_size, spatial_index=0))


# ------------------------------------------------------------------------------------------------ dataset
class VideoClips(Dataset):
    """Items ``(x, target, bias=0, index)``: ``x`` is one clip ``(3, T, H, W)`` (modes ``train``, ``val``) or the
    ``num_clips`` clips of the video ``(num_clips, 3, T, H, W)`` (mode ``test``). See the module docstring for
    how missing and undecodable videos are handled."""

    def __init__(self, folder: str | os.PathLike, annotations: list[Annotation], mode: str,
                 settings: ClipSettings = ClipSettings(), frame_folders: bool = False, frames_fps: float = 30.0,
                 probe: bool = False, seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.folder = Path(folder)
        self.mode, self.settings, self.seed = mode, settings, seed
        self.frames_fps = frames_fps if frame_folders else None
        items, self.missing = find_videos(self.folder, annotations, frame_folders)
        self.undecodable_at_start: list[str] = []
        if probe:
            items = [item for item in items if self._probe(item[0])]
        if not items:
            raise DataNotFoundError(f"no decodable video of the 10 classes found under '{self.folder}' "
                                    f"({len(annotations)} annotated, {len(self.missing)} not on disk)")
        self.paths = [path for path, _ in items]
        self.targets = torch.tensor([label for _, label in items], dtype=torch.long)
        self.failed = torch.zeros(len(items), dtype=torch.uint8).share_memory_()

    def _probe(self, relative_path: str) -> bool:
        try:
            read_frames(self.folder / relative_path, [0], self.frames_fps)
            return True
        except VideoDecodeError:
            self.undecodable_at_start.append(relative_path)
            return False

    def __len__(self) -> int:
        return len(self.paths)

    def skip_counts(self) -> dict[str, int]:
        """Videos left out: ``missing`` from disk, ``undecodable`` at start-up or during the run so far."""
        return {"missing": len(self.missing),
                "undecodable": len(self.undecodable_at_start) + int(self.failed.sum())}

    def _clip(self, index: int) -> Tensor:
        path = self.folder / self.paths[index]
        video_frames, fps = read_video_info(path, self.frames_fps)
        if video_frames <= 0:
            raise VideoDecodeError(f"'{path}': no frame")
        settings = self.settings
        sample = dict(num_frames=settings.num_frames, sampling_rate=settings.sampling_rate,
                      target_fps=settings.target_fps)
        if self.mode == "test":
            clips = [clip_frame_indices(video_frames, fps, clip_index=i, num_clips=settings.num_clips, **sample)
                     for i in range(settings.num_clips)]
            frames = read_frames(path, [i for clip in clips for i in clip], self.frames_fps)
            return torch.stack([eval_transform(chunk, settings) for chunk in frames.split(settings.num_frames)])
        generator = (torch.Generator().manual_seed(derived_seed(self.seed, index)) if self.mode == "val" else None)
        indices = clip_frame_indices(video_frames, fps, generator=generator, **sample)
        return train_transform(read_frames(path, indices, self.frames_fps), settings, generator)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int, int]:
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            if self.failed[candidate]:
                continue
            try:
                return self._clip(candidate), int(self.targets[candidate]), 0, candidate
            except VideoDecodeError as error:
                self.failed[candidate] = 1
                warnings.warn(f"skipping undecodable video ({error}); item {index} uses the next decodable video",
                              SkippedVideoWarning, stacklevel=2)
        raise DataNotFoundError(f"no decodable video left under '{self.folder}'")

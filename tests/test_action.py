"""Kinetics-10 -> Mimetics-10: annotations and layouts, clip sampling, broken videos, frame folders, ResNet3D,
multi-clip evaluation, main_action.py end to end, the sweep script and the report's Table 3."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from munch import Munch
from PIL import Image

import main_action
from datasets.kinetics import (ACTION_CLASSES, Annotation, ClipSettings, SkippedVideoWarning, VideoClips,
                               classes_from_clsannot, clip_frame_indices, find_videos, normalise_label,
                               read_frames, read_kinetics_annotations, read_mimetics_annotations, read_video_info,
                               uniform_crop)
from datasets.loaders import DeviceLoader
from evaluator import evaluate, multi_clip_scores
from models import MODELS
from models.action_models import ResNet3D, feature_map_size
from utils.config import ConfigError

av = pytest.importorskip("av")  # PyAV decodes the action videos; without it only these tests are skipped
REPO = Path(__file__).resolve().parents[1]
MIMETICS = REPO.parent / "shared" / "reference" / "data" / "mimetics"
SETTINGS = ClipSettings(num_frames=4, sampling_rate=2, target_fps=30.0, crop_size=16, min_scale=16, max_scale=20,
                        test_crop_size=16, num_clips=2)
VIDEO_FRAMES, HEIGHT, WIDTH = 12, 24, 32
SMALL = dict(batch_size=4, n_epochs=1, num_frames=4, sampling_rate=2, crop_size=16, train_min_scale=16,
             train_max_scale=20, test_crop_size=16, num_clips=2, resnet_base_width=2, num_workers=0,
             progress=False, device="cpu", val_epoch_step=1)


# ------------------------------------------------------------------------------------------------ fixtures
def video_frames(label: int, seed: int) -> np.ndarray:
    """(12, 24, 32, 3) uint8: a class colour with a bar moving right, plus noise."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((VIDEO_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames[...] = np.array([25 * label, 255 - 25 * label, 128], dtype=np.uint8)
    for t in range(VIDEO_FRAMES):
        frames[t, :, 2 * t:2 * t + 4] = 255
    return np.clip(frames + rng.integers(0, 20, frames.shape), 0, 255).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"img_{t:05d}.png")
    return folder


def spaced(label: int) -> str:
    return ACTION_CLASSES[label].replace("_", " ")


@pytest.fixture(scope="session")
def action_data(tmp_path_factory) -> Munch:
    """Kinetics (JSON with space-separated labels; 2 train videos per class for 4 classes, 1 val video each, one
    train video of garbage bytes, one annotated video absent) and Mimetics (CSV; 1 video per class, one garbage),
    as videos and as frame folders."""
    root = tmp_path_factory.mktemp("action")
    database = {}
    for kind in ("videos", "frames"):
        for label in range(4):
            for split, subset, count in (("train", "training", 2), ("val", "validation", 1)):
                for i in range(count):
                    key = f"{split}{label}{i}_{10 * i:06d}_{10 * i + 10:06d}"
                    database[key] = {"subset": subset, "annotations": {"label": spaced(label),
                                                                       "segment": [10 * i, 10 * i + 10]}}
                    folder = root / kind / "kinetics" / split / ACTION_CLASSES[label]
                    frames = video_frames(label, seed=zlib.crc32(key.encode()))
                    if kind == "videos":
                        write_video(folder / f"{key[:-14]}.mp4", frames)
                    else:
                        write_frame_folder(folder / key[:-14], frames)
            video_id = f"mim{label}"
            name = f"{video_id}_{label:06d}_{label + 3:06d}"
            folder = root / kind / "mimetics" / "data" / ACTION_CLASSES[label]
            if kind == "videos":
                write_video(folder / f"{name}.mp4", video_frames(label, seed=100 + label))
            else:
                write_frame_folder(folder / name, video_frames(label, seed=100 + label))
    database["absent_000000_000010"] = {"subset": "training", "annotations": {"label": spaced(0)}}
    database["other_class"] = {"subset": "training", "annotations": {"label": "archery"}}
    (root / "videos" / "kinetics" / "train" / ACTION_CLASSES[3] / "train31.mp4").write_bytes(b"not a video" * 50)
    (root / "videos" / "mimetics" / "data" / ACTION_CLASSES[3] / "mim3_000003_000006.mp4").write_bytes(b"\0" * 99)
    annotation = root / "kinetics.json"
    annotation.write_text(json.dumps({"labels": [spaced(i) for i in range(10)], "database": database}))
    mimetics_csv = root / "mimetics.csv"
    rows = ["label,youtube_id,time_start,time_end,split,is_cc"]
    rows += [f"{ACTION_CLASSES[label]},mim{label},{label},{label + 3},test,0" for label in range(4)]
    rows += ["archery,zzz,1,2,test,0"]
    mimetics_csv.write_text("\n".join(rows) + "\n")
    return Munch(root=root, annotation=annotation, mimetics_csv=mimetics_csv,
                 kinetics=root / "videos" / "kinetics", mimetics=root / "videos" / "mimetics",
                 kinetics_frames=root / "frames" / "kinetics", mimetics_frames=root / "frames" / "mimetics")


# ------------------------------------------------------------------------------------- classes, annotations
def test_classes_are_every_fifth_mimetics_class():
    path = MIMETICS / "mimetics_v1.0_clsannot.txt"
    if not path.exists():
        pytest.skip("the Mimetics class annotation file is not in ../shared/reference")
    assert classes_from_clsannot(path) == ACTION_CLASSES


def test_mimetics10_has_136_clips():
    path = MIMETICS / "mimetics_v1.0.csv"
    if not path.exists():
        pytest.skip("the Mimetics CSV is not in ../shared/reference")
    annotations = read_mimetics_annotations(path)
    assert len(annotations) == 136 and {a.label for a in annotations} == set(range(10))
    assert annotations[0].names[0].count("_") >= 2


def test_labels_match_with_spaces_or_underscores(tmp_path):
    assert normalise_label("shooting goal (soccer)") == normalise_label("shooting_goal_(soccer)") == \
        "shooting_goal_(soccer)"
    assert normalise_label(" Playing  Piano ") == "playing_piano"
    csv_path = tmp_path / "kinetics.csv"
    csv_path.write_text("label,youtube_id,time_start,time_end,split\n"
                        "shooting goal (soccer),abc,5,15,train\nwriting,def,0,10,val\n"
                        "canoeing_or_kayaking,ghi,1,11,train\narchery,jkl,0,10,train\n")
    train = read_kinetics_annotations(csv_path, "train")
    assert train == [Annotation(7, ("abc_000005_000015", "abc")), Annotation(0, ("ghi_000001_000011", "ghi"))]
    assert read_kinetics_annotations(csv_path, "val") == [Annotation(9, ("def_000000_000010", "def"))]


def test_kinetics_json_and_on_disk_layouts(action_data, tmp_path):
    train = read_kinetics_annotations(action_data.annotation, "train")
    assert len(train) == 9 and {a.label for a in train} == {0, 1, 2, 3}
    items, missing = find_videos(action_data.kinetics / "train", train)
    assert len(items) == 8 and missing == ["absent_000000_000010"]
    assert items[0] == (f"{ACTION_CLASSES[0]}/train00.mp4", 0)
    spaced_dir = tmp_path / "train" / spaced(2)
    write_video(spaced_dir / "vid_000001_000002.mp4.mkv", video_frames(2, 0))
    items, missing = find_videos(tmp_path / "train", [Annotation(2, ("vid_000001_000002", "vid"))])
    assert items == [(f"{spaced(2)}/vid_000001_000002.mp4.mkv", 2)] and not missing
    frame_items, _ = find_videos(action_data.kinetics_frames / "train", train, frame_folders=True)
    assert [path for path, _ in frame_items] == [path[:-4] for path, _ in find_videos(action_data.kinetics / "train",
                                                                                     train)[0]]


# ---------------------------------------------------------------------------------------------- sampling
def test_clip_frame_indices_hand_examples():
    assert clip_frame_indices(300, 30.0, clip_index=0, num_clips=10) == [0, 9, 18, 27, 36, 45, 54, 63]
    assert clip_frame_indices(300, 30.0, clip_index=5, num_clips=10) == [118, 127, 136, 145, 154, 163, 172, 181]
    assert clip_frame_indices(600, 60.0, clip_index=0, num_clips=1) == [0, 18, 36, 54, 72, 90, 108, 127]
    assert clip_frame_indices(12, 30.0, clip_index=3, num_clips=10) == [0, 9, 11, 11, 11, 11, 11, 11]
    assert clip_frame_indices(12, 30.0, num_frames=4, sampling_rate=2, clip_index=1, num_clips=2) == [2, 4, 6, 9]


def test_random_clip_is_inside_the_video_and_seeded():
    for seed in range(20):
        indices = clip_frame_indices(300, 25.0, generator=torch.Generator().manual_seed(seed))
        assert 0 <= indices[0] <= 300 - 8 * 8 * 25 / 30 and indices[-1] <= 299
        assert np.allclose(np.diff(indices), (8 * 8 * 25 / 30 - 1) / 7, atol=1)
    first, second = (clip_frame_indices(300, 30.0, generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert first == second


def test_uniform_crop_index_zero_is_left_or_top():
    clip = torch.arange(2 * 3 * 4 * 6, dtype=torch.float).view(2, 3, 4, 6)
    assert torch.equal(uniform_crop(clip, 4, 0), clip[..., :, 0:4])
    assert torch.equal(uniform_crop(clip, 4, 1), clip[..., :, 1:5])
    tall = clip.transpose(-1, -2)
    assert torch.equal(uniform_crop(tall, 4, 0), tall[..., 0:4, :])


# -------------------------------------------------------------------------------------- decoding, datasets
def test_video_and_frame_folder_decoding(action_data):
    video = action_data.kinetics / "val" / ACTION_CLASSES[1] / "val10.mp4"
    folder = action_data.kinetics_frames / "val" / ACTION_CLASSES[1] / "val10"
    assert read_video_info(video) == (12, 30.0) and read_video_info(folder, frames_fps=25.0) == (12, 25.0)
    from_video = read_frames(video, [0, 5, 11, 40])
    from_folder = read_frames(folder, [0, 5, 11, 40], frames_fps=30.0)
    assert from_video.shape == from_folder.shape == (4, HEIGHT, WIDTH, 3) and from_video.dtype == torch.uint8
    expected = video_frames(1, seed=zlib.crc32(b"val10_000000_000010"))
    assert torch.equal(from_folder, torch.from_numpy(expected[[0, 5, 11, 11]]))
    assert (from_video.float() - from_folder.float()).abs().mean() < 12


def test_train_and_test_items(action_data):
    annotations = read_kinetics_annotations(action_data.annotation, "val")
    train = VideoClips(action_data.kinetics / "val", annotations, mode="train", settings=SETTINGS)
    x, target, bias, index = train[1]
    assert x.shape == (3, 4, 16, 16) and (target, bias, index) == (1, 0, 1)
    assert -2.1 < float(x.min()) and float(x.max()) < 2.5
    test = VideoClips(action_data.kinetics / "val", annotations, mode="test", settings=SETTINGS)
    assert test[2][0].shape == (2, 3, 4, 16, 16)
    val = VideoClips(action_data.kinetics / "val", annotations, mode="val", settings=SETTINGS, seed=5)
    assert torch.equal(val[0][0], val[0][0])
    frames = VideoClips(action_data.kinetics_frames / "val", annotations, mode="test", settings=SETTINGS,
                        frame_folders=True, frames_fps=30.0)
    assert len(frames) == 4 and frames[2][0].shape == (2, 3, 4, 16, 16)


def test_broken_training_video_is_replaced_and_counted(action_data):
    dataset = VideoClips(action_data.kinetics / "train", read_kinetics_annotations(action_data.annotation, "train"),
                         mode="train", settings=SETTINGS)
    broken = dataset.paths.index(f"{ACTION_CLASSES[3]}/train31.mp4")
    assert dataset.skip_counts() == {"missing": 1, "undecodable": 0}
    with pytest.warns(SkippedVideoWarning, match="train31"):
        x, target, _, index = dataset[broken]
    assert index == (broken + 1) % len(dataset) and target == int(dataset.targets[index]) and x.shape[0] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataset[broken][3] == index
    assert dataset.skip_counts() == {"missing": 1, "undecodable": 1}


def test_broken_video_count_crosses_loader_workers(action_data):
    dataset = VideoClips(action_data.kinetics / "train", read_kinetics_annotations(action_data.annotation, "train"),
                         mode="train", settings=SETTINGS)
    loader = DeviceLoader(dataset, batch_size=4, shuffle=True, device=torch.device("cpu"), num_workers=2,
                          drop_last=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    assert [batch.x.shape[0] for batch in batches] == [4, 4]
    assert dataset.skip_counts()["undecodable"] == 1


def test_broken_evaluation_video_is_dropped_at_start(action_data):
    dataset = VideoClips(action_data.mimetics / "data", read_mimetics_annotations(action_data.mimetics_csv),
                         mode="test", settings=SETTINGS, probe=True)
    assert len(dataset) == 3 and dataset.targets.tolist() == [0, 1, 2]
    assert dataset.skip_counts() == {"missing": 0, "undecodable": 1}


# --------------------------------------------------------------------------------------------------- models
def test_resnet3d_shapes_and_widths():
    net = MODELS["ResNet3D"](10, width_per_group=2)
    logits, features = net(torch.randn(2, 3, 4, 32, 32))
    assert logits.shape == (2, 10) and features.shape == (2, 64) and net.feature_dim == 64
    full = ResNet3D(10)
    widths = [full.stem[0].out_channels] + [stage[-1].conv_b.out_channels for stage in full.stages]
    assert widths == [32, 128, 256, 512, 1024]
    assert full.stem[0].kernel_size == (3, 7, 7) and full.stem[0].stride == (1, 2, 2)
    assert [stage[0].conv_a.stride for stage in full.stages] == [(1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert all(block.conv_a.kernel_size[0] == 1 for stage in ResNet3D(10, "11111").stages for block in stage)
    assert ResNet3D(10, feature_pos="logits", width_per_group=2)(torch.randn(2, 3, 2, 32, 32))[1].shape == (2, 10)
    assert feature_map_size(8, 224) == (8, 7, 7) and feature_map_size(8, 256) == (8, 8, 8)


def test_2d_model_is_blind_to_frame_order_and_3d_model_is_not():
    """In float64, so that the frames' different summation order cannot matter on any CPU's kernels."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 32, 32, dtype=torch.float64)
    shuffled = x[:, :, torch.tensor([3, 0, 5, 1, 4, 2])]
    frame_wise = ResNet3D(10, "11111", width_per_group=2).double().eval()
    spatio_temporal = ResNet3D(10, "33333", width_per_group=2).double().eval()
    with torch.no_grad():
        torch.testing.assert_close(frame_wise(x)[1], frame_wise(shuffled)[1], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(frame_wise(x)[0], frame_wise(shuffled)[0], rtol=1e-9, atol=1e-12)
        assert not torch.allclose(spatio_temporal(x)[1], spatio_temporal(shuffled)[1], atol=1e-3)


def test_larger_eval_input_averages_window_probabilities():
    torch.manual_seed(0)
    net = ResNet3D(10, width_per_group=2, pool_size=feature_map_size(4, 32)).eval()
    with torch.no_grad():
        scores, features = net(torch.randn(2, 3, 4, 64, 64))
        assert torch.allclose(scores.exp().sum(dim=1), torch.ones(2), atol=1e-5) and features.shape == (2, 64)
        map_ = net.feature_map(torch.randn(1, 3, 4, 64, 64))
    assert map_.shape[2:] == (4, 2, 2)


def test_multi_clip_scores_sum_clip_probabilities():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2 * 2, 4))
    clips = torch.randn(3, 5, 3, 2, 2, 2)
    probabilities = net(clips.flatten(0, 1)).softmax(dim=1).view(3, 5, 4).sum(dim=1)
    assert torch.allclose(multi_clip_scores(net, clips).exp(), probabilities, atol=1e-5)
    targets = probabilities.argmax(dim=1)
    cells = evaluate({"f": net}, {"videos": [(clips, targets, torch.zeros(3, dtype=torch.long))]}, 4, 1)
    assert cells["videos"]["f"].accuracy() == 100.0 and int(cells["videos"]["f"].total.sum()) == 3


# ---------------------------------------------------------------------------------------------- end to end
def run_main(tmp_path: Path, action_data: Munch, frames: bool = False, **flags) -> dict:
    data = (dict(train_root=str(action_data.kinetics_frames), eval_root=str(action_data.mimetics_frames),
                 frame_folders=True) if frames else
            dict(train_root=str(action_data.kinetics), eval_root=str(action_data.mimetics)))
    flags = {**SMALL, **data, "train_annotation_file": str(action_data.annotation),
             "eval_annotation_file": str(action_data.mimetics_csv), "save_dir": str(tmp_path), "run_name": "run",
             **flags}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedVideoWarning)
        main_action.main(**flags)
    return json.loads((tmp_path / flags["run_name"] / "results.json").read_text())


@pytest.mark.slow
def test_short_run_evaluates_mimetics_per_video(tmp_path, action_data, capsys):
    results = run_main(tmp_path, action_data, n_epochs=2)
    out = capsys.readouterr().out
    assert "unbiased: 3 videos" in out and "skipped videos: train: 1 missing, 1 undecodable" in out
    assert results["task"] == "action" and results["method"] == "ReBias" and results["crop_size"] == 16
    assert set(results["metrics"]) == set(results["g_metrics"][0]) == {"unbiased", "biased"}
    assert all(0.0 <= value <= 100.0 for value in results["metrics"].values())
    assert results["skipped_videos"] == {"train": {"missing": 1, "undecodable": 1},
                                         "unbiased": {"missing": 0, "undecodable": 1},
                                         "biased": {"missing": 0, "undecodable": 0}}
    assert int(np.nansum(np.array(results["per_cell_accuracy"]["unbiased"], dtype=float) >= 0)) == 3
    assert [record["epoch"] for record in results["history"]] == [1, 2]
    assert results["config"]["val_epoch_step"] == 1 and results["train_images"] == 16


@pytest.mark.slow
def test_learned_mixin_on_frame_folders_with_multiclip_kinetics_val(tmp_path, action_data):
    results = run_main(tmp_path, action_data, frames=True, outer_criterion="LearnedMixin", n_g_pretrain_epochs=1,
                       n_g_update=0, kinetics_val_protocol="multiclip")
    assert results["method"] == "LearnedMixin" and set(results["metrics"]) == {"unbiased", "biased"}
    assert results["skipped_videos"]["train"] == {"missing": 1, "undecodable": 0}


@pytest.mark.slow
def test_torchrun_two_processes_count_skipped_videos_over_processes(tmp_path, action_data):
    flags = {**SMALL, "train_root": action_data.kinetics, "train_annotation_file": action_data.annotation,
             "eval_root": action_data.mimetics, "eval_annotation_file": action_data.mimetics_csv,
             "save_dir": tmp_path, "run_name": "ddp", "n_epochs": 2}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "main_action.py",
                             *(f"--{key}={value}" for key, value in flags.items())],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert results["world_size"] == 2 and set(results["metrics"]) == {"unbiased", "biased"}
    assert results["skipped_videos"]["train"] == {"missing": 1, "undecodable": 1}
    assert result.stdout.count("results:") == 1


def test_defaults_and_bad_flags_are_one_line_errors(action_data):
    defaults = main_action.DEFAULTS
    assert (defaults["lr"], defaults["batch_size"], defaults["n_epochs"], defaults["val_epoch_step"]) == \
        (0.1, 128, 120, 20)
    assert (defaults["rbf_sigma_scale_x"], defaults["rbf_sigma_scale_y"], defaults["num_clips"]) == (2.0, 0.5, 10)
    assert defaults["eval_annotation_file"] == "../shared/reference/data/mimetics/mimetics_v1.0.csv"
    base = dict(train_root=str(action_data.kinetics), train_annotation_file=str(action_data.annotation),
                eval_root=str(action_data.mimetics), device="cpu")
    for flags, expected in ((dict(num_classes=9), "--num_classes must be 10"),
                            (dict(f_temporal_kernel_sizes=3333), "--f_temporal_kernel_sizes"),
                            (dict(crop_size=300), "--crop_size <= --train_min_scale")):
        with pytest.raises(ConfigError, match=expected):
            main_action.main(**base, **flags)
    for args, expected in (([f"--train_root={action_data.kinetics}"], "--train_annotation_file is required"),
                           ([f"--{key}={value}" for key, value in base.items()]
                            + ["--eval_annotation_file=/nonexistent.csv"], "Mimetics annotation file")):
        result = subprocess.run([sys.executable, "main_action.py", *args], cwd=REPO, capture_output=True, text=True,
                                timeout=120)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr


# ------------------------------------------------------------------------------------------ sweep and report
FAKE_PYTHON = r'''#!/usr/bin/env python3
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["CALL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if "main_action.py" in args:
    run_dir = Path(args[args.index("--save_dir") + 1]) / args[args.index("--run_name") + 1]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text("{}")
'''


def test_sweep_script_runs_every_method_and_seed(tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    done = tmp_path / "out" / "action_RUBi_seed1"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    env = {**os.environ, "PYTHON": str(fake), "CALL_LOG": str(log), "OUT": str(tmp_path / "out"), "SEEDS": "0 1",
           "EPOCHS": "2", "TRAIN_ROOT": "/k", "TRAIN_ANNOTATION": "/k.json", "EVAL_ROOT": "/m", "NPROC": "2",
           "EXTRA": "--num_workers 3"}
    result = subprocess.run(["bash", "scripts/action_table3.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [call for call in calls if "main_action.py" in call]
    names = [call[call.index("--run_name") + 1] for call in runs]
    assert len(runs) == 7 and "action_RUBi_seed1" not in names and "action_ReBias_seed0" in names
    assert all(call[:3] == ["-m", "torch.distributed.run", "--nproc_per_node"] for call in runs)
    mixin = runs[names.index("action_LearnedMixin_seed0")]
    assert mixin[mixin.index("--n_g_pretrain_epochs") + 1] == "30" and mixin[mixin.index("--n_g_update") + 1] == "0"
    assert all(call[call.index("--resume") + 1] == "auto" and call[-1] == "3" for call in runs)
    assert all(call[call.index("--eval_annotation_file") + 1].endswith("mimetics_v1.0.csv") for call in runs)
    assert calls[-1][0] == "scripts/report.py"


def load_report_module():
    spec = importlib.util.spec_from_file_location("report_for_action", REPO / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["report_for_action"] = module
    spec.loader.exec_module(module)
    return module


def test_report_action_table_from_results(tmp_path):
    report = load_report_module()
    for method, seed, biased, unbiased in (("Vanilla", 0, 50.0, 20.0), ("Vanilla", 1, 54.0, 22.0),
                                           ("ReBias", 0, 56.0, 24.0)):
        run_dir = tmp_path / "results" / f"action_{method}_seed{seed}"
        run_dir.mkdir(parents=True)
        payload = {"task": "action", "method": method, "seed": seed, "crop_size": 224,
                   "metrics": {"unbiased": unbiased, "biased": biased},
                   "g_metrics": [{"unbiased": unbiased - 5, "biased": biased - 10}],
                   "per_cell_accuracy": {"unbiased": [[50.0]] * 10},
                   "protocol": {"name": "rebias_action", "unit": "epochs", "trained": 120, "paper": 120,
                                "paper_length": True}}
        (run_dir / "results.json").write_text(json.dumps(payload))
    built = report.build_report(tmp_path / "results", tmp_path / "report")
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.strip("|").split("|")[1:]]
            for line in built.markdown.splitlines() if line.startswith("| ") and not line.startswith("| Model")}
    assert rows["Vanilla"][:3] == ["52.0 ± 2.8 (n=2)", "54.5", "-2.5"]
    assert rows["Vanilla"][3:6] == ["21.0 ± 1.4 (n=2)", "18.9", "+2.1"]
    assert rows["Biased"][:3] == ["42.0 ± 2.8 (n=2)", "50.7", "-8.7"]
    assert rows["ReBias"][3:6] == ["24.0 ± – (n=1)", "22.4", "+1.6"]
    assert rows["RUBi"] == ["–", "23.6", "–", "–", "13.4", "–", "–"]  # last: worst-group, not computed here
    assert "Biased (Kinetics-10)" in built.markdown and (tmp_path / "report" / "action_table.csv").exists()


@pytest.mark.slow
def test_same_seed_same_metrics_with_loader_workers(tmp_path, action_data):
    first = run_main(tmp_path / "a", action_data, num_workers=2)
    second = run_main(tmp_path / "b", action_data, num_workers=2)
    assert first["metrics"] == second["metrics"] and first["history"][0]["train"] == second["history"][0]["train"]


@pytest.mark.slow
def test_rebias_action_file_gives_our_accuracy(tmp_path, action_data):
    """test.py on a ReBias-format ``last.pth`` (SlowFast keys inside DataParallel, Munch options) of a short run
    gives the accuracies of the run's own checkpoint, with the clip settings given as flags."""
    import test as test_py
    from test_original_checkpoints import slowfast_keys
    from utils.io import CheckpointError, safe_torch_load
    from utils.original_checkpoints import resolve_path
    run_main(tmp_path, action_data, n_epochs=1)
    run_dir = tmp_path / "run"
    data = dict(train_root=str(action_data.kinetics), eval_root=str(action_data.mimetics),
                train_annotation_file=str(action_data.annotation),
                eval_annotation_file=str(action_data.mimetics_csv), num_workers=0, batch_size=4)
    clips = {flag: SMALL[flag] for flag in ("num_frames", "sampling_rate", "crop_size", "test_crop_size",
                                            "num_clips")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedVideoWarning)
        ours = test_py.main(pretrained_path=str(run_dir), device="cpu", out=str(tmp_path / "ours.json"))
        method = safe_torch_load(resolve_path(run_dir))["method"]
        torch.save({"f_net": slowfast_keys(method["f_net"]), "g_nets": [slowfast_keys(g) for g in method["g_nets"]],
                    "options": Munch(f_config=Munch(feature_position="post"), outer_criterion="RbfHSIC"),
                    "metadata": {"cur_epoch": 1}}, tmp_path / "last.pth")
        tested = test_py.main(pretrained_path=str(tmp_path / "last.pth"), device="cpu",
                              out=str(tmp_path / "tested.json"), **data, **clips)
    assert tested["format"] == "rebias" and tested["task"] == "action" and tested["method"] == "ReBias"
    assert set(tested["metrics"]) == {"unbiased", "biased"}
    assert tested["predictor_metrics"] == ours["predictor_metrics"]
    assert tested["per_cell_accuracy"] == ours["per_cell_accuracy"]
    assert tested["worst_group"] == ours["worst_group"]
    assert tested["evaluation_settings"] == {**clips, "frame_folders": False, "target_fps": 30.0,
                                             "frames_fps": 30.0}
    with pytest.raises(CheckpointError, match="trained with --crop_size 16, which sizes its network"):
        test_py.main(pretrained_path=str(run_dir), device="cpu", crop_size=32)
    with pytest.raises(ConfigError, match="--num_clips must be an integer >= 1, got 0"):
        test_py.main(pretrained_path=str(run_dir), device="cpu", num_clips=0)
    with pytest.raises(ConfigError, match="--dataset and --percent are for DisEnt"):
        test_py.main(pretrained_path=str(tmp_path / "last.pth"), device="cpu", dataset="cmnist", percent="1pct",
                     **data)

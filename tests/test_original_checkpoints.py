"""The authors' checkpoints and data (issue #23): test.py on DisEnt's, LfF's and ReBias' files, --init_from /
--resume, the export the other way, LfF's npy data and DisEnt's README spelling ``conlict``.

Original-format files are written here from this project's networks with the originals' dicts and key names."""
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import munch
import numpy as np
import pytest
import torch

import main_biased_mnist
import test as test_py
import train_disent
from datasets.disent_data import load_split_tensor, split_files
from datasets.lff_npy import lff_folder, read_lff_split
from datasets.make_disent_data import from_lff
from datasets.manifests import DataMismatchError
from models.action_models import ResNet3D
from models.imagenet_models import BagNet18, ResNet18
from utils.export_original import export
from utils.io import CheckpointError, safe_torch_load
from utils.original_checkpoints import read_checkpoint, resolve_path, to_project_keys

REPO = Path(__file__).resolve().parents[1]
DISENT_RUN = dict(dataset="cmnist", percent="5pct", lr=0.01, batch_size=32, num_steps=4, valid_freq=2,
                  device="cpu", progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Short DisEnt, LfF (LfF's MLP) and Vanilla runs of train_disent.py: their run directories."""
    log = tmp_path_factory.mktemp("log")
    for exp, flags in (("ours", {"train_ours": True}), ("lff", {"train_lff": True, "backbone": "mlp_lff"}),
                       ("vanilla", {"train_vanilla": True})):
        train_disent.main(**DISENT_RUN, **flags, data_dir=str(data_dir), log_dir=str(log), exp=exp)
    return {exp: log / "cmnist" / exp for exp in ("ours", "lff", "vanilla")}


@pytest.fixture(scope="module")
def rebias_run(tmp_path_factory, fake_mnist_root):
    save_dir = tmp_path_factory.mktemp("rebias")
    main_biased_mnist.main(root=str(fake_mnist_root), save_dir=str(save_dir), run_name="run", batch_size=16,
                           n_epochs=1, limit_train_batches=2, f_kernel_size=3, progress=False, device="cpu")
    return save_dir / "run"


def evaluate(path, **flags) -> dict:
    return test_py.main(pretrained_path=str(path), device="cpu", out=str(Path(path).parent / "tested.json"),
                        **flags)


def step_file(weights: dict, steps: int = 4) -> dict:
    """DisEnt's / LfF's ``{steps, state_dict, optimizer}`` with a fresh Adam's state, as their code saves it."""
    return {"steps": steps, "state_dict": weights, "optimizer": {"state": {}, "param_groups": [
        {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
         "params": list(range(len(weights)))}]}}


def write_disent_pair(run_dir: Path, target: Path) -> Path:
    """DisEnt's ``log/cmnist/<exp>/result/best_model_{l,b}.th`` of a DisEnt run's networks."""
    networks = load_project(run_dir)["method"]["networks"]
    (target / "result").mkdir(parents=True)
    torch.save(step_file(networks["intrinsic"]), target / "result" / "best_model_l.th")
    torch.save(step_file(networks["bias"]), target / "result" / "best_model_b.th")
    return target


def load_project(run_dir: Path) -> dict:
    return safe_torch_load(resolve_path(run_dir))


def test_disent_pair_gives_our_accuracy_with_the_readme_flags(runs, data_dir, tmp_path):
    ours = evaluate(runs["ours"], data_dir=str(data_dir))
    original = write_disent_pair(runs["ours"], tmp_path / "log" / "cmnist" / "exp")
    for path in (original, original / "result", original / "result" / "best_model_b.th"):
        tested = evaluate(path, dataset="cmnist", percent="5pct", data_dir=str(data_dir), exp="Test",
                          num_workers=0)
        assert tested["format"] == "disent" and tested["method"] == "DisEnt"
        assert tested["metrics"] == ours["metrics"] and tested["per_cell_accuracy"] == ours["per_cell_accuracy"]
        assert tested["worst_group"]["test"] == min(v for row in ours["per_cell_accuracy"]["test"] for v in row
                                                    if v is not None)
    result = subprocess.run([sys.executable, "test.py", f"--pretrained_path={original}", "--dataset=cmnist",
                             "--percent=5pct", "--data_dir", str(data_dir), "--device", "cpu", "--out",
                             str(tmp_path / "cli.json")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "cli.json").read_text())["metrics"] == ours["metrics"]


def test_lff_model_th_and_disent_vanilla_file_give_our_accuracy(runs, data_dir, tmp_path):
    for run, name, method in (("lff", "model.th", "LfF"), ("vanilla", "best_model.th", "Vanilla")):
        ours = evaluate(runs[run], data_dir=str(data_dir))
        folder = tmp_path / run
        folder.mkdir()
        torch.save(step_file(load_project(runs[run])["method"]["networks"]["f"]), folder / name)
        tested = evaluate(folder, dataset="cmnist", percent="5", data_dir=str(data_dir))
        assert tested["method"] == method and tested["metrics"] == ours["metrics"]
        assert set(tested["predictor_metrics"]) == {"f"}  # LfF saves no biased network


def rebias_file(project: dict, architecture: str = "simple_conv") -> dict:
    """ReBias' best.pth of a project checkpoint's networks: DataParallel keys, ``extracter``, Munch options and
    NumPy numbers in the metadata, as its trainer writes them."""
    def original(state):
        return {f"module.{key.replace('extractor.', 'extracter.')}": value for key, value in state.items()}
    method = project["method"]
    options = dict(munch.munchify({"outer_criterion": "RbfHSIC", "inner_criterion": "MinusRbfHSIC",
                                   "f_config": {"num_classes": 10, "kernel_size": 3, "feature_pos": "post"},
                                   "g_config": {"num_classes": 10, "kernel_size": 1, "feature_pos": "post"},
                                   "outer_criterion_config": {"sigma_x": np.sqrt(np.float64(2.0))},
                                   "f_lambda_outer": 1, "g_lambda_inner": 1, "n_g_nets": 1}))
    return {"f_net": original(method["f_net"]), "g_nets": [original(g) for g in method["g_nets"]],
            "f_optimizer": method["f_optimizer"], "g_optimizer": method["g_optimizer"],
            "f_lr_scheduler": method["f_scheduler"], "g_lr_scheduler": method["g_scheduler"], "options": options,
            "metadata": {"cur_epoch": 1, "best_acc": np.float64(0.5), "scores": {"unbiased": {"f_acc": 0.5}}}}


@pytest.mark.slow
def test_rebias_best_pth_and_export_give_our_accuracy(rebias_run, fake_mnist_root, tmp_path):
    ours = evaluate(rebias_run, root=str(fake_mnist_root))
    assert set(ours["metrics"]) == {"biased", "unbiased", "rho0"}
    torch.save(rebias_file(load_project(rebias_run)), tmp_path / "best.pth")
    with pytest.raises(CheckpointError, match="munch|numpy"):
        safe_torch_load(tmp_path / "best.pth")  # the strict loader refuses the Munch options...
    tested = evaluate(tmp_path, root=str(fake_mnist_root))  # ...the plain-data reader takes them
    assert tested["format"] == "rebias" and tested["task"] == "biased_mnist" and tested["method"] == "ReBias"
    assert tested["metrics"] == ours["metrics"] and tested["predictor_metrics"] == ours["predictor_metrics"]
    written = export(rebias_run, "rebias", checkpoint="last", out=tmp_path / "exported")
    saved = torch.load(written[0], weights_only=True)
    assert written[0].name == "last.pth" and saved["options"]["f_config"]["kernel_size"] == 3
    assert all(key.startswith(("module.extracter.", "module.fc.")) for key in saved["f_net"])
    assert evaluate(written[0], root=str(fake_mnist_root))["metrics"] == ours["metrics"]


def test_bad_rebias_files_get_one_line_errors(rebias_run, fake_mnist_root, tmp_path):
    good = rebias_file(load_project(rebias_run))
    nine = {**good["f_net"], "module.fc.weight": good["f_net"]["module.fc.weight"][:9],
            "module.fc.bias": good["f_net"]["module.fc.bias"][:9]}
    resnet = {f"module.{k}": v for k, v in ResNet18(10).state_dict().items()}
    for name, content, pattern in (
            ("no_g", {**good, "g_nets": []}, "ReBias' checkpoint has no g_nets"),
            ("arch", {**good, "f_net": {"module.conv.weight": torch.zeros(3)}}, "f_net .* is none of its networks"),
            ("mixed", {**good, "g_nets": [resnet]}, "f_net is a simple_conv network but g_nets\\[0\\] a resnet one"),
            ("classes", {**good, "f_net": nine}, "classifies 9 classes, but biased_mnist has 10")):
        torch.save(content, tmp_path / f"{name}.pth")
        with pytest.raises(CheckpointError, match=pattern) as error:
            evaluate(tmp_path / f"{name}.pth", root=str(fake_mnist_root))
        assert "\n" not in str(error.value)


def test_plain_data_reader_runs_no_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)
    torch.save({"f_net": {}, "g_nets": [], "options": munch.Munch(a=Evil())}, tmp_path / "best.pth")
    with pytest.raises(CheckpointError, match="posix.system"):
        read_checkpoint(tmp_path)
    assert not (tmp_path / "pwned").exists()


def slowfast_keys(state: dict) -> dict:
    """Our 3D ResNet's state dict under SlowFast's names, as ReBias' ResNet3DModel names them."""
    parts = {"conv_a": "branch2.a", "bn_a": "branch2.a_bn", "conv_b": "branch2.b", "bn_b": "branch2.b_bn",
             "shortcut.0": "branch1", "shortcut.1": "branch1_bn"}
    renamed = {}
    for key, value in state.items():
        if key.startswith("stem.0."):
            key = "s1.pathway0_stem.conv." + key[len("stem.0."):]
        elif key.startswith("stem.1."):
            key = "s1.pathway0_stem.bn." + key[len("stem.1."):]
        elif key.startswith("fc."):
            key = "head.projection." + key[len("fc."):]
        elif key.startswith("stages."):
            _, stage, block, rest = key.split(".", 3)
            part = next(p for p in sorted(parts, key=len, reverse=True) if rest.startswith(p + "."))
            key = f"s{int(stage) + 2}.pathway0_res{block}.{parts[part]}{rest[len(part):]}"
        renamed[f"module.{key}"] = value
    return renamed


def test_imagenet_and_action_networks_are_recognised(tmp_path):
    f, g = ResNet18(9), BagNet18(9)
    torch.save({"f_net": {f"module.{k}": v for k, v in f.state_dict().items()},
                "g_nets": [{f"module.{k}": v for k, v in g.state_dict().items()}], "options": {}, "metadata": {}},
               tmp_path / "imagenet.pth")
    loaded = read_checkpoint(tmp_path / "imagenet.pth")
    assert loaded.task == "imagenet" and loaded.method == "rebias" and loaded.num_classes == 9
    assert all(torch.equal(loaded.networks["g_0"][k], v) for k, v in g.state_dict().items())
    f3 = ResNet3D(10, temporal_kernel_sizes="33333", width_per_group=4)
    g3 = ResNet3D(10, temporal_kernel_sizes="11111", width_per_group=4)
    torch.save({"f_net": slowfast_keys(f3.state_dict()), "g_nets": [slowfast_keys(g3.state_dict())],
                "options": munch.munchify({"f_config": {"feature_position": "post"}})}, tmp_path / "action.pth")
    loaded = read_checkpoint(tmp_path / "action.pth")
    assert loaded.task == "action" and loaded.config["f_temporal_kernel_sizes"] == "33333"
    assert loaded.config["g_temporal_kernel_sizes"] == "11111" and loaded.config["resnet_base_width"] == 4
    ResNet3D(10, temporal_kernel_sizes="33333", width_per_group=4).load_state_dict(loaded.networks["f"])
    assert list(to_project_keys(slowfast_keys(f3.state_dict()), "action")) != list(f3.state_dict())  # module.


def test_export_round_trips(runs, data_dir, tmp_path):
    for run, fmt, names in (("ours", "disent", ["best_model_l.th", "best_model_b.th"]), ("lff", "lff", ["model.th"]),
                            ("vanilla", "disent", ["best_model.th"])):
        written = export(runs[run], fmt, out=tmp_path / run)
        assert [path.name for path in written] == names
        ours = evaluate(runs[run], data_dir=str(data_dir))
        tested = evaluate(tmp_path / run, dataset="cmnist", percent="5pct", data_dir=str(data_dir))
        assert tested["metrics"] == ours["metrics"]
        checkpoint = load_project(runs[run])
        project = checkpoint["method"]
        for path in written:  # each file's optimiser loads into its own network's Adam, as in the original
            saved = torch.load(path, weights_only=True)
            network = train_disent_network(project, path.name)
            network_parameters = [torch.nn.Parameter(v.clone()) for k, v in network.items()]
            torch.optim.Adam(network_parameters, lr=0.01).load_state_dict(saved["optimizer"])
            assert saved["steps"] == checkpoint["trainer"]["global_step"] and saved["state_dict"].keys() == network.keys()
    with pytest.raises(Exception, match="--format lff exports LfF runs"):
        export(runs["ours"], "lff", out=tmp_path / "x")


def train_disent_network(method_state: dict, file_name: str) -> dict:
    """The parameters (no buffers: MLPs have none) of the network a DisEnt/LfF file holds."""
    name = {"best_model_l.th": "intrinsic", "best_model_b.th": "bias"}.get(file_name, "f")
    return method_state["networks"][name]


def test_bad_original_files_get_one_line_errors(runs, data_dir, tmp_path):
    original = write_disent_pair(runs["ours"], tmp_path / "pair")
    (original / "result" / "best_model_b.th").unlink()
    cases = [(original, "its bias network .* is missing")]
    weights = load_project(runs["lff"])["method"]["networks"]["f"]
    two = {**weights, "classifier.weight": weights["classifier.weight"][:2], "classifier.bias": weights["classifier.bias"][:2]}
    for name, content, pattern in (
            ("classes", step_file(two), "classifies 2 classes, but --dataset cmnist has 10"),
            ("arch", step_file({"conv.weight": torch.zeros(3)}), "none of the networks DisEnt and LfF save"),
            ("unknown", {"model": {}}, r"unknown checkpoint format: found \['model'\]"),
            ("resnet", step_file(ResNet18(10).state_dict()), "holds a resnet18 network, but the originals train mlp")):
        (tmp_path / name).mkdir()
        torch.save(content, tmp_path / name / "model.th")
        cases.append((tmp_path / name, pattern))
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "model.th").write_bytes(b"PK\x03\x04 not a checkpoint")
    cases.append((tmp_path / "corrupt", "truncated or corrupt"))
    for path, pattern in cases:
        with pytest.raises(CheckpointError, match=pattern) as error:
            evaluate(path, dataset="cmnist", percent="5pct", data_dir=str(data_dir))
        assert "\n" not in str(error.value)
    result = subprocess.run([sys.executable, "test.py", "--pretrained_path", str(original), "--dataset", "cmnist",
                             "--percent", "5pct"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    with pytest.raises(Exception, match="give --dataset and --percent"):
        evaluate(tmp_path / "classes")
    for flag, value, pattern in (("batch_size", 0, "--batch_size must be an integer >= 1, got 0"),
                                 ("batch_size", True, "--batch_size must be an integer >= 1, got True"),
                                 ("target_fps", "x", "--target_fps must be a positive number")):
        with pytest.raises(Exception, match=pattern):
            evaluate(runs["lff"], **{flag: value})
    (tmp_path / "good").mkdir()
    torch.save(step_file(weights), tmp_path / "good" / "model.th")
    with pytest.raises(Exception, match=r"--num_frames does not apply to .* \(DisEnt's data sets take --data_dir"):
        evaluate(tmp_path / "good", dataset="cmnist", percent="5pct", data_dir=str(data_dir), num_frames=8)


def test_batch_size_reaches_the_loaders_of_original_files(runs, data_dir, tmp_path):
    torch.save(step_file(load_project(runs["lff"])["method"]["networks"]["f"]), tmp_path / "model.th")
    one = evaluate(tmp_path, dataset="cmnist", percent="5pct", data_dir=str(data_dir), batch_size=1,
                   num_workers=1, limit_eval_batches=1)  # one image per split: 0 or 100
    assert set(one["metrics"].values()) <= {0.0, 100.0}


def test_init_from_and_resume_take_original_checkpoints(runs, data_dir, tmp_path, capsys):
    original = write_disent_pair(runs["ours"], tmp_path / "pair")
    common = dict(DISENT_RUN, train_ours=True, data_dir=str(data_dir), log_dir=str(tmp_path / "log"), num_steps=1,
                  valid_freq=1)
    with pytest.raises(CheckpointError, match="--resume cannot continue .* --init_from"):
        train_disent.main(**common, exp="resumed", resume=str(original / "result" / "best_model_l.th"))
    train_disent.main(**common, exp="init", init_from=str(original))
    assert "loaded the weights of intrinsic, bias; optimiser state" in capsys.readouterr().out
    with pytest.raises(CheckpointError, match="its network 'bias' does not fit this DisEnt model"):
        train_disent.main(**common, exp="init_lff", init_from=str(runs["lff"]))
    lff_file = tmp_path / "model.th"
    torch.save(step_file(load_project(runs["lff"])["method"]["networks"]["f"]), lff_file)
    with pytest.raises(CheckpointError, match=r"holds the networks \['f'\], but a DisEnt model needs"):
        train_disent.main(**common, exp="init_lff_file", init_from=str(lff_file))


def write_lff_folder(data_dir: Path, percent: float, seed: int = 0) -> Path:
    """LfF's make_dataset.py layout with random images."""
    rng = np.random.default_rng(seed)
    folder = lff_folder(data_dir, percent)
    for split, n in (("train", 60), ("valid", 30)):
        (folder / split).mkdir(parents=True)
        np.save(folder / split / "images.npy", rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8))
        np.save(folder / split / "attrs.npy", rng.integers(0, 10, (n, 2)).astype(np.uint8))
    with open(folder / "attr_names.pkl", "wb") as stream:
        pickle.dump(["digit", "color"], stream)
    return folder


def samples(images, targets, biases, order) -> list:
    return sorted(zip(order, map(bytes, images.numpy()), targets.tolist(), biases.tolist()))


def test_lff_npy_data_convert_into_the_same_samples(tmp_path):
    folder = write_lff_folder(tmp_path / "lff", 1.0)
    out = tmp_path / "converted"
    from_lff(str(tmp_path / "lff"), str(out), percent=1)
    for split in ("train", "test"):
        lff = read_lff_split(folder, split)
        ours = load_split_tensor(out, "cmnist", split, "1pct")
        indices = [int(path.name.split("_")[0]) for path in split_files(out, "cmnist", split, "1pct")]
        assert samples(*ours, indices) == samples(*lff, range(len(lff[1])))
    write_lff_folder(tmp_path / "lff", 2.0, seed=1)
    with pytest.raises(FileExistsError, match="convert ColoredMNIST-Skewed0.02-Severity4 into another --out"):
        from_lff(str(tmp_path / "lff"), str(out), percent=2)


def test_conlict_folder_is_read_with_a_warning(data_dir, tmp_path):
    copy = tmp_path / "data"
    subprocess.run(["cp", "-r", str(data_dir), str(copy)], check=True)
    expected = [path.name for path in split_files(copy, "cmnist", "train", "5pct")]
    (copy / "cmnist" / "5pct" / "conflict").rename(copy / "cmnist" / "5pct" / "conlict")
    with pytest.warns(UserWarning, match="'conlict' is the spelling of DisEnt's README"):
        assert [path.name for path in split_files(copy, "cmnist", "train", "5pct")] == expected
    (copy / "cmnist" / "5pct" / "conflict").mkdir()
    with warnings.catch_warnings(), pytest.raises(DataMismatchError, match="both 'conflict/' and 'conlict/'"):
        split_files(copy, "cmnist", "train", "5pct")


@pytest.mark.slow
def test_imagenet_rebias_file_gives_our_accuracy(tmp_path):
    from test_imagenet import run_main, write_cluster_csv, write_images  # its tiny ImageNet folders
    from datasets.imagenet import WNID_TO_LABEL
    rng = np.random.default_rng(0)
    write_images(tmp_path / "train", WNID_TO_LABEL, 1, "{wnid}_{i}.JPEG", rng)
    write_images(tmp_path / "val", WNID_TO_LABEL, 1, "ILSVRC2012_val_{wnid}{i}.JPEG", rng)
    write_cluster_csv(tmp_path / "val", tmp_path / "clusters.csv")
    data = munch.Munch(train=tmp_path / "train", val=tmp_path / "val", csv=tmp_path / "clusters.csv")
    run_main(tmp_path / "runs", data, n_epochs=1, limit_train_batches=1, rbf_sigma_x=1, rbf_sigma_y=1)
    run_dir = tmp_path / "runs" / "run"
    flags = dict(val_root=str(data.val), cluster_csv=str(data.csv), image_size=32, num_workers=0)
    ours = evaluate(run_dir, **flags)
    method = load_project(run_dir)["method"]
    torch.save({"f_net": {f"module.{k}": v for k, v in method["f_net"].items()},
                "g_nets": [{f"module.{k}": v for k, v in g.items()} for g in method["g_nets"]],
                "options": munch.munchify({"f_config": {"num_classes": 9, "feature_pos": "post"}}),
                "metadata": {"cur_epoch": 1}}, tmp_path / "best.pth")
    tested = evaluate(tmp_path / "best.pth", **flags)  # no --train_root: --val_root stands in
    assert tested["task"] == "imagenet" and tested["metrics"]["biased"] == ours["metrics"]["biased"]
    assert tested["per_cell_accuracy"] == ours["per_cell_accuracy"]  # min_cell_count: the original's 10 there

"""``--seeds``: several seeds of the Biased MNIST models trained in one process as seed-stacked networks."""
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import main_biased_mnist
from datasets.tensor_loader import SeedStackedLoader, TensorLoader
from models.mnist_models import SeedStackedConvNet, SimpleConvNet
from utils.config import ConfigError, parse_seeds
from utils.seed import for_seed, seed_key

SMALL = dict(batch_size=16, n_epochs=2, limit_train_batches=4, limit_eval_batches=2, f_kernel_size=3,
             progress=False, device="cpu")
METHOD_FLAGS = {
    "ReBias": {},
    "Vanilla": {"f_lambda_outer": 0, "g_lambda_inner": 0},
    "LearnedMixin": {"outer_criterion": "LearnedMixin", "g_lambda_inner": 0, "n_g_pretrain_epochs": 1,
                     "n_g_update": 0},
    "RUBi": {"outer_criterion": "RUBi", "g_lambda_inner": 0},
    "ReBias-median": {"rbf_sigma_x": "median", "rbf_sigma_y": "median", "update_sigma_per_epoch": True},
}


def make_nets(count: int, feature_pos: str = "post") -> list[SimpleConvNet]:
    """``count`` SimpleConvNets in float64: stacked and separate networks sum in different orders (grouped vs plain
    convolutions, whose float32 kernels differ between CPUs), so they are compared where rounding is negligible."""
    torch.manual_seed(0)
    return [SimpleConvNet(kernel_size=3, feature_pos=feature_pos).double() for _ in range(count)]


def inputs_like(count: int, batch: int) -> list[torch.Tensor]:
    return [torch.randn(batch, 3, 28, 28, dtype=torch.float64) for _ in range(count)]


@pytest.mark.parametrize("feature_pos", ["pre", "post", "logits"])
def test_stacked_net_outputs_and_gradients_match_separate_nets(feature_pos):
    nets = make_nets(3, feature_pos)
    stacked = SeedStackedConvNet(nets).double()
    inputs = inputs_like(3, 6)
    targets = [torch.randint(0, 10, (6,)) for _ in nets]
    logits, features = stacked(torch.cat(inputs, dim=1))
    assert logits.shape == (3, 6, 10)
    stacked_loss = sum(F.cross_entropy(logits[k], targets[k]) + features[k].square().mean() for k in range(3))
    stacked_loss.backward()
    for k, net in enumerate(nets):
        single_logits, single_features = net(inputs[k])
        torch.testing.assert_close(logits[k], single_logits, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(features[k], single_features, rtol=1e-9, atol=1e-12)
        (F.cross_entropy(single_logits, targets[k]) + single_features.square().mean()).backward()
        channels = net.extractor[0].out_channels
        assert_close_to_scale(stacked.extractor[0].weight.grad[k * channels:(k + 1) * channels],
                              net.extractor[0].weight.grad)
        assert_close_to_scale(stacked.fc_weight.grad[k], net.fc.weight.grad)


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float64 rounding relative to the tensor's norm (a gradient's small entries are sums of large
    terms that cancel, so their own relative error is not meaningful)."""
    assert actual.dtype == expected.dtype == torch.float64
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-9 * float(expected.norm()))


def test_unstack_returns_each_seeds_network_with_its_batch_norm_statistics():
    nets = make_nets(2)
    stacked = SeedStackedConvNet(nets).double()
    stacked(torch.cat([torch.randn(4, 3, 28, 28, dtype=torch.float64),
                       torch.randn(4, 3, 28, 28, dtype=torch.float64) + 3], dim=1))
    stacked.eval()
    x = torch.randn(5, 3, 28, 28, dtype=torch.float64)
    for k in range(2):
        single = stacked.unstack(k)
        assert not single.training and single.fc.weight.dtype == torch.float64
        torch.testing.assert_close(single(x)[0], stacked(torch.cat([x, x], dim=1))[0][k], rtol=1e-9, atol=1e-12)
    means = [stacked.unstack(k).extractor[1].running_mean for k in range(2)]
    assert not torch.allclose(means[0], means[1])


def test_stacked_loader_zips_seed_batches():
    def loader(seed: int) -> TensorLoader:
        images = torch.full((10, 3, 2, 2), seed, dtype=torch.uint8)
        return TensorLoader(images, torch.arange(10), torch.arange(10) % 3, 4, shuffle=True, transform=lambda t: t,
                            seed=seed)

    stacked = SeedStackedLoader([loader(0), loader(1)])
    stacked.set_epoch(3)
    batches = list(stacked)
    assert len(batches) == len(stacked) == 3
    first = batches[0]
    assert first.x.shape == (4, 6, 2, 2) and first.target.shape == (2, 4)
    assert first.x[:, :3].eq(0).all() and first.x[:, 3:].eq(1).all()
    reference = loader(1)
    reference.set_epoch(3)
    assert torch.equal(first.target[1], next(iter(reference)).target)
    with pytest.raises(ValueError, match="equal sizes"):
        SeedStackedLoader([loader(0), TensorLoader(torch.zeros(6, 3, 2, 2), torch.arange(6), torch.arange(6), 4,
                                                   shuffle=True, transform=lambda t: t)])


@pytest.mark.parametrize("value, expected", [("0,1,2", [0, 1, 2]), ((3, 1), [3, 1]), (5, [5]), ("0 2", [0, 2]),
                                             (None, None)])
def test_parse_seeds(value, expected):
    assert parse_seeds(value) == expected


@pytest.mark.parametrize("value", ["a,b", (1, 1), (-1,), ()])
def test_parse_seeds_rejects_bad_values(value):
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(value)


def test_seed_keys_round_trip():
    values = {seed_key("f_loss", 0): 1.0, seed_key("f_loss", 10): 2.0, seed_key("f_loss", 1): 3.0, "f_loss": 6.0}
    assert for_seed(values, 1) == {"f_loss": 3.0}
    assert for_seed(values, 10) == {"f_loss": 2.0}


def run(tmp_path: Path, root: Path, run_name: str, **flags) -> None:
    main_biased_mnist.main(root=str(root), save_dir=str(tmp_path), run_name=run_name, **SMALL, **flags)


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_close_metrics(mine: dict, theirs: dict) -> None:
    """Equal up to one of the 32 evaluated images per loader (float summation order may flip one prediction)."""
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        assert abs(mine[key] - value) <= 100 / 32 + 1e-9, (key, mine, theirs)


def assert_same_run(stacked: dict, separate: dict) -> None:
    """Same metrics and the same training curve (up to float tolerance) as a separate run."""
    assert_close_metrics(stacked["metrics"], separate["metrics"])
    for mine, theirs in zip(stacked["g_metrics"], separate["g_metrics"], strict=True):
        assert_close_metrics(mine, theirs)
    assert len(stacked["history"]) == len(separate["history"])
    for mine, theirs in zip(stacked["history"], separate["history"], strict=True):
        assert mine["train"].keys() == theirs["train"].keys()
        for key, value in theirs["train"].items():
            assert math.isclose(mine["train"][key], value, rel_tol=2e-3, abs_tol=2e-4), (key, mine, theirs)
    assert stacked["sigmas"].keys() == separate["sigmas"].keys()
    for key, value in separate["sigmas"].items():
        assert math.isclose(stacked["sigmas"][key], value, rel_tol=1e-3)
    assert stacked["seed"] == separate["seed"] and stacked["task"] == separate["task"] == "biased_mnist"
    assert {key: value for key, value in stacked["config"].items() if key not in ("save_dir", "run_name")} == \
        {key: value for key, value in separate["config"].items() if key not in ("save_dir", "run_name")}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHOD_FLAGS))
def test_seeds_option_gives_the_metrics_of_separate_runs(tmp_path, fake_mnist_root, method):
    flags = METHOD_FLAGS[method]
    run(tmp_path / "stacked", fake_mnist_root, "m", seeds="0,1", **flags)
    stacked_dir = tmp_path / "stacked"
    summary = load(stacked_dir / "m_seeds0-1" / "summary.json")
    assert summary["seeds"] == [0, 1] and len(summary["run_dirs"]) == 2
    assert (stacked_dir / "m_seeds0-1" / "last.pth").exists()
    for seed in (0, 1):
        run(tmp_path / "separate", fake_mnist_root, f"m_seed{seed}", seed=seed, **flags)
        stacked = load(stacked_dir / f"m_seed{seed}" / "results.json")
        separate = load(tmp_path / "separate" / f"m_seed{seed}" / "results.json")
        assert load(stacked_dir / f"m_seed{seed}" / "config.json")["seed"] == seed
        assert stacked["stacked_seeds"] == [0, 1]
        assert_same_run(stacked, separate)
    seed0, seed1 = (load(stacked_dir / f"m_seed{seed}" / "results.json") for seed in (0, 1))
    assert seed0["history"][0]["train"] != seed1["history"][0]["train"]


@pytest.mark.slow
def test_seeds_run_resumes_from_its_shared_checkpoint(tmp_path, fake_mnist_root, monkeypatch):
    from trainer import Trainer, TrainingInterrupted

    run(tmp_path / "straight", fake_mnist_root, "m", seeds="0,1")
    with monkeypatch.context() as patch:  # stopped after the first epoch, as by SIGTERM
        patch.setattr(Trainer, "_stop_requested", lambda self: self.state.epoch >= 1)
        with pytest.raises(TrainingInterrupted):
            run(tmp_path / "resumed", fake_mnist_root, "m", seeds="0,1")
    run(tmp_path / "resumed", fake_mnist_root, "m", seeds="0,1", resume="auto")
    for seed in (0, 1):
        straight = load(tmp_path / "straight" / f"m_seed{seed}" / "results.json")
        resumed = load(tmp_path / "resumed" / f"m_seed{seed}" / "results.json")
        assert resumed["metrics"] == straight["metrics"]
        assert resumed["per_cell_accuracy"] == straight["per_cell_accuracy"]
        assert resumed["global_step"] == straight["global_step"] == 8


def test_seeds_refuses_adamp(tmp_path, fake_mnist_root):
    with pytest.raises(ConfigError, match="--seeds needs --optim Adam"):
        run(tmp_path, fake_mnist_root, "m", seeds="0,1", optim="AdamP")

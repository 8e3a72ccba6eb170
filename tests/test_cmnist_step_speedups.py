"""The Colored MNIST step's speed-ups compute the same numbers, bit for bit, as the straightforward code they replace:
MLP inputs divided by 255 at load time, the class-sorted loss EMA, one Adam over all networks (and the conversion of
checkpoints written with one Adam per network), GCE reusing the step's cross-entropy; and the floor bench runs."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from munch import Munch
from torch import nn

from bench import cmnist_floor
from criterions.gce import GeneralizedCELoss
from criterions.loss_ema import PerSampleLossEMA
from datasets.disent_data import load_split_tensor
from methods import METHODS
from methods.disent import LfF, merged_optimizer_state
from models.disent_models import DISENT_MODELS
from tasks.disent import DisEntTask, to_unit_range
from train_disent import DEFAULTS

PERCENT = "5pct"


def task_config(data_dir, **overrides) -> Munch:
    return Munch({**DEFAULTS, "data_dir": str(data_dir), "percent": PERCENT, "batch_size": 64, "lr": 0.01,
                  "device": "cpu", "select_on": "valid", **overrides})


@pytest.mark.parametrize("backbone, disentangle", [("mlp", False), ("mlp", True), ("mlp_lff", False)])
def test_mlp_inputs_divided_at_load_give_the_originals_outputs_bit_for_bit(data_dir, backbone, disentangle):
    torch.manual_seed(0)
    task = DisEntTask(task_config(data_dir, backbone=backbone), torch.device("cpu"))
    assert task.divided_at_load
    network = task.build_model(disentangle)
    assert network.divide_by_255 is False
    original = DISENT_MODELS[backbone + ("_disentangle" if disentangle else "")](10)
    assert original.divide_by_255 is True
    original.load_state_dict(network.state_dict())
    raw, _, _ = load_split_tensor(data_dir, "cmnist", "train", PERCENT)
    index = torch.randperm(len(raw))[:64]
    batch = next(iter(task.train_loader))
    assert torch.equal(task.train_loader.images[index], to_unit_range(raw[index]) / 255)
    assert torch.equal(network(task.train_loader.images[index]), original(to_unit_range(raw[index])))
    assert batch.x.shape == (64, 3, 28, 28) and batch.x.max() <= torch.tensor(1.0) / 255  # float32's 1/255


def test_other_backbones_and_the_matrix_keep_the_unit_range(data_dir):
    device = torch.device("cpu")
    raw, _, _ = load_split_tensor(data_dir, "cmnist", "train", PERCENT)
    for task in (DisEntTask(task_config(data_dir, backbone="resnet18"), device),
                 DisEntTask(task_config(data_dir), device, divide_at_load=False)):
        assert not task.divided_at_load
        assert torch.equal(task.train_loader.images, to_unit_range(raw))
    assert DisEntTask(task_config(data_dir), device, divide_at_load=False).build_model(False).divide_by_255


class ScatterEMA:
    """The loss EMA as first written: values in sample order, class maxima by a scatter over all samples."""

    def __init__(self, labels: torch.Tensor, num_classes: int, alpha: float):
        self.labels, self.num_classes, self.alpha = labels, num_classes, alpha
        self.values, self.updated = torch.zeros(len(labels)), torch.zeros(len(labels))

    def update(self, losses: torch.Tensor, indices: torch.Tensor) -> None:
        self.values[indices] = self.alpha * self.values[indices] + (1 - self.alpha * self.updated[indices]) * losses
        self.updated[indices] = 1.0

    def normalised(self, indices: torch.Tensor) -> torch.Tensor:
        maxima = torch.zeros(self.num_classes).scatter_reduce(0, self.labels, self.values, "amax", include_self=True)
        maxima, values = maxima[self.labels[indices]], self.values[indices]
        return torch.where(maxima > 0, values / maxima.clamp_min(torch.finfo(values.dtype).tiny),
                           torch.zeros_like(values))


def test_class_sorted_ema_equals_the_scatter_reference_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([50, 7, 0, 31, 1])])  # class 2 has no sample
    labels = labels[torch.randperm(len(labels), generator=generator)]
    ema, reference = PerSampleLossEMA(labels, 5, alpha=0.7), ScatterEMA(labels, 5, alpha=0.7)
    for _ in range(40):
        indices = torch.randperm(len(labels), generator=generator)[:16]
        losses = torch.rand(16, generator=generator) * 5
        ema.update(losses, indices)
        reference.update(losses, indices)
        probe = torch.randperm(len(labels), generator=generator)[:24]
        assert torch.equal(ema.normalised(probe), reference.normalised(probe))
    assert torch.equal(ema.values, reference.values)
    assert torch.equal(ema.class_max(), torch.zeros(5).scatter_reduce(0, labels, reference.values, "amax"))
    restored = PerSampleLossEMA(labels, 5)
    restored.load_state_dict(ema.state_dict())
    assert torch.equal(restored.table, ema.table) and torch.equal(restored.values, reference.values)


def small_networks(seed: int) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)) for _ in range(2)]


def train_steps(networks: list[nn.Module], optimizers: list[torch.optim.Optimizer], steps: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 6, generator=generator), torch.randint(0, 3, (8,), generator=generator)
        for optimizer in optimizers:
            optimizer.zero_grad()
        sum(F.cross_entropy(network(x), y) for network in networks).backward()
        for optimizer in optimizers:
            optimizer.step()


def test_one_adam_over_all_networks_equals_one_adam_per_network_and_converts_old_checkpoints():
    separate, merged = small_networks(0), small_networks(0)
    per_network = [torch.optim.Adam(n.parameters(), lr=0.01, fused=True) for n in separate]
    schedulers = [torch.optim.lr_scheduler.StepLR(o, 3, 0.5) for o in per_network]
    one = torch.optim.Adam([p for n in merged for p in n.parameters()], lr=0.01, fused=True)
    train_steps(separate, per_network, 4, seed=1)
    train_steps(merged, [one], 4, seed=1)
    for a, b in zip(separate, merged):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))

    old_format = {"optimizers": {"f": per_network[0].state_dict(), "bias": per_network[1].state_dict()},
                  "schedulers": {"f": schedulers[0].state_dict(), "bias": schedulers[1].state_dict()}}
    resumed = copy.deepcopy(separate)
    converted = merged_optimizer_state(copy.deepcopy(old_format), ["f", "bias"])  # as read from a file
    resumed_optimizer = torch.optim.Adam([p for n in resumed for p in n.parameters()], lr=0.01, fused=True)
    resumed_optimizer.load_state_dict(converted["optimizer"])
    assert converted["scheduler"] == schedulers[0].state_dict()
    train_steps(separate, per_network, 3, seed=2)
    train_steps(resumed, [resumed_optimizer], 3, seed=2)
    for a, b in zip(separate, resumed):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


class LfFOneAdamPerNetwork(LfF):
    """LfF with the optimiser layout written before the merge: one Adam and one StepLR per network, checkpointed as
    ``optimizers`` / ``schedulers`` by network name."""

    def __init__(self, config: Munch, task: DisEntTask, device: torch.device):
        super().__init__(config, task, device)
        self.optimizers = {name: torch.optim.Adam(net.parameters(), lr=config.lr, fused=True)
                           for name, net in self.networks.items()}
        self.schedulers = {name: torch.optim.lr_scheduler.StepLR(opt, config.lr_decay_step, config.lr_gamma)
                           for name, opt in self.optimizers.items()}

    def _apply(self, loss: torch.Tensor) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in self.optimizers.values():
            optimizer.step()
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.step += 1

    def state_dict(self) -> dict:
        state = {key: value for key, value in super().state_dict().items() if key not in ("optimizer", "scheduler")}
        return {**state, "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "schedulers": {name: s.state_dict() for name, s in self.schedulers.items()}}


def test_method_resumes_from_a_checkpoint_with_one_adam_per_network(data_dir):
    config = task_config(data_dir, train_lff=True, seed=0, use_lr_decay=True, curr_step=0, lr_decay_step=2,
                         lr_gamma=0.5)
    task = DisEntTask(config, torch.device("cpu"))
    batches = [batch for _, batch in zip(range(7), task.train_loader)]
    torch.manual_seed(0)
    old = LfFOneAdamPerNetwork(config, task, torch.device("cpu"))
    for batch in batches[:4]:
        old.training_step(batch, old.phases()[0])
    checkpoint = copy.deepcopy(old.state_dict())  # as read back from a file
    resumed = METHODS["lff"](config, task, torch.device("cpu"))
    resumed.load_state_dict(checkpoint)
    assert resumed.learning_rates() == {"lr_f": 0.01 * 0.5 ** 2, "lr_bias": 0.01 * 0.5 ** 2}
    for batch in batches[4:]:
        old.training_step(batch, old.phases()[0])
        resumed.training_step(batch, resumed.phases()[0])
    for name in ("f", "bias"):
        for p, q in zip(old.networks[name].parameters(), resumed.networks[name].parameters()):
            assert torch.equal(p, q)
    assert resumed.learning_rates()["lr_f"] == old.schedulers["f"].get_last_lr()[0]
    mismatched = copy.deepcopy(checkpoint)
    mismatched["optimizers"]["bias"]["param_groups"][0]["lr"] = 0.5
    with pytest.raises(ValueError, match="cannot be merged"):
        METHODS["lff"](config, task, torch.device("cpu")).load_state_dict(mismatched)


def test_gce_with_the_steps_cross_entropy_equals_gce_alone():
    logits = torch.randn(32, 10, generator=torch.Generator().manual_seed(3)).requires_grad_()
    targets = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(4))
    gce = GeneralizedCELoss(q=0.7)
    alone = gce(logits, targets)
    (grad_alone,) = torch.autograd.grad(alone.mean(), logits)
    shared = gce(logits, targets, F.cross_entropy(logits, targets, reduction="none"))
    (grad_shared,) = torch.autograd.grad(shared.mean(), logits)
    assert torch.equal(alone, shared) and torch.equal(grad_alone, grad_shared)


def test_floor_bench_times_every_part_of_a_run(data_dir, capsys):
    threads = torch.get_num_threads()
    try:
        cmnist_floor.main(str(data_dir), percent=PERCENT, steps=2, device="cpu", threads=1,
                          cases="Vanilla (DisEnt),LfF (DisEnt),DisEnt")
    finally:
        torch.set_num_threads(threads)
    rows = [line for line in capsys.readouterr().out.splitlines() if "of a step" in line]
    assert [row.split("  ")[0] for row in rows] == ["Vanilla (DisEnt)", "LfF (DisEnt)", "DisEnt"]
    for row in rows:
        ratio, small_batch_share = row.split("GEMMs")[0].split()[-2:]
        assert float(ratio) > 1.0 and float(small_batch_share) > 0.0  # run / floor, b4 / floor
        assert all(part in row for part in ("GEMMs", "data", "Adam", "other step work", "evaluation"))

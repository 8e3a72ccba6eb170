"""Method-level checks of the f/g loop: which parameters each configuration trains."""
import pytest
import torch

from experiment import REBIAS_UNTYPED_FLAGS
from main_biased_mnist import DEFAULTS
from methods.rebias import ReBias, rebias_method_name
from tasks.biased_mnist import BiasedMNISTTask
from utils.config import build_config


def build(root, **flags):
    config = build_config(DEFAULTS, {"root": str(root), "batch_size": 16, "f_kernel_size": 3, **flags},
                          untyped=REBIAS_UNTYPED_FLAGS)
    torch.manual_seed(0)
    task = BiasedMNISTTask(config, torch.device("cpu"))
    return ReBias(config, task, torch.device("cpu")), task


def train_steps(method, task, n=2):
    phase = method.phases()[-1]
    for batch, _ in zip(task.train_loader, range(n)):
        method.training_step(batch, phase)


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("criterion", ["RUBi", "LearnedMixin"])
@pytest.mark.parametrize("untrained", [False, True])
def test_comparison_fc_trained_unless_original_quirk_requested(fake_mnist_root, criterion, untrained):
    method, task = build(fake_mnist_root, outer_criterion=criterion, g_lambda_inner=0,
                         untrained_comparison_fc=untrained)
    assert method.name == criterion
    fc_before, f_before = snapshot(method.outer), snapshot(method.f_net)
    train_steps(method, task)
    assert changed(f_before, method.f_net)
    assert changed(fc_before, method.outer) is not untrained


def test_frozen_g_is_not_stepped_and_vanilla_trains_both(fake_mnist_root):
    method, task = build(fake_mnist_root, outer_criterion="LearnedMixin", g_lambda_inner=0, n_g_update=0)
    g_before = snapshot(method.g_nets[0])
    train_steps(method, task)
    assert not changed(g_before, method.g_nets[0])
    vanilla, task = build(fake_mnist_root, f_lambda_outer=0, g_lambda_inner=0)
    assert rebias_method_name(vanilla.config) == "Vanilla"
    g_before, f_before = snapshot(vanilla.g_nets[0]), snapshot(vanilla.f_net)
    train_steps(vanilla, task)
    assert changed(g_before, vanilla.g_nets[0]) and changed(f_before, vanilla.f_net)


def test_rebias_step_logs_hsic_and_f_forwarded_once(fake_mnist_root, monkeypatch):
    method, task = build(fake_mnist_root, n_g_update=2)
    calls = []
    original_forward = method.f_net.forward
    monkeypatch.setattr(method.f_net, "forward", lambda *a, **k: calls.append(1) or original_forward(*a, **k))
    logs = method.training_step(next(iter(task.train_loader)), method.phases()[-1])
    assert len(calls) == 1
    assert {"g_0_cls", "g_0_inner", "f_cls", "f_outer_g_0", "f_loss", "g_loss"} <= set(logs)
    assert logs["g_0_inner"].item() == pytest.approx(-logs["f_outer_g_0"].item(), rel=0.5)


@pytest.mark.parametrize("swap, inner", [(False, (2.0, 1.0)), (True, (1.0, 2.0))])
def test_swap_inner_sigma_swaps_numeric_radii_too(fake_mnist_root, swap, inner):
    """HSIC(f, g) uses (sigma_x, sigma_y) = (1, 2); the inner HSIC(g, f) puts g's radius on g unless
    --swap_inner_sigma asks for the original's f radius on g, for numeric radii as for median ones."""
    method, _ = build(fake_mnist_root, rbf_sigma_x=1, rbf_sigma_y=2, swap_inner_sigma=swap)
    sigmas = method.sigmas()
    assert (sigmas["outer_sigma_x"], sigmas["outer_sigma_y"]) == (1.0, 2.0)
    assert (sigmas["inner_sigma_x"], sigmas["inner_sigma_y"]) == inner
    median, _ = build(fake_mnist_root, rbf_sigma_x="median", rbf_sigma_y="median", swap_inner_sigma=swap)
    radii = median.sigmas()
    swapped = (radii["inner_sigma_x"], radii["inner_sigma_y"]) == (radii["outer_sigma_x"], radii["outer_sigma_y"])
    assert swapped is swap and radii["outer_sigma_x"] != radii["outer_sigma_y"]

"""DisEnt / LfF networks: output shapes, the /255 input scaling, detach rules and the feature swap."""
from __future__ import annotations

import pytest
import torch

from models.disent_models import (DISENT_MODELS, DisEntMLP, DisEntPredictor, DisEntResNet18, VanillaMLP,
                                  VanillaResNet18, branch_inputs, feature_swap)


def test_registry():
    assert set(DISENT_MODELS) == {"mlp", "mlp_lff", "mlp_disentangle", "resnet18", "resnet18_disentangle"}
    assert isinstance(DISENT_MODELS["mlp_disentangle"](num_classes=10), DisEntMLP)


def test_mlp_shapes_and_scaling():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 28, 28)
    vanilla = VanillaMLP(num_classes=10)
    assert vanilla(x).shape == (4, 10) and vanilla.extract(x).shape == (4, 16)
    assert [m.out_features for m in vanilla.feature if isinstance(m, torch.nn.Linear)] == [100, 100, 16]
    hidden = x.reshape(4, -1) / 255
    for layer in vanilla.feature:
        hidden = layer(hidden)
    assert torch.allclose(vanilla(x), vanilla.classifier(hidden))
    disent = DisEntMLP(num_classes=10)
    assert disent(x).shape == (4, 16) and disent.fc.in_features == 32 and disent.fc.out_features == 10


def test_resnet18_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    vanilla = VanillaResNet18(num_classes=10)
    assert vanilla(x).shape == (2, 10) and vanilla.fc.in_features == 512
    disent = DisEntResNet18(num_classes=2).eval()
    assert disent(x).shape == (2, 512) and disent.fc.in_features == 1024 and disent.fc.out_features == 2
    assert disent(x[:1]).shape == (1, 512)  # flatten(1), not squeeze()
    assert "layer4.1.conv2.weight" in disent.state_dict() and disent.conv1.kernel_size == (7, 7)


def test_branch_inputs_detach_rules():
    z_i = torch.randn(3, 4, requires_grad=True)
    z_b = torch.randn(3, 4, requires_grad=True)
    z_conflict, z_align = branch_inputs(z_i, z_b)
    assert torch.equal(z_conflict, torch.cat([z_i, z_b], 1)) and torch.equal(z_align, torch.cat([z_i, z_b], 1))
    grad_i, grad_b = torch.autograd.grad(z_conflict.sum(), [z_i, z_b], allow_unused=True)
    assert torch.equal(grad_i, torch.ones(3, 4)) and grad_b is None
    grad_i, grad_b = torch.autograd.grad(z_align.sum(), [z_i, z_b], allow_unused=True)
    assert grad_i is None and torch.equal(grad_b, torch.ones(3, 4))


def test_feature_swap_labels_and_features():
    z_i = torch.arange(8.0).reshape(4, 2).requires_grad_(True)
    z_b = (100 + torch.arange(8.0)).reshape(4, 2).requires_grad_(True)
    target = torch.tensor([0, 1, 2, 3])
    bias = torch.tensor([5, 6, 7, 8])
    permutation = torch.tensor([2, 0, 3, 1])
    swapped = feature_swap(z_i, z_b, target, bias, permutation=permutation)
    assert torch.equal(swapped.z_conflict, torch.cat([z_i, z_b[permutation]], 1))
    assert torch.equal(swapped.z_align, torch.cat([z_i, z_b[permutation]], 1))
    assert torch.equal(swapped.target_intrinsic, target)  # intrinsic side keeps the original's label
    assert torch.equal(swapped.target_bias, torch.tensor([2, 0, 3, 1]))  # bias side takes the donor's label
    assert torch.equal(swapped.bias_label, torch.tensor([7, 5, 8, 6]))
    grad_i, grad_b = torch.autograd.grad(swapped.z_conflict.sum(), [z_i, z_b], allow_unused=True)
    assert grad_b is None and torch.equal(grad_i, torch.ones(4, 2))
    grad_i, grad_b = torch.autograd.grad(swapped.z_align[1].sum(), [z_i, z_b], allow_unused=True)
    assert grad_i is None and grad_b[0].sum() == 2 and grad_b.sum() == 2  # row 1 took z_b of sample 0


def test_feature_swap_draws_a_reproducible_permutation():
    z = torch.randn(16, 3)
    target = torch.arange(16)
    first = feature_swap(z, z, target, generator=torch.Generator().manual_seed(0))
    second = feature_swap(z, z, target, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first.permutation, second.permutation)
    assert sorted(first.permutation.tolist()) == list(range(16)) and first.bias_label is None
    assert torch.equal(first.target_bias, target[first.permutation])


@pytest.mark.parametrize("builder, shape", [(DisEntMLP, (3, 3, 28, 28)), (DisEntResNet18, (3, 3, 32, 32))])
def test_disent_predictor_uses_the_intrinsic_classifier_on_both_features(builder, shape):
    torch.manual_seed(0)
    intrinsic, bias = builder(num_classes=10).eval(), builder(num_classes=10).eval()
    x = torch.rand(shape)
    logits = DisEntPredictor(intrinsic, bias)(x)
    assert logits.shape == (3, 10)
    assert torch.allclose(logits, intrinsic.fc(torch.cat([intrinsic(x), bias(x)], 1)))

"""LfF's variants for issue #26 (docs/disent_lff_comparison.md): ``--lff_bias_loss ce`` changes f_b's loss and
nothing else; the default (``gce``) is LfF's step as before."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from munch import Munch

from criterions.gce import GeneralizedCELoss
from datasets.tensor_loader import Batch
from methods.base import Phase
from methods.disent import LFF_BIAS_LOSSES, LfF
from models.disent_models import VanillaMLP
from train_disent import DEFAULTS, validate_variant
from utils.config import ConfigError

NUM_SAMPLES, BATCH = 40, 16


class FakeTask:
    """What LfF needs of a task: its networks, the training targets and the number of classes."""

    num_classes = 10

    def __init__(self):
        self.train_targets = torch.arange(NUM_SAMPLES) % self.num_classes

    def build_model(self, disentangle: bool) -> torch.nn.Module:
        assert not disentangle
        return VanillaMLP(self.num_classes)


def config(**overrides) -> Munch:
    return Munch({**DEFAULTS, "batch_size": BATCH, "lr": 0.01, "device": "cpu", "select_on": "valid", **overrides})


def method(seed: int = 0, **overrides) -> LfF:
    torch.manual_seed(seed)
    return LfF(config(**overrides), FakeTask(), torch.device("cpu"))


def batch(step: int) -> Batch:
    generator = torch.Generator().manual_seed(100 + step)
    index = torch.randperm(NUM_SAMPLES, generator=generator)[:BATCH]
    x = torch.rand(BATCH, 3, 28, 28, generator=generator)
    return Batch(x, FakeTask().train_targets[index], torch.zeros(BATCH, dtype=torch.long), index)


PHASE = Phase.of_steps("main", 3, 3)


def parameters(lff: LfF, name: str) -> list[torch.Tensor]:
    return [p.detach().clone() for p in lff.networks[name].parameters()]


def test_default_is_gce_and_the_flag_is_documented():
    assert DEFAULTS["lff_bias_loss"] == "gce" and LFF_BIAS_LOSSES == ("gce", "ce")
    assert method().name == "LfF"
    assert method(lff_bias_loss="ce").name == "LfF[bias_loss=ce]"


def test_default_step_is_lffs_step_bit_for_bit():
    """Default flag, an explicit ``gce`` and a config without the key (other scripts' configs) train alike, and
    the step's f_b loss is GCE(q) of f_b's logits."""
    runs = [method(), method(lff_bias_loss="gce")]
    without_key = config()
    del without_key["lff_bias_loss"]
    torch.manual_seed(0)
    runs.append(LfF(without_key, FakeTask(), torch.device("cpu")))
    reference = copy.deepcopy(runs[0].networks["bias"])
    logs = [[lff.training_step(batch(step), PHASE) for step in range(3)] for lff in runs]
    for other in (1, 2):
        for name in ("f", "bias"):
            assert all(torch.equal(a, b) for a, b in zip(parameters(runs[0], name), parameters(runs[other], name)))
        assert all(torch.equal(a[key], b[key]) for a, b in zip(logs[0], logs[other]) for key in a)
    first = batch(0)
    expected = GeneralizedCELoss(q=0.7)(reference(first.x), first.target).mean()
    assert torch.allclose(logs[0][0]["loss_bias_gce"], expected, rtol=0, atol=1e-7)


def test_ce_changes_only_the_biased_networks_loss():
    gce, ce = method(), method(lff_bias_loss="ce")
    for name in ("f", "bias"):  # same initial weights
        assert all(torch.equal(a, b) for a, b in zip(parameters(gce, name), parameters(ce, name)))
    bias_before = copy.deepcopy(ce.networks["bias"])
    first = batch(0)
    log_gce, log_ce = gce.training_step(first, PHASE), ce.training_step(first, PHASE)
    # f_b's loss is the plain mean cross-entropy ...
    expected = F.cross_entropy(bias_before(first.x), first.target)
    assert torch.allclose(log_ce["loss_bias_ce"], expected, rtol=0, atol=1e-7) and "loss_bias_gce" not in log_ce
    assert not torch.allclose(log_gce["loss_bias_gce"], log_ce["loss_bias_ce"])
    # ... while the weights W and f_d's loss are those of the default step (W comes from detached CEs),
    assert torch.equal(log_gce["weight_mean"], log_ce["weight_mean"])
    assert torch.equal(log_gce["loss_debiased"], log_ce["loss_debiased"])
    # so after the step (Adam is element-wise) f_d's weights are the same and only f_b's differ.
    assert all(torch.equal(a, b) for a, b in zip(parameters(gce, "f"), parameters(ce, "f")))
    assert not all(torch.equal(a, b) for a, b in zip(parameters(gce, "bias"), parameters(ce, "bias")))


def test_ce_biased_network_gets_the_cross_entropy_gradient():
    ce = method(lff_bias_loss="ce")
    reference = copy.deepcopy(ce.networks["bias"])
    first = batch(0)
    F.cross_entropy(reference(first.x), first.target).backward()
    captured = {}
    original_apply = ce._apply

    def capture(loss):
        loss.backward(retain_graph=True)
        captured.update({n: p.grad.clone() for n, p in ce.networks["bias"].named_parameters() if p.grad is not None})
        for p in ce.networks["bias"].parameters():
            p.grad = None
        for p in ce.networks["f"].parameters():
            p.grad = None
        original_apply(loss)

    ce._apply = capture
    ce.training_step(first, PHASE)
    expected = {n: p.grad for n, p in reference.named_parameters() if p.grad is not None}
    assert captured.keys() == expected.keys()
    assert all(torch.allclose(captured[n], expected[n], rtol=1e-6, atol=1e-9) for n in expected)


def test_unknown_bias_loss_is_refused():
    with pytest.raises(ConfigError, match="--lff_bias_loss"):
        validate_variant(config(lff_bias_loss="mse"))
    with pytest.raises(ValueError, match="lff_bias_loss"):
        method(lff_bias_loss="mse")


def test_step_methods_refuse_bf16_they_would_not_train_in():
    """The step methods take no autocast: a bf16 run would be recorded as bf16 while training in fp32."""
    with pytest.raises(ConfigError, match="trains in fp32"):
        method(amp="bf16")
    assert method(amp="none").bias_loss == "gce"


def test_bf16_is_refused_before_the_data_are_read(tmp_path, monkeypatch):
    import train_disent
    from tasks.disent import DisEntTask
    built = []
    monkeypatch.setattr(DisEntTask, "__init__", lambda *args, **kwargs: built.append(1))
    with pytest.raises(ConfigError, match="LfF trains in fp32"):
        train_disent.main(train_lff=True, dataset="cmnist", percent="5pct", data_dir=str(tmp_path), amp="bf16",
                          log_dir=str(tmp_path / "log"), device="cpu", progress=False)
    assert built == []

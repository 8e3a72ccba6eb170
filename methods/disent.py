"""Bias-agnostic de-biasing of DisEnt's benchmarks: Vanilla, LfF (Nam et al., NeurIPS 2020) and DisEnt
(Lee et al., NeurIPS 2021). All three are step-based: ``num_steps`` steps, evaluated every ``valid_freq`` steps
and after the last one (``num_steps`` need not be a multiple of ``valid_freq``, as in the original).

LfF: a biased network f_b trained with GCE and a de-biased f_d trained with per-sample weights
    W(x) = L_b(x) / (L_b(x) + L_d(x))                                      (LfF Eq. 3)
where L are the class-normalised EMAs of the per-sample CE losses; loss = GCE(f_b) + W * CE(f_d).

DisEnt: intrinsic / bias encoders E_i, E_b with classifiers C_i, C_b on z = [z_i ; z_b] (Eq. 1-4):
    L_dis  = W * CE(C_i([z_i ; sg z_b]), y) + lambda_dis * GCE(C_b([sg z_i ; z_b]), y)
    L_swap = W * CE(C_i([z_i ; sg z_b~]), y) + lambda_swap_b * GCE(C_b([sg z_i ; z_b~]), y~)   (after curr_step)
    L      = L_dis + lambda_swap * L_swap,  z_b~ = z_b[pi], y~ = y[pi] for a random permutation pi of the batch.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from munch import Munch
from torch import Tensor, nn

from criterions.gce import GeneralizedCELoss
from criterions.loss_ema import PerSampleLossEMA, relative_difficulty
from datasets.tensor_loader import Batch
from methods.base import Method, Phase
from models.disent_models import DisEntPredictor, branch_inputs, feature_swap
from optims import build_optimizer
from tasks.disent import DisEntTask
from utils.config import require
from utils.distributed import prepare_network, unwrap
from utils.seed import derived_seed


class StepBasedMethod(Method):
    """Shared plumbing: networks, Adam, optional StepLR counted in steps, the step counter.

    The originals give every network its own Adam with the same settings and schedule; Adam being element-wise,
    one Adam over all networks' parameters makes the same updates bit for bit, in one fused call per step."""

    decays_lr = False

    @classmethod
    def check_config(cls, config: Munch) -> None:
        require(config.get("amp") in (None, "none"),
                f"--amp {config.get('amp')}: {cls.name} trains in fp32 (the step-based methods take no "
                "autocast; only ReBias and its baselines train under it), drop --amp")

    def __init__(self, config: Munch, task: DisEntTask, device: torch.device, networks: dict[str, nn.Module]):
        self.check_config(config)
        self.config = config
        self.networks = {name: prepare_network(net, device, config.channels_last, config.compile)
                         for name, net in networks.items()}
        parameters = [parameter for net in self.networks.values() for parameter in net.parameters()]
        self.optimizer = build_optimizer("Adam", parameters, config.lr, config.weight_decay, fused=True)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, config.lr_decay_step, config.lr_gamma)
        self.step = 0

    def phases(self) -> list[Phase]:
        return [Phase.of_steps("main", self.config.num_steps, self.config.valid_freq)]

    def _apply(self, loss: Tensor) -> None:
        """One backward pass and one Adam step; with ``--use_lr_decay`` the scheduler steps from
        :attr:`lr_decay_start` on (DisEnt's schedule: the first decay lands at curr_step + lr_decay_step)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.decays_lr and self.config.use_lr_decay and self.step >= self.lr_decay_start:
            self.scheduler.step()
        self.step += 1

    @property
    def lr_decay_start(self) -> int:
        """The step from which the scheduler steps: ``curr_step`` (DisEnt's schedule) unless the config sets
        ``lr_decay_start`` (main_matrix.py: 0, the benchmark's schedule)."""
        start = self.config.get("lr_decay_start")
        return self.config.curr_step if start is None else start

    def learning_rates(self) -> dict[str, float]:
        """The learning rate, logged once per network (``lr_<network>``) as the originals' optimisers are."""
        lr = self.scheduler.get_last_lr()[0]
        return {f"lr_{name}": lr for name in self.networks}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step,
                "networks": {name: unwrap(net).state_dict() for name, net in self.networks.items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        for name, net in self.networks.items():
            unwrap(net).load_state_dict(state["networks"][name])
        if "optimizers" in state:
            state = {**state, **merged_optimizer_state(state, list(self.networks))}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def merged_optimizer_state(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The ``optimizer``/``scheduler`` entries of a checkpoint written with one Adam per network (``optimizers``,
    ``schedulers`` by network name, before the Adams were merged), for one Adam over the networks ``names`` in
    that order: the per-parameter states are renumbered one network after the other."""
    per_network = [state["optimizers"][name] for name in names]
    settings = [{key: value for key, value in s["param_groups"][0].items() if key != "params"} for s in per_network]
    schedulers = [state["schedulers"][name] for name in names]
    if any(len(s["param_groups"]) != 1 for s in per_network) or any(x != settings[0] for x in settings) \
            or any(x != schedulers[0] for x in schedulers):
        raise ValueError("checkpoint with one Adam per network: the networks' optimiser settings or schedules differ, "
                         "so they cannot be merged into one Adam")
    parameter_states, offset = {}, 0
    for optimizer_state in per_network:
        group = optimizer_state["param_groups"][0]
        for index in group["params"]:
            if index in optimizer_state["state"]:
                parameter_states[offset + index] = optimizer_state["state"][index]
        offset += len(group["params"])
    group = {**per_network[0]["param_groups"][0], "params": list(range(offset))}
    return {"optimizer": {"state": parameter_states, "param_groups": [group]}, "scheduler": schedulers[0]}


class VanillaDisEnt(StepBasedMethod):
    """DisEnt's ``train_vanilla``: one network, mean CE, no learning-rate decay."""

    name = "Vanilla"

    def __init__(self, config: Munch, task: DisEntTask, device: torch.device, autocast: Any = None):
        super().__init__(config, task, device, {"f": task.build_model(disentangle=False)})

    def training_step(self, batch: Batch, phase: Phase) -> dict[str, Tensor]:
        loss = F.cross_entropy(self.networks["f"](batch.x), batch.target)
        self._apply(loss)
        return {"loss": loss.detach()}

    def predictors(self) -> dict[str, nn.Module]:
        return {"f": unwrap(self.networks["f"])}


class EMAMethod(StepBasedMethod):
    """Adds the two per-sample loss EMAs (for the bias and the de-biased / intrinsic branch) to the state."""

    def __init__(self, config: Munch, task: DisEntTask, device: torch.device, networks: dict[str, nn.Module]):
        super().__init__(config, task, device, networks)
        self.gce = GeneralizedCELoss(q=config.q)
        self.ema_bias = PerSampleLossEMA(task.train_targets, task.num_classes, config.ema_alpha)
        self.ema_debiased = PerSampleLossEMA(task.train_targets, task.num_classes, config.ema_alpha)

    def _weights(self, loss_bias: Tensor, loss_debiased: Tensor, index: Tensor) -> Tensor:
        """Update both EMAs with the detached per-sample losses and return W = L_b / (L_b + L_d + 1e-8)."""
        self.ema_bias.update(loss_bias, index)
        self.ema_debiased.update(loss_debiased, index)
        return relative_difficulty(self.ema_bias.normalised(index), self.ema_debiased.normalised(index))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "ema_bias": self.ema_bias.state_dict(),
                "ema_debiased": self.ema_debiased.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.ema_bias.load_state_dict(state["ema_bias"])
        self.ema_debiased.load_state_dict(state["ema_debiased"])


LFF_BIAS_LOSSES = ("gce", "ce")
"""``--lff_bias_loss``: f_b's loss in LfF, ``gce`` (LfF's, the default) or ``ce`` (plain cross-entropy, as the
authors' BiasEnsemble ``train_lff_be`` loop trains f_b; docs/disent_lff_comparison.md)."""


class LfF(EMAMethod):
    """Learning from Failure: f_b trained with GCE, f_d with W-weighted CE (module docstring).

    ``config.lff_bias_loss`` = ``ce`` trains f_b with plain CE instead (nothing else changes); such runs are named
    ``LfF[bias_loss=ce]`` in results.json, so that they never join the LfF cells of the README tables."""

    name = "LfF"
    decays_lr = True

    def __init__(self, config: Munch, task: DisEntTask, device: torch.device, autocast: Any = None):
        super().__init__(config, task, device, {"f": task.build_model(disentangle=False),
                                                "bias": task.build_model(disentangle=False)})
        self.bias_loss = config.get("lff_bias_loss") or "gce"
        if self.bias_loss not in LFF_BIAS_LOSSES:
            raise ValueError(f"lff_bias_loss must be one of {LFF_BIAS_LOSSES}, got {self.bias_loss!r}")
        if self.bias_loss != "gce":
            self.name = f"LfF[bias_loss={self.bias_loss}]"

    def training_step(self, batch: Batch, phase: Phase) -> dict[str, Tensor]:
        logits_bias = self.networks["bias"](batch.x)
        logits_debiased = self.networks["f"](batch.x)
        ce_bias = F.cross_entropy(logits_bias, batch.target, reduction="none")
        ce_debiased = F.cross_entropy(logits_debiased, batch.target, reduction="none")
        weights = self._weights(ce_bias.detach(), ce_debiased.detach(), batch.index)
        loss_bias = (self.gce(logits_bias, batch.target, ce_bias) if self.bias_loss == "gce" else ce_bias).mean()
        loss_debiased = (weights * ce_debiased).mean()
        loss = loss_bias + loss_debiased
        self._apply(loss)
        return {"loss": loss.detach(), f"loss_bias_{self.bias_loss}": loss_bias.detach(), "loss_debiased": loss_debiased.detach(),
                "weight_mean": weights.mean()}

    def predictors(self) -> dict[str, nn.Module]:
        return {"f": unwrap(self.networks["f"]), "bias": unwrap(self.networks["bias"])}


class DisEntPredictorBias(nn.Module):
    """C_b([E_i(x) ; E_b(x)]): the bias branch's prediction (for monitoring)."""

    def __init__(self, intrinsic: nn.Module, bias: nn.Module):
        super().__init__()
        self.intrinsic, self.bias = intrinsic, bias

    def forward(self, x: Tensor) -> Tensor:
        return self.bias.fc(torch.cat([self.intrinsic.extract(x), self.bias.extract(x)], dim=1))


class DisEnt(EMAMethod):
    """Learning Debiased Representation via Disentangled Feature Augmentation (module docstring)."""

    name = "DisEnt"
    decays_lr = True

    def __init__(self, config: Munch, task: DisEntTask, device: torch.device, autocast: Any = None):
        super().__init__(config, task, device, {"intrinsic": task.build_model(disentangle=True),
                                                "bias": task.build_model(disentangle=True)})

    def training_step(self, batch: Batch, phase: Phase) -> dict[str, Tensor]:
        config, y = self.config, batch.target
        intrinsic, bias = (unwrap(self.networks[name]) for name in ("intrinsic", "bias"))
        z_intrinsic, z_bias = self.networks["intrinsic"](batch.x), self.networks["bias"](batch.x)
        z_conflict, z_align = branch_inputs(z_intrinsic, z_bias)
        logits_intrinsic, logits_bias = intrinsic.fc(z_conflict), bias.fc(z_align)
        ce_intrinsic = F.cross_entropy(logits_intrinsic, y, reduction="none")
        ce_bias = F.cross_entropy(logits_bias, y, reduction="none")
        weights = self._weights(ce_bias.detach(), ce_intrinsic.detach(), batch.index)
        loss_dis_conflict = (weights * ce_intrinsic).mean()
        loss_dis_align = self.gce(logits_bias, y, ce_bias).mean()
        loss = loss_dis_conflict + config.lambda_dis_align * loss_dis_align
        logs = {"loss_dis_conflict": loss_dis_conflict.detach(), "loss_dis_align": loss_dis_align.detach()}
        if self.step > config.curr_step:
            generator = torch.Generator().manual_seed(derived_seed(config.seed, 11, self.step))
            swapped = feature_swap(z_intrinsic, z_bias, y, generator=generator)
            loss_swap_conflict = (weights * F.cross_entropy(intrinsic.fc(swapped.z_conflict), y,
                                                            reduction="none")).mean()
            loss_swap_align = self.gce(bias.fc(swapped.z_align), swapped.target_bias).mean()
            loss_swap = loss_swap_conflict + config.lambda_swap_align * loss_swap_align
            loss = loss + config.lambda_swap * loss_swap
            logs.update(loss_swap_conflict=loss_swap_conflict.detach(), loss_swap_align=loss_swap_align.detach())
        self._apply(loss)
        logs["loss"] = loss.detach()
        return logs

    def predictors(self) -> dict[str, nn.Module]:
        intrinsic, bias = unwrap(self.networks["intrinsic"]), unwrap(self.networks["bias"])
        return {"f": DisEntPredictor(intrinsic, bias), "bias": DisEntPredictorBias(intrinsic, bias)}

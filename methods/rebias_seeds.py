"""Several seeds of the f/g trainer (ReBias, Vanilla, LearnedMixin, RUBi) in one process: ``--seeds 0,1,2``.

Each seed's f and g networks are first built exactly as a separate run with that seed builds them (same initial
weights, same criteria, same data order), then the K copies are fused into :class:`SeedStackedConvNet` s whose
grouped convolutions process the K seeds' batches at once. Every loss term is computed per seed and the per-seed
losses are summed: seeds share no parameter, so each seed receives the gradient of its own loss, and Adam, being
element-wise, updates each seed as its own optimiser would. Runs therefore match separate runs up to floating-point
summation order (the tests check this), while small networks fill a GPU.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from munch import Munch
from torch import Tensor, nn

from datasets.tensor_loader import Batch
from methods.base import Phase
from methods.rebias import ReBias
from models.mnist_models import SeedStackedConvNet
from tasks.biased_mnist import SeedStackedBiasedMNISTTask
from utils.distributed import prepare_network, unwrap
from utils.seed import seed_everything, seed_key


class SeedStackedReBias(ReBias):
    """The f/g minimax of :class:`ReBias` on seed-stacked networks; ``config.seeds`` lists the seeds."""

    def __init__(self, config: Munch, task: SeedStackedBiasedMNISTTask, device: torch.device,
                 autocast: Callable[[], AbstractContextManager] = nullcontext):
        self.config = config
        self.seeds = list(config.seeds)
        self.autocast = autocast
        members = []
        for seed, seed_task in zip(self.seeds, task.seed_tasks, strict=True):
            seed_everything(seed, config.deterministic)
            members.append(ReBias(Munch({**seed_task.config, "compile": False}), seed_task, device, autocast))
        self.name = members[0].name
        self.f_net = self._stack([member.f_net for member in members], device)
        self.g_nets = [self._stack([member.g_nets[i] for member in members], device)
                       for i in range(config.n_g_nets)]
        self.networks = {"f": self.f_net, **{f"g_{i}": g for i, g in enumerate(self.g_nets)}}
        self.outers = nn.ModuleList([member.outer for member in members])
        self.inners = nn.ModuleList([member.inner for member in members])
        self.outer_includes_classification = members[0].outer_includes_classification
        self._build_optimizers(self.outers.parameters())

    def _stack(self, nets: list[nn.Module], device: torch.device) -> nn.Module:
        stacked = SeedStackedConvNet([unwrap(net) for net in nets])
        return prepare_network(stacked, device, self.config.channels_last, self.config.compile)

    # -------------------------------------------------------------------------------------- per-seed terms
    def criterion_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return list(zip(self.outers, self.inners))

    def replicas(self, output: Tensor) -> list[Tensor]:
        return list(output.unbind(0))

    def _classification_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        per_sample = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        return per_sample.view_as(y).mean(dim=1)

    def _inner_loss(self, g_features: Tensor, f_features: Tensor, y: Tensor) -> Tensor:
        return torch.stack([inner(g_features[k], f_features[k], labels=y[k]) for k, inner in enumerate(self.inners)])

    def _outer_loss(self, f_features: Tensor, g_features: Tensor, y: Tensor, f_logits: Tensor,
                    g_logits: Tensor) -> Tensor:
        return torch.stack([outer(f_features[k], g_features[k], labels=y[k], f_pred=f_logits[k], g_pred=g_logits[k])
                            for k, outer in enumerate(self.outers)])

    def training_step(self, batch: Batch, phase: Phase) -> dict[str, Tensor]:
        """One step of every seed. Logs each term per seed (``f_loss@seed1``) and summed over seeds (``f_loss``)."""
        logs: dict[str, Tensor] = {}
        for key, per_seed in super().training_step(batch, phase).items():
            logs[key] = per_seed.sum()
            logs.update({seed_key(key, seed): value for seed, value in zip(self.seeds, per_seed)})
        return logs

    # ------------------------------------------------------------------------------------ per-seed outputs
    def seed_predictors(self, index: int) -> dict[str, nn.Module]:
        """Seed ``self.seeds[index]``'s networks as plain SimpleConvNets (copies), by predictor name."""
        return {name: unwrap(network).unstack(index) for name, network in self.networks.items()}

    def predictors(self) -> dict[str, nn.Module]:
        return {seed_key(name, seed): network for index, seed in enumerate(self.seeds)
                for name, network in self.seed_predictors(index).items()}

    def seed_results_fields(self, index: int) -> dict[str, Any]:
        return {"sigmas": self.sigmas(index)}

    def results_fields(self) -> dict[str, Any]:
        return {seed_key("sigmas", seed): self.sigmas(index) for index, seed in enumerate(self.seeds)}

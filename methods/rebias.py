"""ReBias (Bahng et al., ICML 2020) and the baselines trained by the same f/g loop: Vanilla, Biased, LearnedMixin,
RUBi.

Per batch, with f the network to de-bias and g_1..g_M the biased networks (small receptive fields):

* g step (``n_g_update`` times):  min_g  sum_i [ CE(g_i(x), y) - g_lambda_inner * HSIC(g_i(x), f(x)) ]
* f step (once):                  min_f  CE(f(x), y) + f_lambda_outer * sum_i outer(f(x), g_i(x))

where ``outer`` is RbfHSIC for ReBias, or LearnedMixin / RUBi (whose loss contains its own classification term, so
CE is then omitted). f is forwarded once per batch: it does not change during the g steps, so the original's second
forward of f produced the same activations (it only added a second BatchNorm running-statistics update).
"""
from __future__ import annotations

import re
import warnings

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import Any

import torch
import torch.nn.functional as F
from munch import Munch
from torch import Tensor, nn

from criterions import get_criterion
from criterions.hsic import RbfHSIC, squared_distances
from datasets.tensor_loader import Batch
from methods.base import Method, Phase
from optims import build_optimizer, build_scheduler
from tasks.base import Task
from utils.config import resolve_limit
from utils.distributed import all_reduce_sum, prepare_network, unwrap, world_size


def rebias_method_name(config: Munch) -> str:
    """The paper's name of the method a configuration trains ('Vanilla' also yields the 'Biased' g row; 'Biased'
    for main_folder.py's ``--method biased``, whose f has g's architecture)."""
    if config.outer_criterion != "RbfHSIC":
        return config.outer_criterion
    if config.f_lambda_outer == 0 and config.g_lambda_inner == 0:
        return "Biased" if config.get("method") == "biased" else "Vanilla"
    return "ReBias"


class ReBias(Method):
    """The f/g minimax trainer of ReBias; see the module docstring for the losses."""

    def __init__(self, config: Munch, task: Task, device: torch.device,
                 autocast: Callable[[], AbstractContextManager] = nullcontext):
        self.config = config
        self.name = rebias_method_name(config)
        self.autocast = autocast
        self.f_net = prepare_network(task.build_f(), device, config.channels_last, config.compile)
        self.g_nets = [prepare_network(task.build_g(), device, config.channels_last, config.compile)
                       for _ in range(config.n_g_nets)]
        self.networks = {"f": self.f_net, **{f"g_{i}": g for i, g in enumerate(self.g_nets)}}

        self.outer = get_criterion(config.outer_criterion)(algorithm=config.hsic_alg,
                                                           **task.criterion_extras).to(device)
        self.inner = get_criterion(config.inner_criterion)(algorithm=config.hsic_alg,
                                                           **task.criterion_extras).to(device)
        self._assign_sigmas(self.outer, self.inner, *self._fixed_sigmas())
        self.outer_includes_classification = not isinstance(self.outer, RbfHSIC)
        self._build_optimizers(self.outer.parameters())
        if self.uses_median_sigma:
            self.update_sigmas(task.train_loader)

    def _build_optimizers(self, criterion_params: Iterable[nn.Parameter]) -> None:
        """f's optimiser (with the outer criteria's parameters unless ``--untrained_comparison_fc``), g's, and their
        schedulers."""
        config = self.config
        f_params = list(self.f_net.parameters())
        if not config.untrained_comparison_fc:
            f_params += list(criterion_params)
        g_params = [p for g in self.g_nets for p in g.parameters()]
        self.f_optimizer = build_optimizer(config.optim, f_params, config.lr, config.weight_decay)
        self.g_optimizer = build_optimizer(config.optim, g_params, config.lr, config.weight_decay)
        gamma = config.get("lr_gamma", 0.1)
        self.f_scheduler = build_scheduler(config.scheduler, self.f_optimizer, config.n_epochs, config.lr_step_size,
                                           gamma)
        self.g_scheduler = build_scheduler(config.scheduler, self.g_optimizer, config.n_epochs, config.lr_step_size,
                                           gamma)

    # ----------------------------------------------------------------------------------------------- schedule
    def phases(self) -> list[Phase]:
        """Pre-training epochs are passes over the training loader; main epochs too, or ``steps_per_epoch`` steps
        each where the config sets it (main_matrix.py: the benchmark's evaluation interval)."""
        return [Phase("pretrain_g", self.config.n_g_pretrain_epochs),
                Phase("pretrain_f", self.config.n_f_pretrain_epochs),
                Phase("main", self.config.n_epochs, self.config.get("steps_per_epoch"))]

    def end_epoch(self, phase: Phase, train_loader: Iterable) -> None:
        """Step the learning-rate schedules (during pre-training only when there is no main phase, as originally)."""
        if phase.name == "main" or self.config.n_epochs == 0:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
                self.f_scheduler.step()
                self.g_scheduler.step()

    def between_epochs(self, phase: Phase, train_loader: Iterable) -> None:
        """With ``--update_sigma_per_epoch`` and median radii, recompute the radii after a main epoch's evaluation, as
        the original: its train-mode pass updates BatchNorm statistics that the next evaluation sees."""
        if phase.name == "main" and self.config.update_sigma_per_epoch and self.uses_median_sigma:
            self.update_sigmas(train_loader)

    def results_fields(self) -> dict[str, Any]:
        return {"sigmas": self.sigmas()}

    def learning_rates(self) -> dict[str, float]:
        return {"lr_f": self.f_scheduler.get_last_lr()[0], "lr_g": self.g_scheduler.get_last_lr()[0]}

    # ---------------------------------------------------------------------------------------- kernel radii
    @property
    def uses_median_sigma(self) -> bool:
        return self.config.rbf_sigma_x == "median"

    def _fixed_sigmas(self) -> tuple[float, float]:
        """(sigma_f, sigma_g) before any median update: the numeric flags, or 1 and 1 until the median is computed."""
        if self.uses_median_sigma:
            return 1.0, 1.0
        return float(self.config.rbf_sigma_x), float(self.config.rbf_sigma_y)

    def criterion_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The (outer, inner) criteria of every replica: one pair here, one per seed for seed-stacked training."""
        return [(self.outer, self.inner)]

    def replicas(self, output: Tensor) -> list[Tensor]:
        """A network output split per replica (a one-element list here; per seed for seed-stacked networks)."""
        return [output]

    @torch.no_grad()
    def update_sigmas(self, train_loader: Iterable) -> list[tuple[float, float]]:
        """Median heuristic on a ``sigma_update_sampling_rate`` share of the training batches (train mode, as in
        the original): sigma_f and sigma_g are the square roots of the medians of all pairwise squared feature
        distances of f, and of every g pooled; they are scaled by ``rbf_sigma_scale_x`` / ``_y``. Under torchrun
        the per-process radii are averaged. Returns (sigma_f, sigma_g) of every replica."""
        n_batches = min(int(len(train_loader) * self.config.sigma_update_sampling_rate) + 1,
                        resolve_limit(self.config.limit_train_batches, len(train_loader)))
        pairs = self.criterion_pairs()
        f_distances: list[list[Tensor]] = [[] for _ in pairs]
        g_distances: list[list[Tensor]] = [[] for _ in pairs]
        for batch in islice(train_loader, n_batches):
            with self.autocast():
                for replica, features in enumerate(self.replicas(self.f_net(batch.x)[1])):
                    f_distances[replica].append(squared_distances(features).flatten())
                for g_net in self.g_nets:
                    for replica, features in enumerate(self.replicas(g_net(batch.x)[1])):
                        g_distances[replica].append(squared_distances(features).flatten())
        radii = []
        for (outer, inner), f_parts, g_parts in zip(pairs, f_distances, g_distances, strict=True):
            medians = torch.stack([torch.cat(f_parts).median().sqrt(), torch.cat(g_parts).median().sqrt()])
            sigma_f, sigma_g = (all_reduce_sum(medians.float()) / world_size()).tolist()
            sigma_f, sigma_g = sigma_f * self.config.rbf_sigma_scale_x, sigma_g * self.config.rbf_sigma_scale_y
            self._assign_sigmas(outer, inner, sigma_f, sigma_g)
            radii.append((sigma_f, sigma_g))
        return radii

    def set_sigmas(self, sigma_f: float, sigma_g: float) -> None:
        """Set the kernel radii of every replica's criteria."""
        for outer, inner in self.criterion_pairs():
            self._assign_sigmas(outer, inner, sigma_f, sigma_g)

    def _assign_sigmas(self, outer: nn.Module, inner: nn.Module, sigma_f: float, sigma_g: float) -> None:
        """Outer HSIC(f, g) takes radii (sigma_f, sigma_g); inner HSIC(g, f) takes (sigma_g, sigma_f), or with
        ``--swap_inner_sigma`` the original's (sigma_f, sigma_g), i.e. f's radius on g's features and g's on f's.
        The one rule for numeric and median radii alike."""
        for criterion in (outer, inner):
            if isinstance(criterion, RbfHSIC):
                criterion.sigma_x, criterion.sigma_y = sigma_f, sigma_g
        if isinstance(inner, RbfHSIC) and not self.config.swap_inner_sigma:
            inner.sigma_x, inner.sigma_y = sigma_g, sigma_f

    def sigmas(self, replica: int = 0) -> dict[str, float]:
        """The kernel radii of one replica's criteria, e.g. ``{'outer_sigma_x': ..., 'inner_sigma_y': ...}``."""
        outer, inner = self.criterion_pairs()[replica]
        return {f"{name}_{attr}": float(getattr(criterion, attr))
                for name, criterion in (("outer", outer), ("inner", inner))
                if isinstance(criterion, RbfHSIC) for attr in ("sigma_x", "sigma_y")}

    @staticmethod
    def _load_sigmas(outer: nn.Module, inner: nn.Module, sigmas: dict[str, float]) -> None:
        if "outer_sigma_x" in sigmas:
            outer.sigma_x, outer.sigma_y = sigmas["outer_sigma_x"], sigmas["outer_sigma_y"]
        if "inner_sigma_x" in sigmas:
            inner.sigma_x, inner.sigma_y = sigmas["inner_sigma_x"], sigmas["inner_sigma_y"]

    # ---------------------------------------------------------------------------------------------- updates
    # The loss terms below are scalars, or one entry per seed for seed-stacked networks (methods/rebias_seeds.py):
    # a sum of losses of disjoint parameters, so ``loss.sum().backward()`` gives each seed its own gradient.
    def _classification_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits, y)

    def _inner_loss(self, g_features: Tensor, f_features: Tensor, y: Tensor) -> Tensor:
        return self.inner(g_features, f_features, labels=y)

    def _outer_loss(self, f_features: Tensor, g_features: Tensor, y: Tensor, f_logits: Tensor,
                    g_logits: Tensor) -> Tensor:
        return self.outer(f_features, g_features, labels=y, f_pred=f_logits, g_pred=g_logits)

    def _step_g(self, x: Tensor, y: Tensor, f_features: Tensor | None) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        with self.autocast():
            loss = x.new_zeros(())
            for i, g_net in enumerate(self.g_nets):
                g_logits, g_features = g_net(x)
                if self.config.update_g_cls:
                    cls_loss = self._classification_loss(g_logits, y)
                    loss = loss + cls_loss
                    logs[f"g_{i}_cls"] = cls_loss.detach()
                if f_features is not None:
                    inner_loss = self._inner_loss(g_features, f_features, y)
                    loss = loss + self.config.g_lambda_inner * inner_loss
                    logs[f"g_{i}_inner"] = inner_loss.detach()
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.g_optimizer.step()
        logs["g_loss"] = loss.detach()
        return logs

    def _step_f(self, x: Tensor, y: Tensor, f_output: tuple[Tensor, Tensor], with_outer: bool) -> dict[str, Tensor]:
        logs: dict[str, Tensor] = {}
        f_logits, f_features = f_output
        with self.autocast():
            loss = x.new_zeros(())
            if not (with_outer and self.outer_includes_classification):
                cls_loss = self._classification_loss(f_logits, y)
                loss = loss + cls_loss
                logs["f_cls"] = cls_loss.detach()
            if with_outer:
                outer_total = x.new_zeros(())
                with torch.no_grad():
                    g_outputs = [g_net(x) for g_net in self.g_nets]
                for i, (g_logits, g_features) in enumerate(g_outputs):
                    outer_loss = self._outer_loss(f_features, g_features, y, f_logits, g_logits)
                    outer_total = outer_total + outer_loss
                    logs[f"f_outer_g_{i}"] = outer_loss.detach()
                loss = loss + self.config.f_lambda_outer * outer_total
        self.f_optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.f_optimizer.step()
        logs["f_loss"] = loss.detach()
        return logs

    def training_step(self, batch: Batch, phase: Phase) -> dict[str, Tensor]:
        x, y = batch.x, batch.target
        if phase.name == "pretrain_g":
            return self._step_g(x, y, f_features=None)
        with self.autocast():
            f_output = self.f_net(x)
        if phase.name == "pretrain_f":
            return self._step_f(x, y, f_output, with_outer=False)
        logs: dict[str, Tensor] = {}
        if self.config.n_g_update > 0:
            f_features = f_output[1].detach() if self.config.g_lambda_inner != 0 else None
            for _ in range(self.config.n_g_update):
                logs.update(self._step_g(x, y, f_features))
        logs.update(self._step_f(x, y, f_output, with_outer=self.config.f_lambda_outer != 0))
        return logs

    # ------------------------------------------------------------------------------------------ evaluation
    def predictors(self) -> dict[str, nn.Module]:
        return {name: unwrap(network) for name, network in self.networks.items()}

    # ----------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "f_net": unwrap(self.f_net).state_dict(),
            "g_nets": [unwrap(g).state_dict() for g in self.g_nets],
            "criteria": [{"outer": outer.state_dict(), "sigmas": self.sigmas(replica)}
                         for replica, (outer, _) in enumerate(self.criterion_pairs())],
            "f_optimizer": self.f_optimizer.state_dict(),
            "g_optimizer": self.g_optimizer.state_dict(),
            "f_scheduler": self.f_scheduler.state_dict(),
            "g_scheduler": self.g_scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.f_net).load_state_dict(state["f_net"])
        for g_net, g_state in zip(self.g_nets, state["g_nets"], strict=True):
            unwrap(g_net).load_state_dict(g_state)
        for (outer, inner), saved in zip(self.criterion_pairs(), state["criteria"], strict=True):
            outer.load_state_dict(saved["outer"])
            self._load_sigmas(outer, inner, saved["sigmas"])
        self.f_optimizer.load_state_dict(state["f_optimizer"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.f_scheduler.load_state_dict(state["f_scheduler"])
        self.g_scheduler.load_state_dict(state["g_scheduler"])

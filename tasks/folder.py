"""Your own biased dataset (``--dataset folder``, datasets/folder_data.py) for every method.

Data: the train split and the ``valid``/``test`` evaluation loaders read images with DataLoader workers
(``--num_workers``; ``--cache_images`` keeps them decoded in memory after the first epoch), or, with ``--preload``,
decoded once up front into uint8 tensors on the training device (datasets/tensor_loader.TensorLoader); both give
the same batches for the same seed. Inputs are ``--image_size`` squares in [0, 1] or standardised (``--normalize``),
augmented in training by ``--augment``.

Metrics per evaluation split: its accuracy (named after the split), and where the split has bias labels the mean
over its non-empty (target, bias) groups (``_cell_mean``, the unbiased accuracy), the worst group's accuracy
(``_worst_group``) and the accuracy over bias-aligned and bias-conflicting images (``_aligned``, ``_conflicting``);
a class's aligned group is its majority bias value in training (``aligned_groups`` in results.json). Selection
(``--select_on``): the evaluation with the best valid worst-group or valid average accuracy, the best test accuracy,
or the final model.

Networks (``--f``, ``--g``: models/folder_models.py); ``--init_weights PATH`` loads a local state_dict into every
network of f's architecture (all keys but the classifier's must match); ``--method biased`` trains g's architecture
as f.
"""
from __future__ import annotations

from typing import Any

import torch
from munch import Munch
from torch import nn

from datasets.folder_data import (NORMALISATIONS, SPLITS, FolderImageDataset, FolderLoader, FolderTable, ImageCache,
                                  InputTransform, Split, build_augmentation, decode_all, image_size_of, read_folder)
from datasets.tensor_loader import TensorLoader
from evaluator import CellAccuracy
from models.disent_models import MLP_INPUT_DIM
from models.folder_models import F_NETWORKS, G_NETWORKS, Denormalised, feature_dim_of
from models.matrix_models import WithFeatures
from tasks.base import Task
from utils.config import ConfigError, require
from utils.io import safe_torch_load
from utils.seed import derived_seed

SELECTIONS = {"valid_worst_group": ("valid_worst_group", "f"), "valid_average": ("valid", "f"),
              "test": ("test", "f"), "final": None}
"""``--select_on`` -> the trainer's (metric, predictor) selection (tasks/base.py ``selection``; None = final)."""
CLASSIFIER_PREFIXES = ("fc.", "classifier.")


def check_table(table: FolderTable, select_on: str) -> None:
    """One-line refusals: an empty split, a class without training images, partial bias labels on an evaluation
    split, ``--select_on valid_worst_group`` without valid bias labels."""
    for split in SPLITS:
        require(len(table.splits[split]) > 0, f"the {split} split of this {table.layout} dataset has no images")
    counts = torch.bincount(table.splits["train"].targets, minlength=len(table.target_names))
    empty = [table.target_names[i] for i in range(len(counts)) if counts[i] == 0]
    require(not empty, f"class(es) {empty} have no training image")
    for split in ("valid", "test"):
        part = table.splits[split]
        require(part.bias_known in (0, len(part)),
                f"the {split} split has bias labels for {part.bias_known} of {len(part)} images: give all or none")
    require(select_on in SELECTIONS, f"--select_on must be one of {list(SELECTIONS)}, got {select_on!r}")
    require(select_on != "valid_worst_group" or table.splits["valid"].bias_known > 0,
            "--select_on valid_worst_group needs bias labels on the valid split, which has none: use --select_on "
            "valid_average, test or final")


def group_metrics(loader_name: str, cells: CellAccuracy, aligned: torch.Tensor) -> dict[str, float]:
    """``<loader>_cell_mean`` (unbiased), ``_worst_group``, ``_aligned`` and ``_conflicting`` accuracies (percent)
    over the non-empty groups; ``aligned`` is the (classes, biases) mask of bias-aligned groups."""
    present = cells.total > 0
    accuracy = 100.0 * cells.correct.float() / cells.total.clamp(min=1)
    metrics = {f"{loader_name}_cell_mean": cells.cell_mean(),
               f"{loader_name}_worst_group": float(accuracy[present].min())}
    for name, mask in (("aligned", aligned), ("conflicting", ~aligned)):
        total = int(cells.total[mask].sum())
        if total:
            metrics[f"{loader_name}_{name}"] = 100.0 * int(cells.correct[mask].sum()) / total
    return metrics


class FolderTask(Task):
    """One folder dataset (``config.data_dir``) with the networks ``config.f`` / ``config.g``."""

    name = "folder"

    def __init__(self, config: Munch, device: torch.device):
        self.config = config
        table = read_folder(config.data_dir, config.layout, config.target_attr, config.bias_attr)
        check_table(table, config.select_on)
        print(table.summary(), flush=True)
        self.table = table
        self.fingerprint = table.fingerprint(config.data_dir)  # once: every checkpoint's meta records it
        self.num_classes = len(table.target_names)
        self.num_biases = max(1, len(table.bias_names))
        self.image_size = image_size_of(table, config.image_size)
        self._check_networks()
        self.selection = SELECTIONS[config.select_on]
        self.bias_labelled = [split for split in ("valid", "test") if table.splits[split].bias_known]
        aligned = table.aligned_groups()
        self.aligned_mask = torch.zeros(self.num_classes, self.num_biases, dtype=torch.bool)
        for target, bias in aligned.items():
            self.aligned_mask[target, bias] = True
        transform = InputTransform(config.normalize)
        self.train_loader = self._loader("train", transform, device, shuffle=True)
        self.eval_loaders = {split: self._loader(split, transform, device, shuffle=False)
                             for split in ("valid", "test")}
        self.train_targets = table.splits["train"].targets.to(device)
        self._init_state = None if config.init_weights is None else self._read_init_weights(config.init_weights)
        with torch.random.fork_rng(devices=[]):
            f_dim, g_dim = feature_dim_of(self.build_f()), feature_dim_of(self.build_g())
        self.criterion_extras = {"feat_dim": f_dim, "f_feat_dim": f_dim, "g_feat_dim": g_dim,
                                 "num_classes": self.num_classes}

    # ---------------------------------------------------------------------------------------------- data
    def _loader(self, split: str, transform: InputTransform, device: torch.device, shuffle: bool) -> Any:
        config, part = self.config, self.table.splits[split]
        if split != "train" and not part.bias_known:
            part = Split(part.paths, part.targets, torch.zeros_like(part.biases))
        augment = build_augmentation(config.augment, self.image_size) if split == "train" else None
        resize = config.image_size is not None
        seed = derived_seed(config.seed, 1) if shuffle else 0
        drop_last = config.drop_last and shuffle
        if config.preload:
            images = decode_all(FolderImageDataset(part, self.image_size, resize))
            return TensorLoader(images.to(device), part.targets.to(device), part.biases.to(device), config.batch_size,
                                shuffle=shuffle, transform=transform, seed=seed, drop_last=drop_last)
        cache = ImageCache(len(part), self.image_size) if config.cache_images else None
        dataset = FolderImageDataset(part, self.image_size, resize, augment, cache)
        return FolderLoader(dataset, config.batch_size, shuffle, device, transform, seed=seed,
                            num_workers=config.num_workers, drop_last=drop_last)

    # ------------------------------------------------------------------------------------------ networks
    def _check_networks(self) -> None:
        config = self.config
        require(config.f in F_NETWORKS, f"--f must be one of {sorted(F_NETWORKS)}, got {config.f!r}")
        require(config.g in G_NETWORKS, f"--g must be one of {sorted(G_NETWORKS)}, got {config.g!r}")
        require(config.f != "mlp" or 3 * self.image_size ** 2 == MLP_INPUT_DIM,
                f"--f mlp reads 28x28 images, these are {self.image_size}x{self.image_size}: pass --image_size 28")
        require(not (config.preload and config.augment != "none"),
                "--augment runs in the DataLoader's workers: it needs --preload False")

    def _read_init_weights(self, path: str) -> dict[str, torch.Tensor]:
        state = safe_torch_load(path)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        require(isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()),
                f"--init_weights '{path}' holds no state_dict (a dict of tensors)")
        return state

    def _initialised(self, net: nn.Module) -> nn.Module:
        """``net`` with ``--init_weights`` loaded: every key of the same name and shape; all of the network's keys
        but the classifier's must be among them."""
        if self._init_state is None:
            return net
        own = net.state_dict()
        loaded = {key: value for key, value in self._init_state.items()
                  if key in own and own[key].shape == value.shape}
        missing = [key for key in own if key not in loaded and not key.startswith(CLASSIFIER_PREFIXES)]
        if missing:
            raise ConfigError(f"--init_weights '{self.config.init_weights}' does not fit --f {self.config.f}: "
                              f"{len(missing)} of its tensors are missing or of another shape, e.g. '{missing[0]}'")
        net.load_state_dict(loaded, strict=False)
        return net

    def build_model(self, disentangle: bool) -> nn.Module:
        """f's architecture for the step methods: a classifier (logits, ``extract``) or a DisEnt encoder; for
        ``--method biased`` g's architecture (logits only)."""
        classifier, encoder = F_NETWORKS[self.config.f]
        return self._initialised((encoder if disentangle else classifier)(self.num_classes))

    def build_f(self) -> nn.Module:
        """f of the f/g trainer, returning ``(logits, features)`` (g's architecture for ``--method biased``)."""
        if self.config.method == "biased":
            return self.build_g()
        return WithFeatures(self.build_model(disentangle=False))

    def build_g(self) -> nn.Module:
        """The biased network g of the f/g trainer, returning ``(logits, features)``."""
        net = G_NETWORKS[self.config.g](self.num_classes, self.config.feature_pos)
        statistics = NORMALISATIONS[self.config.normalize]
        if self.config.g == "colour_histogram" and statistics is not None:
            return Denormalised(net, *statistics)
        return net

    # ------------------------------------------------------------------------------------------- metrics
    def extra_metrics(self, loader_name: str, cells: CellAccuracy) -> dict[str, float]:
        if loader_name not in self.bias_labelled:
            return {}
        return group_metrics(loader_name, cells, self.aligned_mask)

    def data_fingerprint(self) -> str:
        return self.fingerprint

    def results_fields(self) -> dict[str, Any]:
        table = self.table
        return {"dataset": "folder", "data_dir": str(self.config.data_dir), "layout": table.layout,
                "label_names": table.label_names,
                "aligned_groups": {table.target_names[t]: table.bias_names[b]
                                   for t, b in table.aligned_groups().items()},
                "group_counts": {split: table.group_counts(split).tolist() for split in SPLITS},
                "bias_labelled_splits": [split for split in SPLITS if table.splits[split].bias_known],
                "image_size": self.image_size,
                "networks": {"f": self.config.g if self.config.method == "biased" else self.config.f,
                             "g": self.config.g}}

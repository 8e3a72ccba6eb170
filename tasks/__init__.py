"""Task registry: ``TASKS[name](config, device)`` builds the data and network builders of one experiment."""
from __future__ import annotations

from tasks.action import ActionTask
from tasks.base import Task
from tasks.biased_mnist import BiasedMNISTTask, SeedStackedBiasedMNISTTask
from tasks.disent import DisEntTask
from tasks.folder import FolderTask
from tasks.imagenet import ImageNetTask
from tasks.matrix import MatrixTask

TASKS: dict[str, type[Task]] = {
    "action": ActionTask,
    "biased_mnist": BiasedMNISTTask,
    "biased_mnist_seeds": SeedStackedBiasedMNISTTask,
    "disent": DisEntTask,
    "folder": FolderTask,
    "imagenet": ImageNetTask,
    "matrix": MatrixTask,
}

__all__ = ["TASKS", "Task"]

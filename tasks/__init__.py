"""Task registry: ``TASKS[name](config, device)`` builds the data and network builders of one experiment."""
from __future__ import annotations

from tasks.base import Task
from tasks.biased_mnist import BiasedMNISTTask

TASKS: dict[str, type[Task]] = {
    "biased_mnist": BiasedMNISTTask,
}

__all__ = ["TASKS", "Task"]

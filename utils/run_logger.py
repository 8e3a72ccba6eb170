"""Run logging: stdout lines, optional TensorBoard events and Weights & Biases (offline with WANDB_MODE=offline)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tqdm import tqdm


class RunLogger:
    """Writes scalars to TensorBoard / wandb when enabled and prints epoch summaries through tqdm."""

    def __init__(self, run_dir: Path, run_name: str, config: dict[str, Any], tensorboard: bool, wandb: bool,
                 wandb_project: str, quiet: bool = False):
        self.quiet = quiet
        self.writer = None
        self.wandb_run = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if wandb:
            import wandb as wandb_module

            os.environ.setdefault("WANDB_SILENT", "true")
            self.wandb_run = wandb_module.init(project=wandb_project, name=run_name, dir=str(run_dir),
                                               config=dict(config), reinit="finish_previous")

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
        if self.wandb_run is not None:
            self.wandb_run.log({f"{prefix}/{key}": value for key, value in values.items()}, step=step)

    def info(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(message)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()

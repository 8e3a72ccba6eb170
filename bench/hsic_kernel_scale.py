"""How saturated ReBias' RBF kernels are on a run's features: fixed radius against the median heuristic.

    python bench/hsic_kernel_scale.py RUN_DIR [RUN_DIR ...] [--batches 4] [--sigma 1] [--threads 1]

Each RUN_DIR is a main_matrix.py run of the f/g trainer (ReBias and its variants, LearnedMixin, RUBi, Vanilla) with
its ``config.json``. The bench measures a fresh initialisation seeded with the run's seed and, where the run's
``last.pth`` is present (checkpoints are not committed: run it where the run trained), the end of training. For
f's and g's features on ``--batches`` training batches it prints the median-heuristic radius (sqrt of the median
pairwise squared distance), the mean off-diagonal kernel value ``exp(-d^2 / 2 sigma^2)`` at the fixed radius
``--sigma`` (ReBias' Biased MNIST radius by default, whatever radii the run used) and at the median radius, and
the unbiased HSIC(f, g) of the first batch with either radii. A mean near 1 means every pair of samples looks
alike, near 0 unrelated; either way HSIC carries almost no gradient. Training statistics only: no test or
validation number is read.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.denormals import method_from_run  # noqa: E402
from criterions.hsic import hsic_unbiased, median_sigma, rbf_kernel  # noqa: E402
from utils.config import run_cli  # noqa: E402
from utils.io import CheckpointError, load_checkpoint  # noqa: E402


def mean_off_diagonal(kernel: Tensor) -> float:
    """The mean of a square kernel matrix without its diagonal (which is 1 for an RBF kernel)."""
    n = kernel.shape[0]
    return float((kernel.sum() - kernel.diagonal().sum()) / (n * (n - 1)))


def kernel_scale(f_features: list[Tensor], g_features: list[Tensor], fixed_sigma: float) -> dict[str, float]:
    """Median radii of f's and g's features (pooled over batches), mean off-diagonal kernel values at the fixed and
    the median radius, and HSIC(f, g) of the first batch with both."""
    sigma_f = median_sigma(torch.cat(f_features))
    sigma_g = median_sigma(torch.cat(g_features))
    stats = {"median_sigma_f": sigma_f, "median_sigma_g": sigma_g}
    for label, radius_f, radius_g in (("fixed", fixed_sigma, fixed_sigma), ("median", sigma_f, sigma_g)):
        stats[f"k_f_{label}"] = sum(mean_off_diagonal(rbf_kernel(x, radius_f)) for x in f_features) / len(f_features)
        stats[f"k_g_{label}"] = sum(mean_off_diagonal(rbf_kernel(x, radius_g)) for x in g_features) / len(g_features)
        stats[f"hsic_{label}"] = float(hsic_unbiased(rbf_kernel(f_features[0].double(), radius_f),
                                                     rbf_kernel(g_features[0].double(), radius_g)))
    return stats


@torch.no_grad()
def features(method, batches: list) -> tuple[list[Tensor], list[Tensor]]:
    """f's and the first g's features (the vectors HSIC compares) on ``batches``."""
    method.train()
    return ([method.f_net(batch.x)[1].double() for batch in batches],
            [method.g_nets[0](batch.x)[1].double() for batch in batches])


def main(*run_dirs: str, batches: int = 4, sigma: float = 1.0, threads: int = 1) -> None:
    """``sigma``: the fixed radius to compare with the median (ReBias' Biased MNIST setting, 1)."""
    torch.set_num_threads(threads)
    columns = ("median_sigma_f", "median_sigma_g", "k_f_fixed", "k_g_fixed", "k_f_median", "k_g_median",
               "hsic_fixed", "hsic_median")
    print(f"{'run':54s} {'when':5s} " + " ".join(f"{name:>14s}" for name in columns))
    for run_dir in run_dirs:
        checkpoint_path = Path(run_dir) / "last.pth"
        stages = [("init", None)]
        if checkpoint_path.exists():
            stages.append(("end", load_checkpoint(checkpoint_path)["method"]))
        seed = json.loads((Path(run_dir) / "config.json").read_text())["seed"]
        torch.manual_seed(seed)
        task, method = method_from_run(run_dir, rbf_sigma_x=sigma, rbf_sigma_y=sigma)
        loader = iter(task.train_loader)
        data = [next(loader) for _ in range(batches)]
        for stage, state in stages:
            if state is not None:
                method.load_state_dict(state)
            stats = kernel_scale(*features(method, data), sigma)
            print(f"{run_dir.removeprefix('results/'):54s} {stage:5s} "
                  + " ".join(f"{stats[name]:14.4g}" for name in columns))


if __name__ == "__main__":
    run_cli(main, user_errors=(CheckpointError,))

"""Hilbert-Schmidt Independence Criterion (HSIC) with RBF kernels, as used by ReBias (Bahng et al., ICML 2020).

ReBias trains f to minimise ``HSIC(f(x), g(x))`` while the biased nets g maximise it (Eq. 4-5 of the paper).
Two estimators are provided, both taking the (N, N) kernel matrices K (of the first input) and L (of the second):

* biased (Gretton et al. 2005):   HSIC_0 = tr(K H L H) / (N - 1)^2,  H = I - 11^T / N
* unbiased (Song et al. 2012):     HSIC_1 = [ tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((N-1)(N-2))
                                              - 2/(N-2) 1^T K~ L~ 1 ] / (N (N - 3)),
  where K~ and L~ are K and L with their diagonals set to zero. It needs N >= 4.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from criterions.precision import full_precision

SIGMA_FLOOR = 1e-6


@full_precision
def squared_distances(x: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances of the rows of ``x`` flattened to (N, D), clamped at 0 (in float32)."""
    x = x.reshape(x.shape[0], -1)
    sq_norms = (x * x).sum(dim=1)
    distances = sq_norms[:, None] + sq_norms[None, :] - 2.0 * (x @ x.T)
    return distances.clamp_min(0.0)


def rbf_kernel(x: Tensor, sigma: float) -> Tensor:
    """RBF (Gaussian) kernel matrix ``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``; sigma is floored at 1e-6."""
    sigma = max(float(sigma), SIGMA_FLOOR)
    return torch.exp(-squared_distances(x) / (2.0 * sigma * sigma))


def hsic_biased(kernel_x: Tensor, kernel_y: Tensor) -> Tensor:
    """Biased estimator ``tr(K H L H) / (N - 1)^2``."""
    n = kernel_x.shape[0]
    centred_x = kernel_x - kernel_x.mean(dim=0, keepdim=True)
    centred_y = kernel_y - kernel_y.mean(dim=0, keepdim=True)
    return (centred_x * centred_y.T).sum() / (n - 1) ** 2


def hsic_unbiased(kernel_x: Tensor, kernel_y: Tensor) -> Tensor:
    """Unbiased estimator HSIC_1 of Song et al. (2012), see the module docstring; requires N >= 4."""
    n = kernel_x.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC estimator needs a batch of at least 4 samples, got {n}")
    off_diagonal = 1.0 - torch.eye(n, device=kernel_x.device, dtype=kernel_x.dtype)
    tilde_x = kernel_x * off_diagonal
    tilde_y = kernel_y * off_diagonal
    trace_term = (tilde_x * tilde_y.T).sum()
    sums_term = tilde_x.sum() * tilde_y.sum() / ((n - 1) * (n - 2))
    cross_term = 2.0 / (n - 2) * (tilde_x.sum(dim=0) * tilde_y.sum(dim=0)).sum()
    return (trace_term + sums_term - cross_term) / (n * (n - 3))


HSIC_ESTIMATORS = {"biased": hsic_biased, "unbiased": hsic_unbiased}


def median_sigma(features: Tensor) -> float:
    """Median heuristic: ``sqrt(median of all N^2 pairwise squared distances)`` (self-distances included)."""
    return float(squared_distances(features).median().sqrt())


class RbfHSIC(nn.Module):
    """``HSIC(X, Y)`` with RBF kernels of radii ``sigma_x`` (on X) and ``sigma_y`` (on Y).

    The call signature ``(input1, input2, **kwargs)`` matches the other outer criteria; extra keyword arguments
    (labels, predictions) are ignored.
    """

    sign = 1.0

    def __init__(self, sigma_x: float = 1.0, sigma_y: float | None = None, algorithm: str = "unbiased", **_: object):
        super().__init__()
        if algorithm not in HSIC_ESTIMATORS:
            raise ValueError(f"unknown HSIC algorithm '{algorithm}', expected one of {sorted(HSIC_ESTIMATORS)}")
        self.sigma_x = float(sigma_x)
        self.sigma_y = float(sigma_x if sigma_y is None else sigma_y)
        self.algorithm = algorithm

    @full_precision
    def forward(self, input1: Tensor, input2: Tensor, **_: object) -> Tensor:
        estimator = HSIC_ESTIMATORS[self.algorithm]
        return self.sign * estimator(rbf_kernel(input1, self.sigma_x), rbf_kernel(input2, self.sigma_y))

    def extra_repr(self) -> str:
        return f"sigma_x={self.sigma_x:.4g}, sigma_y={self.sigma_y:.4g}, algorithm={self.algorithm}"


class MinusRbfHSIC(RbfHSIC):
    """``-HSIC(X, Y)``: the inner criterion that the biased networks g minimise (i.e. they maximise HSIC)."""

    sign = -1.0

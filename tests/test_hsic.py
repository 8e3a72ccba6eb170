import numpy as np
import pytest
import torch

from criterions import get_criterion
from criterions.hsic import MinusRbfHSIC, RbfHSIC, hsic_biased, hsic_unbiased, median_sigma, rbf_kernel


def direct_kernel(x: np.ndarray, sigma: float) -> np.ndarray:
    n = len(x)
    return np.array([[np.exp(-np.sum((x[i] - x[j]) ** 2) / (2 * sigma**2)) for j in range(n)] for i in range(n)])


def direct_biased(k: np.ndarray, l: np.ndarray) -> float:
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h) / (n - 1) ** 2)


def direct_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. (2012), Eq. 5, written term by term with explicit loops."""
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    value = np.trace(kt @ lt)
    value += (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    value -= 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float(value / (n * (n - 3)))


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5))
    y = np.tanh(x @ rng.normal(size=(5, 3))) + 0.1 * rng.normal(size=(12, 3))
    return x, y


def test_rbf_kernel_matches_direct_formula(pair):
    x, _ = pair
    np.testing.assert_allclose(rbf_kernel(torch.tensor(x), 1.3).numpy(), direct_kernel(x, 1.3), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algorithm, direct", [("biased", direct_biased), ("unbiased", direct_unbiased)])
def test_estimators_match_direct_formula(pair, algorithm, direct):
    x, y = pair
    expected = direct(direct_kernel(x, 1.0), direct_kernel(y, 2.0))
    value = RbfHSIC(sigma_x=1.0, sigma_y=2.0, algorithm=algorithm)(torch.tensor(x), torch.tensor(y))
    assert value.item() == pytest.approx(expected, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("algorithm", ["biased", "unbiased"])
def test_independent_small_identical_large(algorithm):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=generator)
    y = torch.randn(400, 4, generator=generator)
    hsic = RbfHSIC(sigma_x=2.0, algorithm=algorithm)
    independent, identical = hsic(x, y).item(), hsic(x, x).item()
    assert abs(independent) < 0.002
    assert identical > 0.02
    assert identical > 20 * abs(independent)


def test_minus_is_negative_and_registry():
    x, y = torch.randn(8, 3), torch.randn(8, 3)
    assert MinusRbfHSIC(1.0)(x, y).item() == pytest.approx(-RbfHSIC(1.0)(x, y).item())
    assert get_criterion("RbfHSIC") is RbfHSIC
    with pytest.raises(KeyError, match="unknown criterion"):
        get_criterion("NoSuchCriterion")


@pytest.mark.parametrize("algorithm", ["biased", "unbiased"])
def test_constant_features_are_finite(algorithm):
    constant = torch.ones(16, 8, requires_grad=True)
    other = torch.randn(16, 8)
    sigma = median_sigma(constant.detach())
    assert sigma == 0.0
    value = RbfHSIC(sigma_x=sigma, sigma_y=1.0, algorithm=algorithm)(constant, other)
    value.backward()
    assert torch.isfinite(value) and value.abs().item() < 1e-5
    assert torch.isfinite(constant.grad).all()


def test_unbiased_needs_four_samples():
    with pytest.raises(ValueError, match="at least 4"):
        hsic_unbiased(torch.eye(3), torch.eye(3))
    assert torch.isfinite(hsic_biased(torch.eye(3), torch.eye(3)))


def test_median_sigma_direct():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    distances = [0, 1, 9, 1, 0, 4, 9, 4, 0]
    assert median_sigma(x) == pytest.approx(float(np.sqrt(np.median(distances))))

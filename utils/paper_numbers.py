"""Published numbers that several modules compare against (pure Python: the reports import it without torch)."""
from __future__ import annotations

REBIAS_TABLE1_UNBIASED: dict[str, dict[float, float]] = {
    "Vanilla": {0.999: 10.4, 0.997: 33.4, 0.995: 72.1, 0.990: 89.1},
    "Biased": {0.999: 10.0, 0.997: 10.0, 0.995: 10.0, 0.990: 10.0},
    "LearnedMixin": {0.999: 12.1, 0.997: 50.2, 0.995: 78.2, 0.990: 88.3},
    "RUBi": {0.999: 13.7, 0.997: 43.0, 0.995: 90.4, 0.990: 93.6},
    "ReBias": {0.999: 22.7, 0.997: 64.2, 0.995: 76.0, 0.990: 88.1},
}
"""Unbiased accuracy (%) in ReBias' Table 1 (Biased MNIST, SimpleConvNet, 80 epochs, mean of 3 runs), by method
and rho; "Biased" is g, the 1x1-kernel network."""

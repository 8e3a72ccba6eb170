"""Criteria run in float32 outside autocast (criterions/precision.py): under ``--amp bf16`` HSIC, its distances and
the comparison methods' losses equal their float32 values, where a bf16 matrix product would be off by far more."""
from __future__ import annotations

import pytest
import torch

from criterions import LearnedMixin, RUBi
from criterions.hsic import RbfHSIC, squared_distances

BATCH, WIDTH = 64, 128


def bf16_autocast():
    return torch.autocast(device_type="cpu", dtype=torch.bfloat16)


@pytest.fixture
def features() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    f = torch.randn(BATCH, WIDTH, generator=generator) + 3.0
    g = torch.tanh(f @ torch.randn(WIDTH, WIDTH, generator=generator) / WIDTH ** 0.5) * 2.0
    return f, g


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.detach().double() - reference.detach().double()).abs().max() / reference.detach().double().abs().max())


def test_distances_and_hsic_under_autocast_equal_float32(features):
    f, g = features
    criterion = RbfHSIC(sigma_x=16.0, sigma_y=4.0)
    reference_distances, reference_hsic = squared_distances(f), criterion(f, g)
    with bf16_autocast():
        distances, hsic = squared_distances(f), criterion(f, g)
        naive = (f @ f.T)  # what autocast does to the distances' matrix product without the guard
    assert distances.dtype == hsic.dtype == torch.float32
    assert naive.dtype == torch.bfloat16 and relative_error(naive, f @ f.T) > 1e-3
    assert relative_error(distances, reference_distances) < 1e-6
    assert relative_error(hsic, reference_hsic) < 1e-5


def test_bf16_features_are_upcast(features):
    f, g = features
    criterion = RbfHSIC(sigma_x=16.0, sigma_y=4.0)
    with bf16_autocast():
        value = criterion(f.bfloat16(), g.bfloat16())
    assert value.dtype == torch.float32
    assert relative_error(value, criterion(f.bfloat16().float(), g.bfloat16().float())) < 1e-5


def test_float64_stays_float64(features):
    f, _ = features
    assert squared_distances(f.double()).dtype == torch.float64


@pytest.mark.parametrize("criterion_class", [LearnedMixin, RUBi])
def test_comparison_methods_under_autocast_equal_float32(features, criterion_class):
    f, g = features
    torch.manual_seed(0)
    criterion = criterion_class(feat_dim=WIDTH, num_classes=10)
    labels = torch.arange(BATCH) % 10
    f_pred, g_pred = f[:, :10] * 3, g[:, :10] * 3
    reference = criterion(f, g, labels=labels, f_pred=f_pred, g_pred=g_pred)
    with bf16_autocast():
        value = criterion(f, g, labels=labels, f_pred=f_pred, g_pred=g_pred)
        fc_naive = criterion.fc(f)
    assert fc_naive.dtype == torch.bfloat16
    assert value.dtype == torch.float32 and relative_error(value, reference) < 1e-6


def test_report_labels_bf16_cells_and_leaves_fp32_cells_as_they_were(tmp_path):
    """A Table 1 cell trained under bf16 autocast says so, with a footnote; fp32 cells read as before."""
    import json

    from scripts import report

    def write(method: str, amp: str) -> None:
        path = tmp_path / "runs" / method / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({
            "task": "biased_mnist", "method": method, "train_correlation": 0.997, "seed": 0, "epoch": 80,
            "metrics": {"biased": 100.0, "unbiased": 60.0, "rho0": 55.0},
            "g_metrics": [{"biased": 100.0, "unbiased": 10.0, "rho0": 0.0}],
            "protocol": {"name": "rebias_biased_mnist", "unit": "epochs", "trained": 80, "paper": 80,
                         "batch_size": 256, "paper_batch_size": 256, "paper_length": True,
                         **({"precision": "bf16"} if amp == "bf16" else {})},
            "config": {"amp": amp}}))

    write("ReBias", "bf16")
    write("RUBi", "none")
    markdown = report.build_report(tmp_path / "runs", tmp_path / "out").markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| Unbiased ρ=.997"))
    assert "60.0 ± – (n=1, bf16)" in row and "60.0 ± – (n=1) " in row
    assert "`bf16` marks cells trained with the networks under bf16 autocast" in markdown
    write("Vanilla", "none")
    (tmp_path / "runs" / "ReBias" / "results.json").unlink()
    assert "bf16" not in report.build_report(tmp_path / "runs", tmp_path / "out2").markdown

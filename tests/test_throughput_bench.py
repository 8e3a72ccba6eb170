"""bench/throughput_biased_mnist.py on the CPU: the dense bf16 peak table, the FLOP count of a training step, the
JSON rows, the profile of where the time goes and the verdict on the speed target."""
from __future__ import annotations

import json

import pytest

from bench import throughput_biased_mnist as bench

CHANNELS = (3, 16, 32, 64, 128)


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 790.0), ("NVIDIA H200 NVL", 835.0), ("NVIDIA GH200 480GB", 989.4),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA A10", 125.0),
    ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.1),
    ("Tesla T4", None), ("Tesla V100-SXM2-16GB", None), ("cpu (x86_64)", None)])
def test_dense_bf16_peaks_by_device_name(name, peak):
    assert bench.peak_tflops_for(name) == peak


def simple_conv_net_flops(kernel_size: int) -> tuple[int, int]:
    """(forward FLOPs of one image through SimpleConvNet, those of its first convolution)."""
    convolutions = [2 * 28 * 28 * kernel_size ** 2 * c_in * c_out for c_in, c_out in zip(CHANNELS, CHANNELS[1:])]
    return sum(convolutions) + 2 * 128 * 10, convolutions[0]


def test_bench_counts_flops_profiles_and_writes_rows(tmp_path, fake_mnist_root, capsys):
    rows_path = tmp_path / "rows.json"
    bench.main(root=str(fake_mnist_root), device="cpu", batch_size=4, steps=1, warmup=0, f_kernel_size=3,
               stacked_seeds=2, profile=True, profile_steps=1, json_out=str(rows_path))
    rows = {row["variant"]: row for row in json.loads(rows_path.read_text())}
    assert list(rows) == ["Vanilla", "ReBias", "ReBias (original step: f forwarded twice)",
                          "Vanilla, 2 seeds stacked (--seeds)", "ReBias, 2 seeds stacked (--seeds)"]
    # Vanilla trains f and g by cross-entropy: forward, input gradients (none for the images) and weight gradients.
    expected = sum(3 * forward - first for forward, first in map(simple_conv_net_flops, (3, 1)))
    assert rows["Vanilla"]["flops_per_step"] == 4 * expected
    assert rows["Vanilla, 2 seeds stacked (--seeds)"]["flops_per_step"] == 2 * 4 * expected
    assert rows["Vanilla"]["flops_per_step"] < rows["ReBias"]["flops_per_step"] < \
        rows["ReBias (original step: f forwarded twice)"]["flops_per_step"]
    for row in rows.values():
        assert row["images_per_second"] > 0 and row["peak_tflops"] is None and row["peak_fraction"] is None
        assert row["tflops"] == pytest.approx(row["flops_per_step"] / row["step_ms"] / 1e9)
        profile = row["profile"]
        assert profile["busy_fraction"] is None and profile["host_device_copies_per_step"] == 0
        assert profile["top"] and all(entry["ms_per_step"] >= 0 for entry in profile["top"])
    out = capsys.readouterr().out
    assert "(peak n/a)" in out and "top operators by self CPU time" in out and "no peak known" in out


@pytest.mark.parametrize("profile, fraction, expected", [
    ("auto", None, False), ("auto", 0.3, True), ("auto", 0.5, False), (True, None, True), (False, 0.1, False)])
def test_profile_when_asked_or_below_target(profile, fraction, expected):
    assert bench.should_profile(profile, fraction, 0.4) is expected


def test_target_verdict_names_the_best_variant():
    rows = [{"variant": "a", "peak_fraction": 0.2}, {"variant": "b", "peak_fraction": 0.45}]
    assert "met; best 45.0% (b)" in bench.target_verdict(rows, 989.4, 0.4)
    assert "NOT met; best 20.0% (a)" in bench.target_verdict(rows[:1], 989.4, 0.4)
    assert "n/a" in bench.target_verdict(rows, None, 0.4)

"""MFU inputs: the dense peak of known cards by their CUDA name, and FLOPs counted by torch."""

from __future__ import annotations

import pytest
import torch

from medvl.train.flops import count_flops, dense_peak_tflops


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", ("H100 SXM", 989.0)),
        ("NVIDIA H100 PCIe", ("H100 PCIe", 756.0)),
        ("NVIDIA H200", ("H200", 989.0)),
        ("NVIDIA A100-SXM4-80GB", ("A100", 312.0)),
        ("NVIDIA A100 80GB PCIe", ("A100", 312.0)),
        ("NVIDIA L40S", ("L40S", 362.0)),
        ("NVIDIA A10", ("A10", 125.0)),
        ("Tesla V100-SXM2-16GB", ("V100 (fp16)", 125.0)),
        ("Tesla T4", ("T4 (fp16)", 65.0)),
        ("NVIDIA A10G", None),  # another peak than the A10: not guessed
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H200 NVL", None),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_dense_peak_of_known_cards_and_none_for_others(name, expected):
    assert dense_peak_tflops(name) == expected


def test_flops_of_a_linear_layer_forward_and_backward():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(16, 8, requires_grad=True)
    _, flops = count_flops(lambda: layer(x).sum().backward())
    assert flops == 3 * 2 * 16 * 8 * 4  # forward, gradient of the input, gradient of the weight

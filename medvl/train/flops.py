"""Model FLOPs utilisation (MFU): the FLOPs a step performs, counted by torch, against the card's peak.

MFU = FLOPs of one optimizer step / step time / the card's dense 16-bit tensor-core peak. The FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention kernels of the
forward and backward pass as executed); element-wise work and the optimizer update are not counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from torch.utils.flop_counter import FlopCounterMode

T = TypeVar("T")

# (pattern on torch.cuda.get_device_name(), card, dense bf16 TFLOP/s; fp16 on cards without bf16). First match
# wins; variants with another peak (H100 NVL, H200 NVL, A10G) match none, so their MFU needs --peak-tflops.
PEAK_TFLOPS: tuple[tuple[str, str, float], ...] = (
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.0),
    (r"\bH100 (SXM|80GB HBM3)", "H100 SXM", 989.0),
    (r"\bH200\b(?!.*NVL)", "H200", 989.0),
    (r"\bA100\b", "A100", 312.0),
    (r"\bL40S\b", "L40S", 362.0),
    (r"\bA10\b", "A10", 125.0),
    (r"\bV100\b", "V100 (fp16)", 125.0),
    (r"\bT4\b", "T4 (fp16)", 65.0),
)


def dense_peak_tflops(device_name: str) -> tuple[str, float] | None:
    """The card and its dense 16-bit peak in TFLOP/s for a ``torch.cuda.get_device_name()``, or None if unknown."""
    for pattern, card, peak in PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return card, peak
    return None


def count_flops(fn: Callable[[], T]) -> tuple[T, int]:
    """Run ``fn`` once under ``FlopCounterMode``; its result and the FLOPs it performed."""
    with FlopCounterMode(display=False) as counter:
        result = fn()
    return result, counter.get_total_flops()

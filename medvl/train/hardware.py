"""What the hardware decides: mixed precision, fast-math switches and how many loader processes to start."""

from __future__ import annotations

import contextlib
import os

import torch

from medvl.config import ConfigError


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: fp32).

    ``auto``: bf16 on GPUs that support it (Ampere and newer), fp16 on older GPUs, fp32 on the CPU.
    """
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing for fp32."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 (whose small gradients would underflow), None otherwise."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None


def enable_fast_math(device: torch.device) -> None:
    """TF32 matrix products and convolutions on Ampere and newer GPUs (fp32 parts of mixed precision)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.fp32_precision = "tf32"  # torch >= 2.9 (the project's floor)
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        torch.backends.cudnn.benchmark = True


def loader_workers(setting: int | str, local_ranks: int = 1) -> int:
    """Batch-reading processes per rank: the setting, or for ``auto`` the cores left per rank minus one (at most 8)."""
    if setting != "auto":
        if int(setting) < 0:
            raise ConfigError(f"data.workers must be 'auto' or >= 0, got {setting}")
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores // max(1, local_ranks) - 1))

"""All rank and environment handling in one place: torchrun, SLURM, or a single process.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Under SLURM
(``srun`` without torchrun) the same facts come from ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID`` and
the first host of ``SLURM_JOB_NODELIST``. Everything else in medvl asks this module, never the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from medvl.config import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def first_slurm_host(nodelist: str) -> str:
    """First host name of a SLURM node list such as ``gpu[03-05,07],cpu1`` -> ``gpu03``."""
    match = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ValueError(f"cannot parse SLURM_JOB_NODELIST '{nodelist}'")
    prefix, _, ranges = match.groups()
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return f"{prefix}{first}"


def env_info(environ: dict[str, str] | None = None) -> DistInfo:
    """Rank facts from torchrun or SLURM variables (a single process when neither is set)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistInfo()


def _export_slurm_rendezvous(info: DistInfo) -> None:
    """Fill MASTER_ADDR/PORT and RANK/WORLD_SIZE from SLURM so ``init_process_group`` finds its peers."""
    if "SLURM_JOB_NODELIST" in os.environ:
        os.environ.setdefault("MASTER_ADDR", first_slurm_host(os.environ["SLURM_JOB_NODELIST"]))
    os.environ.setdefault("MASTER_PORT", str(29500 + int(os.environ.get("SLURM_JOB_ID", "0")) % 1000))
    os.environ.setdefault("RANK", str(info.rank))
    os.environ.setdefault("WORLD_SIZE", str(info.world_size))
    os.environ.setdefault("LOCAL_RANK", str(info.local_rank))


def setup(backend: str | None = None, timeout_s: int = 1800) -> DistInfo:
    """Join the process group when launched by torchrun/SLURM; returns this process's :class:`DistInfo`.

    The backend defaults to NCCL when CUDA is available and gloo otherwise.
    """
    info = env_info()
    if not info.distributed:
        return info
    if dist.is_initialized():
        return DistInfo(info.rank, info.world_size, info.local_rank, dist.get_backend())
    _export_slurm_rendezvous(info)
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistInfo(info.rank, info.world_size, info.local_rank, backend)


def device_for(info: DistInfo, requested: str = "auto") -> torch.device:
    """This rank's device: its local GPU when CUDA is available (or ``requested`` is ``cuda``), else the CPU."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device: '{requested}' is not one of auto, cpu, cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda, but no CUDA device is visible to this process")
    if requested != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def local_world_size() -> int:
    """Processes of this job on this node (torchrun's ``LOCAL_WORLD_SIZE``; 1 when unknown)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over ranks (the value itself in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

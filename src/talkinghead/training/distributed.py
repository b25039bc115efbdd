"""Multi-process training helpers: the torchrun environment, collectives, seeding, unwrapping.

Launch with ``torchrun --nproc_per_node=N ...``; torchrun sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT. Without them everything runs in one process and no process
group is created, so the same code path trains on a laptop.
"""

from __future__ import annotations

import os
import random
from typing import Any, Literal, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from talkinghead.utils.modules import unwrap
from talkinghead.errors import DeviceError, InvalidInputError

DevicePreference = Literal["auto", "cpu", "cuda"]


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed Python, numpy and torch (CPU and CUDA) with ``seed + rank``; returns that seed.

    Each process gets its own stream (different episodes and augmentations per rank) while
    the run stays reproducible. Networks must be initialised identically on every rank by
    other means (DDP broadcasts rank 0's weights when it wraps them).
    """
    value = int(seed) + int(rank)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)  # also seeds every CUDA device
    return value


def _env_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInputError(f"environment variable {key}={raw!r} is not an integer") from None


class DistributedContext:
    """This process's place in a (possibly single-process) training run.

    Args:
        env: the environment to read (default ``os.environ``).
    """

    def __init__(self, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        self._rank = _env_int(env, "RANK", 0)
        self._world_size = _env_int(env, "WORLD_SIZE", 1)
        self._local_rank = _env_int(env, "LOCAL_RANK", 0)
        if "RANK" in env and "WORLD_SIZE" not in env:
            raise InvalidInputError("RANK is set but WORLD_SIZE is not; launch multi-process training with torchrun")
        if self._world_size < 1 or not 0 <= self._rank < self._world_size:
            raise InvalidInputError(f"invalid RANK={self._rank} / WORLD_SIZE={self._world_size}")
        if self._world_size > 1:
            missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not env.get(k)]
            if missing:
                raise InvalidInputError(f"WORLD_SIZE={self._world_size} but {missing} unset; launch with torchrun")
        self._device = torch.device("cpu")
        self._backend: str | None = None
        self._owns_group = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DistributedContext":
        """The context described by torchrun's variables in ``env`` (default ``os.environ``)."""
        return cls(env)

    @property
    def rank(self) -> int:
        """Global rank of this process (0 in a single-process run)."""
        return self._rank

    @property
    def local_rank(self) -> int:
        """Rank on this machine (the CUDA device index)."""
        return self._local_rank

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self._world_size

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints."""
        return self._rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when a process group of several processes is in use."""
        return self._world_size > 1 and dist.is_available() and dist.is_initialized()

    @property
    def device(self) -> torch.device:
        """The device this process trains on (CPU until :meth:`init`)."""
        return self._device

    @property
    def backend(self) -> str | None:
        """``nccl`` or ``gloo`` once a process group is up, else None."""
        return self._backend

    def init(self, device_preference: DevicePreference = "auto") -> "DistributedContext":
        """Pick the device and, with several processes, join the process group.

        Args:
            device_preference: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.

        CUDA processes use device ``LOCAL_RANK`` and the NCCL backend; CPU processes gloo.
        """
        if device_preference not in ("auto", "cpu", "cuda"):
            raise InvalidInputError(f"device must be auto, cpu or cuda, got {device_preference!r}")
        use_cuda = device_preference == "cuda" or (device_preference == "auto" and torch.cuda.is_available())
        if use_cuda:
            if not torch.cuda.is_available():
                raise DeviceError("device=cuda was asked for but CUDA is not available; use device=cpu or auto")
            if self._local_rank >= torch.cuda.device_count():
                raise DeviceError(
                    f"LOCAL_RANK={self._local_rank} but only {torch.cuda.device_count()} CUDA device(s) are "
                    "visible; start at most that many processes per machine"
                )
            torch.cuda.set_device(self._local_rank)
            self._device = torch.device("cuda", self._local_rank)
        else:
            self._device = torch.device("cpu")
        if self._world_size > 1 and not dist.is_initialized():
            self._backend = "nccl" if use_cuda else "gloo"
            dist.init_process_group(
                backend=self._backend,
                init_method="env://",
                rank=self._rank,
                world_size=self._world_size,
                device_id=self._device if use_cuda else None,
            )
            self._owns_group = True
        elif self.is_distributed:
            self._backend = dist.get_backend()
        return self

    def barrier(self) -> None:
        """Wait for every process (no-op in a single process)."""
        if not self.is_distributed:
            return
        if self._backend == "nccl":
            dist.barrier(device_ids=[self._local_rank])
        else:
            dist.barrier()

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over all processes (a new tensor; the input is unchanged).

        Integer tensors are averaged as float32. In a single process the input is returned.
        """
        if not self.is_distributed:
            return tensor
        reduced = tensor.detach().clone()
        if not reduced.is_floating_point():
            reduced = reduced.float()
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced / self._world_size

    def all_reduce_mean_dict(self, values: Mapping[str, float | torch.Tensor]) -> dict[str, float]:
        """Means over all processes of named numbers, in one collective; returns floats.

        Every process must pass the same names (in any order).
        """
        names = sorted(values)
        if not self.is_distributed:
            return {name: float(values[name]) for name in names}
        stacked = torch.tensor([float(values[name]) for name in names], dtype=torch.float64, device=self._device)
        return dict(zip(names, self.all_reduce_mean(stacked).tolist()))

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """``obj`` from rank ``src`` on every process (picklable objects only)."""
        if not self.is_distributed:
            return obj
        holder = [obj if self._rank == src else None]
        dist.broadcast_object_list(holder, src=src, device=self._device if self._backend == "nccl" else None)
        return holder[0]

    def shutdown(self) -> None:
        """Leave the process group this context created (safe to call more than once)."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self._owns_group = False
        self._backend = None

    def __repr__(self) -> str:
        return (
            f"DistributedContext(rank={self._rank}, world_size={self._world_size}, "
            f"local_rank={self._local_rank}, device={self._device}, backend={self._backend})"
        )

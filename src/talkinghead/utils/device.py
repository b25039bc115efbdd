"""Choosing where networks run, and on how many CPU threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from talkinghead.errors import DeviceError


def resolve_device(preference: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error a person can act on.

    Raises:
        DeviceError: a CUDA device was asked for and PyTorch sees none.
    """
    if str(preference) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {str(preference)!r} was asked for, but PyTorch sees no CUDA GPU; use the CPU (device cpu or auto)"
        )
    return device


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op CPU threads, then restore the previous count.

    A job (``--threads N``) must not leave the whole process on N threads afterwards: a later
    job, or a test in the same process, would run differently (and, for training, give other
    floating-point sums). ``None`` leaves the count alone.
    """
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def available_memory(device: str | torch.device) -> int | None:
    """Bytes a new allocation can take on ``device`` now (GPU: free memory; CPU: MemAvailable).

    None where it cannot be known (no ``/proc/meminfo``).
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None

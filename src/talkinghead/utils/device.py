"""Choosing where networks run."""

from __future__ import annotations

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

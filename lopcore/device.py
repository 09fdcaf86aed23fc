"""Where runs compute: the device a user names, checked against this machine, and (on a GPU) a CUDA
stream per thread so that groups training at once overlap their kernels."""

from __future__ import annotations

import contextlib

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """ "auto" picks CUDA when present; anything else must be a device torch can use here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r} requested but this machine has {torch.cuda.device_count()} CUDA "
            f"device(s): valid: 'cuda:0' to 'cuda:{torch.cuda.device_count() - 1}', 'cpu', 'auto'"
        )
    return dev


def own_stream(device: torch.device):
    """On a GPU, a CUDA stream of this thread's own (groups that train at once overlap their kernels);
    elsewhere nothing."""
    return torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else contextlib.nullcontext()

"""Choose the one torch device every model in a process runs on."""

from __future__ import annotations

import torch


def pick_device() -> torch.device:
    """Return the CUDA device when one is available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

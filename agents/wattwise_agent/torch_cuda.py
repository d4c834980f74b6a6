"""The little the agent needs from torch.cuda, imported lazily and only if the program imported torch.

The agent never imports torch itself at module level (``tests/test_boundaries.py``): a program that
uses CUDA has imported torch already, and one that has not has no CUDA work to wait for.
"""

from __future__ import annotations

import sys


def cuda_in_use() -> bool:
    """True when the program imported torch and CUDA is initialised (without initialising it)."""
    if "torch" not in sys.modules:
        return False
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_initialized())


def cuda_synchronize() -> None:
    """Wait for this process's queued GPU work, so a timestamp or reading brackets it (no-op on CPU)."""
    if cuda_in_use():
        import torch

        torch.cuda.synchronize()


def current_cuda_gpu_uuid() -> str | None:
    """NVML's UUID (``GPU-…``) of the current CUDA device, or None when CUDA is not in use."""
    if not cuda_in_use():
        return None
    import torch

    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    uuid = getattr(properties, "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"

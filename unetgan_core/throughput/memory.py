"""Peak memory of a measured workload: the CUDA allocator peak, or the process peak RSS on CPU.

On CPU there is no allocator peak to reset: ``ru_maxrss`` is the peak resident set of the
whole process since it started, so a CPU row reports the largest footprint seen so far
(including earlier, larger rows). It is an upper bound, and says so in its name.
"""

from __future__ import annotations

import resource
import sys

import torch

MIB = 1024 * 1024


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak-memory window on ``device`` (only possible on CUDA).

    Args:
        device: the device the workload runs on.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def process_peak_rss_mb() -> float:
    """Peak resident set size of this process since it started, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def peak_memory_mb(device: torch.device | str) -> float:
    """Peak memory since the last ``reset_peak_memory``, in MiB.

    Args:
        device: the device the workload ran on. CUDA: the caching allocator's peak of
            allocated tensor memory. CPU: the process peak RSS (see module docstring).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB
    return process_peak_rss_mb()

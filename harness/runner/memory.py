"""Memory of a point: the peak of each phase, and memory given back when a point ends.

CPU peaks are the kernel's resident-set high-water mark (VmHWM), reset at the start of each phase
by writing 5 to /proc/self/clear_refs (Linux), so each phase reports its own peak. Where that
cannot be reset, each phase reports the process peak so far, and the record says so. On CUDA the
peak is torch.cuda.max_memory_allocated, reset per phase.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import re
import resource
import sys
import time
from pathlib import Path
from typing import Iterator

GIB = 1024 ** 3
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_cpu_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _cpu_peak_bytes() -> int:
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak if sys.platform == "darwin" else peak * 1024


def _cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda if torch.cuda.is_available() else None


class Phases:
    """The phases of a point (`with phases.phase("train"): ...`): each one's wall time and its peak
    CPU RSS (and CUDA memory) in GiB, so provenance says which phase sets a point's peak."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.cuda: dict[str, float] = {}
        self.resettable = True

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.resettable = _reset_cpu_peak() and self.resettable
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[f"{name}_s"] = time.perf_counter() - start
            self.cpu[name] = round(_cpu_peak_bytes() / GIB, 3)
            if cuda is not None:
                self.cuda[name] = round(cuda.max_memory_allocated() / GIB, 3)

    def record(self) -> dict:
        """Provenance's `peak_memory`."""
        return {
            "cpu_rss_gib": self.cpu,
            "cuda_allocated_gib": self.cuda or None,
            "cpu_method": ("per phase (VmHWM reset through /proc/self/clear_refs)" if self.resettable
                           else "process peak so far at the end of each phase (no per-phase reset here)"),
        }


def give_back_memory() -> None:
    """After a point: collect the model, optimizer and Trainer (they hold reference cycles), empty
    the CUDA cache and return freed heap to the OS, so the next point of a bench or sweep in this
    process starts from what the first one found."""
    gc.collect()
    cuda = _cuda()
    if cuda is not None:
        cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere freed memory stays mapped

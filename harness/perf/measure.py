"""Timing, peak memory (CUDA allocator, or CPU resident set size) and the matmul peak the MFU
figures are measured against."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def peak_memory(device: torch.device):
    """Yields a dict whose 'peak_bytes' is set on exit: the CUDA allocator's peak above the
    memory allocated on entry; None on CPU (no allocator statistics there)."""
    out: dict = {"peak_bytes": None}
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    yield out
    if device.type == "cuda":
        synchronize(device)
        out["peak_bytes"] = torch.cuda.max_memory_allocated(device) - base


def _status_bytes(field: str) -> int | None:
    """A `kB` field of /proc/self/status (Linux) in bytes; None where there is no such file."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


def _reset_rss_high_water() -> bool:
    """Sets VmHWM back to the current RSS (Linux >= 4.0: write 5 to clear_refs); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextmanager
def rss_peak():
    """Yields a dict whose 'peak_bytes' is set on exit: this process's peak resident set size
    (VmHWM) above its RSS on entry. It counts every touched page, the allocator's cached ones
    included, so it is an OS view of memory, not the CUDA allocator's tensor peak. None where it
    cannot be attributed to the block: no /proc (not Linux), or the high-water mark could not be
    reset and already stood above the entry RSS."""
    out: dict = {"peak_bytes": None, "base_bytes": _status_bytes("VmRSS")}
    attributable = out["base_bytes"] is not None and (
        _reset_rss_high_water() or _status_bytes("VmHWM") <= out["base_bytes"])
    yield out
    if attributable:
        out["peak_bytes"] = _status_bytes("VmHWM") - out["base_bytes"]


def timed(fn, device: torch.device, repeats: int) -> float:
    """Seconds per call of fn(), averaged over `repeats` calls (call it once before to warm up)."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matmul in `dtype` on `device`, measured now."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    seconds = timed(lambda: a @ b, device, 10 if device.type == "cuda" else 3)
    return 2 * n**3 / seconds


def train_flops_per_token(model, context: float) -> float:
    """6 N (matmul parameters, the embedding lookup excluded) + attention 12 L H S_ctx per token
    (forward + backward), with S_ctx the mean attended context length: the usual MFU convention."""
    config = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    if config.tie_word_embeddings:
        params += model.get_output_embeddings().weight.numel()
    return 6 * params + 12 * config.num_hidden_layers * config.hidden_size * context

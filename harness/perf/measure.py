"""Timing, peak memory and the matmul peak the MFU figures are measured against."""

from __future__ import annotations

import time
from contextlib import contextmanager

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

"""Greedy generation, plain HF (dynamic cache, batch `plain_batch`) against the fast path
(static cache, prompts left-padded to a PROMPT_BUCKET multiple, compiled by HF on CUDA, larger
batches), on the same prompts; reports new tokens/s, each path's peak memory (the KV cache and the
last position's logits: HF's generate keeps no more, `logits_to_keep=1`) and how often the two agree."""

from __future__ import annotations

import torch

from harness.perf.measure import peak_memory, rss_peak, synchronize
from harness.runner.generation import PROMPT_BUCKET

PAD = 0


def left_padded(prompts: list[list[int]], multiple: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    if multiple:
        width = -(-width // multiple) * multiple
    ids = torch.full((len(prompts), width), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.as_tensor(p)
        mask[row, width - len(p):] = 1
    return ids, mask


def decode_all(model, prompts, batch: int, new_tokens: int, device, fast: bool) -> tuple[list[list[int]], float]:
    """New tokens per prompt (input order) and the seconds it took; prompts are length-sorted."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list = [None] * len(prompts)
    extra = {"cache_implementation": "static"} if fast else {}
    synchronize(device)
    import time
    start = time.perf_counter()
    for at in range(0, len(order), batch):
        chunk = order[at:at + batch]
        ids, mask = left_padded([prompts[i] for i in chunk], PROMPT_BUCKET if fast else None)
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=PAD, eos_token_id=None,
                             temperature=None, top_p=None, top_k=None, **extra)
        for index, row in zip(chunk, out[:, ids.shape[1]:].tolist()):
            outputs[index] = row
    synchronize(device)
    return outputs, time.perf_counter() - start


def agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    """Token agreement (same token at the same step) and the share of identical continuations."""
    same = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    total = sum(len(r) for r in a)
    return {"token_agreement": same / max(total, 1), "identical_rows": sum(ra == rb for ra, rb in zip(a, b)) / len(a)}


def memory_peak(device: torch.device):
    """The CUDA allocator's peak on a GPU; else this process's peak RSS above its RSS on entry
    (after the warm-up calls, so the KV cache each path allocates per batch is what shows)."""
    return peak_memory(device) if device.type == "cuda" else rss_peak()


@torch.no_grad()
def compare(model, prompts, *, plain_batch: int, fast_batch: int, new_tokens: int, device) -> dict:
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(torch.bfloat16)
    decode_all(model, prompts, fast_batch, new_tokens, device, fast=True)  # compiles the static graphs
    decode_all(model, prompts[:plain_batch], plain_batch, new_tokens, device, fast=False)
    with memory_peak(device) as plain_peak:
        plain, plain_s = decode_all(model, prompts, plain_batch, new_tokens, device, fast=False)
    with memory_peak(device) as fast_peak:
        fast, fast_s = decode_all(model, prompts, fast_batch, new_tokens, device, fast=True)
    produced = len(prompts) * new_tokens
    return {"plain_tokens_per_s": produced / plain_s, "fast_tokens_per_s": produced / fast_s,
            "plain_peak_bytes": plain_peak["peak_bytes"], "fast_peak_bytes": fast_peak["peak_bytes"],
            "memory": "cuda-allocator" if device.type == "cuda" else "cpu-rss-in-process",
            "plain_batch": plain_batch, "fast_batch": fast_batch, "new_tokens": new_tokens,
            "prompts": len(prompts), "dtype": str(next(model.parameters()).dtype), **agreement(plain, fast)}

"""Training step, plain against fast, on the same batches of XSum-like examples.

plain: what the runner's plain path (HF Trainer) does per step: right-padded batch
       (DataCollatorForSeq2Seq), full logits, the loss on them, bf16 autocast on GPU, AdamW
       (fused on GPU, as the Trainer's default), no compile.
fast:  packed rows (harness.runner.packing), loss from the LM head's input in chunks over the
       target positions only (harness.losses.chunked), the same optimizer; `+compile` adds
       torch.compile of the model, as the runner's fast path does on GPU.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext

import numpy as np
import torch

from harness.losses.chunked import HeadInputCapture, chunked_token_loss
from harness.perf.measure import peak_memory, synchronize, timed, train_flops_per_token
from harness.runner.packing import PackedCollator


def padded_batch(features: list[dict]) -> dict[str, torch.Tensor]:
    """Right padding to the longest example, labels -100 on padding (DataCollatorForSeq2Seq's output)."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros(len(features), width, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.as_tensor(f["input_ids"])
        labels[row, :n] = torch.as_tensor(f["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


def plain_loss(model, loss_fn, batch: dict, device) -> torch.Tensor:
    batch = {k: v.to(device) for k, v in batch.items()}
    with _autocast(device):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        return loss_fn(out, batch["labels"])


def fast_loss(model, loss_fn, batch: dict, device, capture: HeadInputCapture) -> torch.Tensor:
    batch = {k: v.to(device) for k, v in batch.items()}
    with _autocast(device), capture.active():
        model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False)
        return chunked_token_loss(loss_fn, capture.hidden, capture.head.weight, batch["labels"])


def check_same(model, loss_fn, features: list[dict], device) -> dict:
    """Loss and gradients of the plain and fast paths on one batch, from the same weights."""
    results = []
    capture = HeadInputCapture(model.get_output_embeddings())
    for run in (lambda: plain_loss(model, loss_fn, padded_batch(features), device),
                lambda: fast_loss(model, loss_fn, PackedCollator(0)(features), device, capture)):
        model.zero_grad(set_to_none=True)
        loss = run()
        loss.backward()
        results.append((loss.item(), {n: p.grad.detach().float().clone() for n, p in model.named_parameters()
                                      if p.grad is not None}))
    model.zero_grad(set_to_none=True)
    (plain_value, plain_grads), (fast_value, fast_grads) = results
    rel = max(float((plain_grads[n] - g).norm() / plain_grads[n].norm().clamp_min(1e-30)) for n, g in fast_grads.items())
    return {"plain_loss": plain_value, "fast_loss": fast_value, "loss_abs_diff": abs(plain_value - fast_value),
            "max_grad_rel_diff": rel, "same_params": set(plain_grads) == set(fast_grads)}


def measure_path(model, loss_fn, batches: list[list[dict]], device, path: str, warmup: int) -> dict:
    """Tokens/s and peak memory of `path` (plain | fast | fast+compile) over `batches`, the time
    the warm-up steps took (compilation included) and the loss of the first step (same weights,
    same batch on every path: it shows the paths compute the same thing)."""
    model = copy.deepcopy(model).to(device).train()
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=fused)
    capture = HeadInputCapture(model.get_output_embeddings())
    forward = model
    if path.endswith("+compile"):
        # dynamic=True: packed rows vary in shape. The runner's Trainer compiles with automatic
        # dynamic shapes, which after the first recompile runs this same dynamic graph.
        forward = torch.compile(model, dynamic=True)
    collate = padded_batch if path == "plain" else PackedCollator(0)
    prepared = [collate(b) for b in batches]

    def step(batch) -> torch.Tensor:
        if path == "plain":
            loss = plain_loss(forward, loss_fn, batch, device)
        else:
            loss = fast_loss(forward, loss_fn, batch, device, capture)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    started = time.perf_counter()
    first_loss = step(prepared[0]).item()
    for batch in prepared[1:warmup]:
        step(batch)
    synchronize(device)
    warmup_s = time.perf_counter() - started
    timed_batches = prepared[warmup:]
    position = iter(timed_batches)
    with peak_memory(device) as memory:
        seconds = timed(lambda: step(next(position)), device, len(timed_batches))
    tokens = sum(len(f["input_ids"]) for b in batches[warmup:] for f in b)
    context = np.mean([len(f["input_ids"]) / 2 for b in batches for f in b])
    return {"path": path, "tokens_per_s": tokens / (seconds * len(timed_batches)),
            "step_s": seconds, "warmup_s": warmup_s, "warmup_steps": warmup, "first_loss": first_loss,
            "peak_bytes": memory["peak_bytes"], "flops_per_token": train_flops_per_token(model, context)}

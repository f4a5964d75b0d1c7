"""The loss alone at a large vocabulary: full logits (plain) against harness.losses.chunked, same
hidden states and head weight; value, gradients, peak memory and time of forward + backward.

On CUDA (`probe`) the peak is the allocator's, measured in this process. On CPU there are no
allocator statistics, so `probe_rss` runs each path once in a fresh child process and reads the
peak resident set size above the RSS the inputs already take: an OS-level figure that includes
pages the allocator keeps cached, not a CUDA allocator peak. The children write their gradients
to .npy files so that this process can check that both paths computed the same thing.

`probe_validation` does the same for the validation CE pass (no gradients): what
harness.runner.evaluation computes after the model body, from the full logits or chunked.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from harness.losses.chunked import chunked_token_loss
from harness.perf.measure import peak_memory, rss_peak, synchronize, timed
from harness.perf.workloads import losses_for, xsum_like_examples
from harness.runner.evaluation import chunked_nll, full_logits_nll

KINDS = ("plain", "chunked")


def loss_functions(vocab: int) -> dict:
    """The ce and pdl losses the probe measures (frequencies of 64 XSum-like examples)."""
    return losses_for(xsum_like_examples(64, vocab, 64), vocab)


def loss_inputs(tokens: int, hidden_size: int, vocab: int, device: torch.device, seed: int = 0):
    """hidden [1, tokens, hidden_size], head weight [vocab, hidden_size], labels [1, tokens]; half
    the positions are prompt (-100), as in a finetuning batch. Built without a second copy of the
    weight, so the memory they leave behind is what they take."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(1, tokens, hidden_size, generator=gen).to(device)
    weight = torch.randn(vocab, hidden_size, generator=gen).mul_(hidden_size**-0.5).to(device)
    labels = torch.randint(3, vocab, (1, tokens), generator=gen).to(device)
    labels[:, : tokens // 2] = -100
    return hidden, weight, labels


def loss_and_grads(loss_fn, kind: str, hidden, weight, labels, chunk: int | None = None):
    """Forward + backward of one path from leaf tensors; (loss, grad of hidden, grad of weight)."""
    hidden, weight = hidden.requires_grad_(True), weight.requires_grad_(True)
    device = hidden.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    with autocast:
        if kind == "plain":
            loss = loss_fn({"logits": hidden @ weight.T}, labels)
        else:
            loss = chunked_token_loss(loss_fn, hidden, weight, labels, chunk=chunk)
    loss.backward()
    return loss.detach(), hidden.grad, weight.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / a.float().norm().clamp_min(1e-30))


def _summary(loss_name: str, tokens: int, vocab: int, plain: dict, chunked: dict) -> dict:
    (pv, ph, pw), (cv, ch, cw) = plain["result"], chunked["result"]
    return {
        "tokens": tokens, "vocab": vocab, "loss": loss_name,
        "plain_loss": float(pv), "chunked_loss": float(cv), "loss_abs_diff": float(abs(pv - cv)),
        "grad_hidden_rel_diff": _rel(ph, ch), "grad_weight_rel_diff": _rel(pw, cw),
        "plain_peak_bytes": plain["peak_bytes"], "chunked_peak_bytes": chunked["peak_bytes"],
        "plain_s": plain["seconds"], "chunked_s": chunked["seconds"],
    }


def probe(loss_fn, tokens: int, hidden_size: int, vocab: int, device: torch.device, seed: int = 0) -> dict:
    """Both paths in this process, peak from the CUDA allocator (None on CPU), seconds averaged
    over 3 warm runs."""
    hidden0, weight0, labels = loss_inputs(tokens, hidden_size, vocab, device, seed)

    def run(kind):
        return loss_and_grads(loss_fn, kind, hidden0.clone(), weight0.clone(), labels)

    out = {}
    for kind in KINDS:
        run(kind)  # warm-up
        with peak_memory(device) as memory:
            result = run(kind)
        seconds = timed(lambda: run(kind), device, 3)
        out[kind] = {"result": result, "peak_bytes": memory["peak_bytes"], "seconds": seconds}
    return {**_summary(loss_fn.name, tokens, vocab, out["plain"], out["chunked"]), "memory": "cuda-allocator"}


def _measure_in_child(kind: str, loss_name: str, tokens: int, hidden_size: int, vocab: int, seed: int,
                      chunk: int | None, folder: str) -> dict:
    """Runs in a fresh process: build the inputs, then one forward + backward of `kind` under
    rss_peak; the gradients go to `folder` only after the peak has been read."""
    loss_fn = loss_functions(vocab)[loss_name]
    hidden, weight, labels = loss_inputs(tokens, hidden_size, vocab, torch.device("cpu"), seed)
    started = time.perf_counter()
    with rss_peak() as memory:
        loss, grad_hidden, grad_weight = loss_and_grads(loss_fn, kind, hidden, weight, labels, chunk)
    seconds = time.perf_counter() - started
    np.save(Path(folder) / f"{kind}-hidden.npy", grad_hidden.numpy(), allow_pickle=False)
    np.save(Path(folder) / f"{kind}-weight.npy", grad_weight.numpy(), allow_pickle=False)
    return {"loss": float(loss), "peak_bytes": memory["peak_bytes"], "base_bytes": memory["base_bytes"],
            "seconds": seconds}


def probe_rss(loss_name: str, tokens: int, hidden_size: int, vocab: int, seed: int = 0,
              chunk: int | None = None) -> dict:
    """Both paths on CPU, each in its own fresh (spawned) process, one after the other; the peak
    is RSS above the inputs (see the module docstring), seconds are of that one cold run."""
    spawn = multiprocessing.get_context("spawn")
    out = {}
    with tempfile.TemporaryDirectory(prefix="pdl-loss-memory-") as folder:
        for kind in KINDS:
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
                row = child.submit(_measure_in_child, kind, loss_name, tokens, hidden_size, vocab, seed,
                                   chunk, folder).result()
            grads = [torch.from_numpy(np.load(Path(folder) / f"{kind}-{name}.npy", allow_pickle=False))
                     for name in ("hidden", "weight")]
            out[kind] = {**row, "result": (torch.tensor(row["loss"]), *grads)}
        summary = _summary(loss_name, tokens, vocab, out["plain"], out["chunked"])
    return {**summary, "memory": "cpu-rss", "inputs_rss_bytes": out["plain"]["base_bytes"]}


def validation_pass(kind: str, hidden, weight, labels) -> float:
    """The validation CE of one batch as validation_ce computes it after the model body: from the
    full logits (plain) or from the head input in chunks; nats per target token."""
    with torch.no_grad():
        if kind == "plain":
            total, count = full_logits_nll(hidden @ weight.T, labels, shift=True)
        else:
            total, count = chunked_nll(hidden, weight, labels)
    return total / count


def _validation_in_child(kind: str, tokens: int, hidden_size: int, vocab: int, seed: int) -> dict:
    """Runs in a fresh process: the inputs, then one validation pass of `kind` under rss_peak."""
    hidden, weight, labels = loss_inputs(tokens, hidden_size, vocab, torch.device("cpu"), seed)
    started = time.perf_counter()
    with rss_peak() as memory:
        ce = validation_pass(kind, hidden, weight, labels)
    return {"ce": ce, "peak_bytes": memory["peak_bytes"], "base_bytes": memory["base_bytes"],
            "seconds": time.perf_counter() - started}


def probe_validation(tokens: int, hidden_size: int, vocab: int, device: torch.device, seed: int = 0) -> dict:
    """The validation CE pass both ways, in float32 as the runner evaluates: on CUDA in this process
    (allocator peak, after a warm-up), on CPU each path in a fresh process (peak RSS, one cold run)."""
    out = {}
    if device.type == "cuda":
        inputs = loss_inputs(tokens, hidden_size, vocab, device, seed)
        for kind in KINDS:
            validation_pass(kind, *inputs)
            with peak_memory(device) as memory:
                started = time.perf_counter()
                ce = validation_pass(kind, *inputs)
                synchronize(device)
            out[kind] = {"ce": ce, "peak_bytes": memory["peak_bytes"], "seconds": time.perf_counter() - started}
    else:
        spawn = multiprocessing.get_context("spawn")
        for kind in KINDS:
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
                out[kind] = child.submit(_validation_in_child, kind, tokens, hidden_size, vocab, seed).result()
    plain, chunked = out["plain"], out["chunked"]
    row = {"tokens": tokens, "vocab": vocab, "loss": "validation ce", "plain_ce": plain["ce"],
           "chunked_ce": chunked["ce"], "ce_rel_diff": abs(plain["ce"] - chunked["ce"]) / abs(plain["ce"]),
           "plain_peak_bytes": plain["peak_bytes"], "chunked_peak_bytes": chunked["peak_bytes"],
           "plain_s": plain["seconds"], "chunked_s": chunked["seconds"],
           "memory": "cuda-allocator" if device.type == "cuda" else "cpu-rss"}
    if device.type != "cuda":
        row["inputs_rss_bytes"] = plain["base_bytes"]
    return {**row, "peak_ratio": peak_ratio(row)}


def peak_ratio(row: dict) -> float | None:
    """chunked peak / plain peak, None when either is unknown."""
    if row["plain_peak_bytes"] is None or row["chunked_peak_bytes"] is None:
        return None
    return row["chunked_peak_bytes"] / max(row["plain_peak_bytes"], 1)

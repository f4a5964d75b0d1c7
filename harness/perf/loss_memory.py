"""The loss alone at a large vocabulary: full logits (plain) against harness.losses.chunked, same
hidden states and head weight; value, gradients, peak memory and time of forward + backward."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from harness.losses.chunked import chunked_token_loss
from harness.perf.measure import peak_memory, timed


def probe(loss_fn, tokens: int, hidden_size: int, vocab: int, device: torch.device, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    hidden0 = torch.randn(1, tokens, hidden_size, generator=gen).to(device)
    weight0 = (torch.randn(vocab, hidden_size, generator=gen) * hidden_size**-0.5).to(device)
    labels = torch.randint(3, vocab, (1, tokens), generator=gen).to(device)
    labels[:, : tokens // 2] = -100  # half the positions are prompt, as in a finetuning batch
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    def run(kind):
        hidden = hidden0.clone().requires_grad_(True)
        weight = weight0.clone().requires_grad_(True)
        with autocast:
            if kind == "plain":
                loss = loss_fn({"logits": hidden @ weight.T}, labels)
            else:
                loss = chunked_token_loss(loss_fn, hidden, weight, labels)
        loss.backward()
        return loss.detach(), hidden.grad, weight.grad

    out = {}
    for kind in ("plain", "chunked"):
        run(kind)  # warm-up
        with peak_memory(device) as memory:
            result = run(kind)
        seconds = timed(lambda: run(kind), device, 3)
        out[kind] = {"result": result, "peak_bytes": memory["peak_bytes"], "seconds": seconds}
    (pv, ph, pw), (cv, ch, cw) = out["plain"]["result"], out["chunked"]["result"]

    def rel(a, b):
        return float((a.float() - b.float()).norm() / a.float().norm().clamp_min(1e-30))

    return {
        "tokens": tokens, "vocab": vocab, "loss": loss_fn.name,
        "plain_loss": float(pv), "chunked_loss": float(cv), "loss_abs_diff": float((pv - cv).abs()),
        "grad_hidden_rel_diff": rel(ph, ch), "grad_weight_rel_diff": rel(pw, cw),
        "plain_peak_bytes": out["plain"]["peak_bytes"], "chunked_peak_bytes": out["chunked"]["peak_bytes"],
        "plain_s": out["plain"]["seconds"], "chunked_s": out["chunked"]["seconds"],
    }

"""A weighted token cross-entropy computed from the final hidden states and the LM head weight in
chunks of tokens, so the [tokens, vocab] logits never exist at once (at vocabulary 150k they are
the largest tensor of a small model's training step).

Every loss of the form sum_t w(y_t) * nll_t / divisor (ce, pdl, pdl-official, face) exposes
`loss.target_weights(targets, num_items_in_batch)`; `chunked_token_loss` uses exactly those
weights and that divisor, and only the logsumexp is computed chunk by chunk. The backward pass
recomputes each chunk's logits instead of storing them, so peak memory is one chunk of logits.

`HeadInputCapture` and `ChunkedHeadLoss` plug this into a model's ordinary forward pass: a pre-hook
on the LM head keeps its input and hands the head an empty slice, and the loss is computed here.
"""

from __future__ import annotations

import contextlib

import torch

from harness.errors import HarnessError
from harness.losses.base import IGNORE_INDEX

LOGIT_BUDGET = 2**26  # float32 logits per chunk (256 MiB): chunk = LOGIT_BUDGET // vocab tokens


def chunk_tokens(vocab_size: int, budget: int = LOGIT_BUDGET) -> int:
    return max(1, budget // max(vocab_size, 1))


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype the LM head runs in on the plain path: the autocast dtype when autocast is on."""
    kind = hidden.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return hidden.dtype


class _ChunkedWeightedNLL(torch.autograd.Function):
    """sum_i w_i * (logsumexp(h_i W^T) - (h_i W^T)[y_i]) over rows i, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, weights, chunk: int, dtype: torch.dtype):
        head = weight.to(dtype)
        total = hidden.new_zeros((), dtype=torch.float32)
        lse = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            rows = slice(start, start + chunk)
            logits = (hidden[rows].to(dtype) @ head.T).float()
            picked = logits.gather(1, targets[rows, None]).squeeze(1)
            # logsumexp in place in the one chunk of float32 logits (torch.logsumexp would allocate
            # a second chunk: the forward's peak, and all of it for the no-grad validation CE)
            top = logits.amax(dim=-1, keepdim=True)
            top.masked_fill_(top.isinf(), 0)  # as torch.logsumexp: an infinite max stays infinite
            lse[rows] = logits.sub_(top).exp_().sum(dim=-1).log_().add_(top.squeeze(1))
            total += (weights[rows] * (lse[rows] - picked)).sum()
            del logits  # before the next chunk's matmul, so only one chunk is ever alive
        ctx.save_for_backward(hidden, weight, targets, weights, lse)
        ctx.chunk, ctx.dtype = chunk, dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        hidden, weight, targets, weights, lse = ctx.saved_tensors
        dtype, head = ctx.dtype, weight.to(ctx.dtype)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        scale = weights * grad_total
        for start in range(0, hidden.shape[0], ctx.chunk):
            rows = slice(start, start + ctx.chunk)
            h = hidden[rows].to(dtype)
            # d nll / d logits = softmax - onehot, built in place in the one chunk of float32 logits
            probs = (h @ head.T).float().sub_(lse[rows, None]).exp_()
            probs.scatter_add_(1, targets[rows, None], -torch.ones_like(lse[rows, None]))
            grad_logits = probs.mul_(scale[rows, None]).to(dtype)
            if grad_hidden is not None:
                grad_hidden[rows] = (grad_logits @ head).to(hidden.dtype)
            if grad_weight is not None:  # accumulated in place into the float32 gradient
                if grad_logits.dtype == grad_weight.dtype:
                    grad_weight.addmm_(grad_logits.T, h)  # no [vocab, hidden] temporary at all
                else:
                    # under autocast the product is a bf16 [vocab, hidden] temporary (half the size
                    # of a float32 one), promoted per element as it is added
                    grad_weight.add_(grad_logits.T @ h)
            del probs, grad_logits  # before the next chunk's matmul, so only one chunk is ever alive
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None, None


def weighted_nll_sum(hidden: torch.Tensor, head_weight: torch.Tensor, targets: torch.Tensor,
                     weights: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """sum_i weights_i * -log softmax(hidden_i @ head_weight^T)[targets_i] in float32, for hidden
    [N, H], head_weight [V, H], targets [N] (all valid ids), weights [N]."""
    chunk = chunk or chunk_tokens(head_weight.shape[0])
    dtype = _compute_dtype(hidden)
    return _ChunkedWeightedNLL.apply(hidden, head_weight, targets, weights.float(), chunk, dtype)


def supports_chunking(loss) -> bool:
    """True when `loss` is sum(w * nll) / divisor (its class overrides target_weights)."""
    from harness.losses.base import TokenLoss

    return type(loss).target_weights is not TokenLoss.target_weights


def chunked_token_loss(loss, hidden: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor,
                       num_items_in_batch=None, *, chunk: int | None = None) -> torch.Tensor:
    """`loss` evaluated from final hidden states [B, T, H] (not logits) and the LM head weight;
    equal to loss({"logits": hidden @ head_weight^T}, labels, num_items_in_batch). Only the
    positions with a target are sent through the head."""
    if not supports_chunking(loss):
        raise HarnessError(
            f"loss {loss.name!r} is not a per-token weighted cross-entropy, so it cannot be chunked",
            "use the plain path (--plain) for this loss",
        )
    if loss.shift:
        hidden, labels = hidden[:, :-1], labels[:, 1:]
    labels = labels.to(hidden.device)
    weights, divisor = loss.target_weights(labels, num_items_in_batch)
    keep = labels.ne(IGNORE_INDEX)
    total = weighted_nll_sum(hidden[keep], head_weight, labels[keep], weights[keep], chunk)
    return total / divisor


class HeadInputCapture:
    """While active, the LM head's forward keeps its input (the final hidden states) and returns
    logits for zero positions; `ChunkedHeadLoss` computes the loss from the kept input."""

    def __init__(self, head: torch.nn.Module):
        self.head = head
        self.hidden: torch.Tensor | None = None

    def _keep(self, module, args):
        self.hidden = args[0]
        return (args[0][..., :0, :],)

    @contextlib.contextmanager
    def active(self):
        handle = self.head.register_forward_pre_hook(self._keep)
        try:
            yield self
        finally:
            handle.remove()
            self.hidden = None


class ChunkedHeadLoss:
    """A token loss evaluated by `chunked_token_loss` from the captured head input."""

    def __init__(self, loss, capture: HeadInputCapture):
        self.loss, self.capture = loss, capture

    def __call__(self, outputs, labels, num_items_in_batch=None):
        hidden, self.capture.hidden = self.capture.hidden, None
        return chunked_token_loss(self.loss, hidden, self.capture.head.weight, labels, num_items_in_batch)

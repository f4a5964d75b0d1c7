"""HF Trainer, adapted for paired arms: the loss is the only thing that differs between CE and PDL.

Three changes to the stock Trainer, each for the comparison's sake:
- data order is fixed by us (the train set is shuffled once with the seed, then read sequentially),
  so both arms see the same batches and we can record a hash of that order;
- evaluation loss is plain token CE for every arm, so validation curves are comparable;
- a non-finite training loss stops the run with a clear error; the last saved checkpoint is kept.

On the fast path (`chunked_head=`), losses of the form sum(w * nll) / divisor are computed from the
LM head's input with harness.losses.chunked: the model runs as usual (through any DDP wrapper), a
pre-hook on the head keeps its input and hands the head an empty slice, so no logits are formed.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Callable

import torch
from transformers import Trainer

from harness.errors import HarnessError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class NonFiniteLoss(HarnessError):
    """Training produced NaN/inf."""


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
    """A token loss evaluated by harness.losses.chunked from the captured head input."""

    def __init__(self, loss, capture: HeadInputCapture):
        self.loss, self.capture = loss, capture

    def __call__(self, outputs, labels, num_items_in_batch=None):
        from harness.losses.chunked import chunked_token_loss

        hidden, self.capture.hidden = self.capture.hidden, None
        return chunked_token_loss(self.loss, hidden, self.capture.head.weight, labels, num_items_in_batch)


class PairedTrainer(Trainer):
    def __init__(self, *args, eval_loss_func: Callable, loss_scaled_for_accumulation: bool,
                 chunked_head: torch.nn.Module | None = None, **kwargs):
        self.capture = HeadInputCapture(chunked_head) if chunked_head is not None else None
        if self.capture is not None:
            kwargs["compute_loss_func"] = self._chunked(kwargs["compute_loss_func"])
            eval_loss_func = self._chunked(eval_loss_func)
        super().__init__(*args, **kwargs)
        self.eval_loss_func = eval_loss_func
        # A loss normalised by the Trainer's num_items_in_batch is already scaled for gradient
        # accumulation; a per-micro-batch mean (e.g. pdl-official) must be divided by the steps.
        self.loss_is_scaled_for_ga = loss_scaled_for_accumulation
        self._uses_num_items = loss_scaled_for_accumulation

    def _chunked(self, loss):
        from harness.losses.chunked import supports_chunking

        return ChunkedHeadLoss(loss, self.capture) if supports_chunking(loss) else loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "position_ids" in inputs:  # packed rows: with a KV cache HF would ignore the packing
            inputs = {**inputs, "use_cache": False}
        chunked = isinstance(self.eval_loss_func if not model.training else self.compute_loss_func, ChunkedHeadLoss)
        with self.capture.active() if chunked else contextlib.nullcontext():
            return self._compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            train_loss_func, self.compute_loss_func = self.compute_loss_func, self.eval_loss_func
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                self.compute_loss_func = train_loss_func
        if not self._uses_num_items:
            # Without num_items_in_batch the Trainer neither rescales for devices nor for accumulation
            # steps twice: the loss stays a per-micro-batch mean, as its definition says.
            num_items_in_batch = None
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = result[0] if return_outputs else result
        if not torch.isfinite(loss.detach()).all():
            step = self.state.global_step
            last = last_complete_checkpoint(Path(self.args.output_dir))
            raise NonFiniteLoss(
                f"training loss became {loss.item()} at step {step}; stopped. "
                f"Last good checkpoint: {last or 'none saved yet'}",
                "lower the learning rate or alpha, clip the PDL weights (max_weight), or use fp32; "
                "rerun with --force to restart the point",
            )
        return result


def last_complete_checkpoint(folder: Path, extra_files: tuple[str, ...] = ()) -> Path | None:
    """Newest checkpoint whose trainer_state.json (the Trainer writes it last) and `extra_files`
    (written after it, e.g. a stateful loss's state) exist, so a checkpoint cut short by a kill
    mid-save is never resumed from."""
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = CHECKPOINT_RE.match(child.name)
        needed = ("trainer_state.json", *extra_files)
        if match and child.is_dir() and all((child / name).is_file() for name in needed):
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None

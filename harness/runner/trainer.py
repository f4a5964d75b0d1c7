"""HF Trainer, adapted for paired arms: the loss is the only thing that differs between CE and PDL.

Three changes to the stock Trainer, each for the comparison's sake:
- data order is fixed by us (the train set is shuffled once with the seed, then read sequentially),
  so both arms see the same batches and we can record a hash of that order;
- evaluation loss is plain token CE for every arm, so validation curves are comparable;
- a non-finite training loss stops the run with a clear error; the last saved checkpoint is kept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch
from transformers import Trainer

from harness.errors import HarnessError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class NonFiniteLoss(HarnessError):
    """Training produced NaN/inf."""


class PairedTrainer(Trainer):
    def __init__(self, *args, eval_loss_func: Callable, loss_scaled_for_accumulation: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_loss_func = eval_loss_func
        # A loss normalised by the Trainer's num_items_in_batch is already scaled for gradient
        # accumulation; a per-micro-batch mean (e.g. pdl-official) must be divided by the steps.
        self.loss_is_scaled_for_ga = loss_scaled_for_accumulation
        self._uses_num_items = loss_scaled_for_accumulation

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
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


def last_complete_checkpoint(folder: Path) -> Path | None:
    """Newest checkpoint whose trainer_state.json exists: the Trainer writes that file last, so a
    checkpoint cut short by a kill mid-save is never resumed from."""
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = CHECKPOINT_RE.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None

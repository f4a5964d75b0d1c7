"""HF Trainer, adapted for paired arms: the loss is the only thing that differs between CE and PDL.

Three changes to the stock Trainer, each for the comparison's sake:
- data order is fixed by us (the train set is shuffled once with the seed, then read sequentially),
  so both arms see the same batches and we can record a hash of that order;
- evaluation loss is plain token CE for every arm, so validation curves are comparable;
- a non-finite training loss, or a non-finite gradient norm, stops the run with a clear error
  before the optimizer applies the step, so every saved checkpoint holds finite weights (under fp16
  an inf gradient norm is a loss-scale overflow: the scaler skips that step, as it should).

On the fast path (`chunked_head=`), losses of the form sum(w * nll) / divisor are computed from the
LM head's input with harness.losses.chunked: the model runs as usual (through any DDP wrapper), a
pre-hook on the head keeps its input and hands the head an empty slice, so no logits are formed.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import struct
from pathlib import Path
from typing import Callable

import torch
from transformers import Trainer

from harness.errors import HarnessError
from harness.losses.chunked import ChunkedHeadLoss, HeadInputCapture

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class NonFiniteLoss(HarnessError):
    """Training produced NaN/inf."""


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

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """A run resumed from the checkpoint of the last step trains nothing more (the Trainer's
        mid-epoch resume checks max_steps only after a step, so it would take one step too many)."""
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return [], None
        return super().get_batch_samples(epoch_iterator, num_batches, device)

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
        # One process: stop at once. Under DDP a rank's own loss may be the only NaN one; raising on
        # that rank alone would leave the others in the gradient all-reduce, so there the global
        # gradient-norm check below (NaN loss -> NaN gradients on every rank) stops every rank.
        if self.args.world_size == 1 and not torch.isfinite(loss.detach()).all():
            self._stop_non_finite(f"training loss became {loss.item()}")
        return result

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer asks for the (global, all-rank) gradient norm right before the optimizer
        step: a NaN/inf norm stops the run there, so the bad update is neither applied nor saved."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if getattr(self.accelerator, "scaler", None) is not None:
            return grad_norm  # fp16: an inf norm is an overflow the loss scaler skips and backs off from
        value = grad_norm.item() if hasattr(grad_norm, "item") else grad_norm
        if value is not None and not math.isfinite(value):
            self._stop_non_finite(f"gradient norm became {value}")
        return grad_norm

    def _stop_non_finite(self, what: str):
        last = last_complete_checkpoint(Path(self.args.output_dir))
        raise NonFiniteLoss(
            f"{what} at step {self.state.global_step + 1}; stopped before the update was applied. "
            f"Last good checkpoint: {last or 'none saved yet'}",
            "lower the learning rate (--set training.learning_rate=...) or alpha, clip the PDL weights "
            "(--loss-option max_weight=...), or use fp32: each makes a new point; the same command would "
            "resume from that checkpoint and most likely diverge again",
        )


WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _safetensors_complete(path: Path) -> bool:
    """A safetensors file is whole when its header parses and its data reaches the offsets it lists."""
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size >= 8 + size + end
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError):
        return False


def weights_complete(folder: Path) -> bool:
    """Model (or adapter) weights are present and whole; a sharded checkpoint has every shard its
    index lists. FSDP's sharded state (pytorch_model_fsdp_*/) is taken as it is."""
    for name in SHARD_INDEXES:
        if (folder / name).is_file():
            try:
                shards = set(json.loads((folder / name).read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return False
            return all(_safetensors_complete(folder / shard) if shard.endswith(".safetensors")
                       else (folder / shard).is_file() for shard in shards)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return _safetensors_complete(folder / name) if name.endswith(".safetensors") else True
    return any(child.name.startswith("pytorch_model_fsdp") for child in folder.iterdir())


def checkpoint_is_complete(folder: Path, step: int, extra_files: tuple[str, ...] = ()) -> bool:
    """Verified by content, not by a file's presence: transformers writes trainer_state.json in
    place (a kill leaves it truncated), so it must parse and name this step, the weights must be
    whole, and `extra_files` (written after it, e.g. a stateful loss's state) must exist."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(state, dict) and state.get("global_step") == step and weights_complete(folder)
            and all(_readable_npz(folder / name) if name.endswith(".npz") else (folder / name).is_file()
                    for name in extra_files))


def _readable_npz(path: Path) -> bool:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            data.files  # noqa: B018 - reads the archive's directory
        return True
    except (OSError, ValueError, EOFError):
        return False


def last_complete_checkpoint(folder: Path, extra_files: tuple[str, ...] = ()) -> Path | None:
    """Newest checkpoint that `checkpoint_is_complete`; a checkpoint cut short by a kill mid-save
    is skipped for the one before it (the Trainer rotates old checkpoints out only after writing
    trainer_state.json; a stateful loss keeps two checkpoints, as its state is written after that)."""
    if not folder.is_dir():
        return None
    found = []
    for child in folder.iterdir():
        match = CHECKPOINT_RE.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    for step, child in sorted(found, reverse=True):
        if checkpoint_is_complete(child, step, extra_files):
            return child
    return None

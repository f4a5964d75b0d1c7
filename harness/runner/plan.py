"""Which computational path a point takes, decided once.

`plan_run` turns (the user's auto/on/off requests, the device, the model, the loss) into a typed
`RunPlan`; the Trainer setup and generation follow it, and provenance records its fields. The
levers and why each is on where it is are in docs/perf.md.
"""

from __future__ import annotations

import math

from dataclasses import asdict, dataclass
from typing import Any, Literal

from harness.errors import HarnessError


@dataclass(frozen=True)
class RunPlan:
    packed_rows: bool  # examples packed into rows (position_ids restart), no padding
    chunked_loss: bool  # the training loss from the LM head's input in chunks, no [tokens, vocab] logits
    compile: bool  # torch.compile through the Trainer's `torch_compile`
    static_cache_generation: bool  # generate() with a static KV cache
    precision: Literal["bf16", "fp16", "fp32"]

    @property
    def training_path(self) -> str:
        """The path in words, as provenance and the pairing rule have always recorded it."""
        if not self.packed_rows:
            return "plain (padded batches, full logits)"
        return ("fast (packed rows, " + ("chunked loss" if self.chunked_loss else "full logits")
                + (", torch.compile)" if self.compile else ")"))

    @property
    def generation_path(self) -> str:
        return "fast (static KV cache)" if self.static_cache_generation else "plain (dynamic KV cache)"

    def record(self) -> dict[str, Any]:
        return asdict(self)


def check_requests(fast: str, compile: str) -> None:
    """Refuse a contradictory request before anything loads (the model-dependent refusal is in
    plan_run)."""
    if compile == "on" and fast == "off":
        raise HarnessError("compile is part of the fast training path, which --plain turns off",
                           "drop --compile on, or drop --plain")


def on_or_auto_on_gpu(requested: str, cuda: bool) -> bool:
    """An auto|on|off setting for a lever that pays off only where CUDA compiles it."""
    return requested == "on" or (requested == "auto" and cuda)


def chunkable_head(model, is_encoder_decoder: bool) -> bool:
    """True for a decoder-only model whose LM head is a bias-free linear layer: then the head is
    its weight alone, so packed rows, the chunked loss and the chunked validation CE can apply it
    to the final hidden states themselves."""
    import torch

    head = model.get_output_embeddings()
    return not is_encoder_decoder and isinstance(head, torch.nn.Linear) and head.bias is None


def requested_precision(trainer_options: dict[str, Any]) -> str | None:
    """The precision a task asks for with the TrainingArguments keys fp16/bf16 (None: auto)."""
    if trainer_options.get("fp16") and trainer_options.get("bf16"):
        raise HarnessError("training.fp16 and training.bf16 are both set", "set one of them")
    if trainer_options.get("fp16"):
        return "fp16"
    if "bf16" in trainer_options:
        return "bf16" if trainer_options["bf16"] else "fp32"
    return None


# torch.compile pays off only over a long run. On an H200 (docs/perf.md, 2026-12-04) the first
# compile of the SmolLM2-135M shape took 223 s in `perf` and ~340 s in a real point's first steps,
# and saved 0.07-0.11 s per 16x512 step: break-even at about 2,000-3,400 steps, so `auto` compiles
# from 2,000 planned optimizer steps.
COMPILE_MIN_STEPS = 2000


def planned_optimizer_steps(n_train: int, budget, world_size: int = 1) -> int:
    """The optimizer steps the Trainer will take (transformers 5's rule, tested against it):
    max_steps when set, else the epochs over each process's batches, a partial accumulation cycle
    counting as a step, a partial batch dropped when the task passes dataloader_drop_last."""
    if budget.max_steps and budget.max_steps > 0:
        return budget.max_steps
    per_batch = budget.per_device_train_batch_size * world_size
    drop_last = bool(budget.trainer_options.get("dataloader_drop_last"))
    batches = n_train // per_batch if drop_last else math.ceil(n_train / per_batch)
    per_epoch = max(math.ceil(batches / budget.gradient_accumulation_steps), 1)
    return math.ceil(budget.num_train_epochs * per_epoch)


def plan_run(*, fast: str, compile: str, model, is_encoder_decoder: bool, loss, cuda: bool | None = None,
             bf16_supported: bool | None = None, precision: str | None = None,
             steps: int | None = None) -> RunPlan:
    """The plan for this model on this device.

    - Packed rows + chunked loss: on unless fast='off' (1.59x on the default CPU point with
      identical generations), for decoder-only models whose LM head is a bias-free linear layer;
      the loss is chunked when it has the per-token form sum(w * nll) / divisor.
    - torch.compile: part of the fast path; auto = on CUDA, for a run of at least COMPILE_MIN_STEPS
      optimizer steps (`steps`, from planned_optimizer_steps; None: unknown, then auto compiles).
    - Static-cache generation: auto = on CUDA only (uncompiled on CPU it gains little); decoder-only.
    - Precision: the task's request (training.bf16 / training.fp16, see requested_precision), else
      bf16 where CUDA supports it, else fp32.
    """
    import torch

    from harness.losses.chunked import supports_chunking

    check_requests(fast, compile)
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if bf16_supported is None:
        bf16_supported = cuda and torch.cuda.is_bf16_supported()
    packed = fast != "off" and chunkable_head(model, is_encoder_decoder)
    if compile == "on" and not packed:
        raise HarnessError(
            "--compile on needs the fast training path, which this model cannot take "
            "(an encoder-decoder model, or an LM head that is not a bias-free linear layer)",
            "drop --compile on for this model")
    return RunPlan(
        packed_rows=packed,
        chunked_loss=packed and supports_chunking(loss),
        compile=packed and on_or_auto_on_gpu(compile, cuda) and (
            compile == "on" or steps is None or steps >= COMPILE_MIN_STEPS),
        static_cache_generation=not is_encoder_decoder and on_or_auto_on_gpu(fast, cuda),
        precision=precision or ("bf16" if bf16_supported else "fp32"),
    )

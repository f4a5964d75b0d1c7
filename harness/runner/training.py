"""Build the Trainer for one point: tokenized data in a seeded order, token frequencies, the loss,
and TrainingArguments from the task's training budget."""

from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import DataCollatorForSeq2Seq, TrainerCallback, TrainingArguments

from harness.io import write_npz_atomic
from harness.runner.packing import PackedCollator
from harness.runner.dist import use_cpu
from harness.runner.plan import RunPlan, plan_run
from harness.runner.trainer import PairedTrainer, last_complete_checkpoint


@dataclass
class TrainingSetup:
    trainer: PairedTrainer
    resume_from: str | None
    data_order_hash: str
    train_counts: np.ndarray
    frequency_summary: dict[str, Any]
    has_validation: bool
    plan: RunPlan  # which path this point takes (packing, chunked loss, compile, generation cache, precision)


# transformers >= 5.2x renamed gradient_checkpointing (the old name warns on every run); 5.17 has only it.
CHECKPOINTING_ARGUMENT = ("activation_checkpointing"
                          if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                          else "gradient_checkpointing")
DEFAULT_SAVE_STEPS = 50  # checkpoint cadence when the task sets none: bounds the work a crash loses
KILL_AFTER_SAVE_ENV = "PDL_BENCH_KILL_AFTER_SAVE"


class KillAfterSave(TrainerCallback):
    """Crash-safety drill: SIGKILL this process right after the checkpoint of step N is saved
    (env PDL_BENCH_KILL_AFTER_SAVE=N). A real, uncatchable kill; used by the resume tests."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


LOSS_STATE_FILE = "loss_state.npz"


class SaveLossState(TrainerCallback):
    """A loss with training state (face-online's running output counts) saves it into every
    checkpoint, so a resumed run continues exactly where the killed one stopped."""

    def __init__(self, loss):
        self.loss = loss

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            write_npz_atomic(folder / LOSS_STATE_FILE, self.loss.state_dict())


def cache_root() -> Path:
    from harness.models import model_cache_dir

    return model_cache_dir().parent


def order_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()[:16]


def training_arguments(task, output_dir: Path, seed: int, progress: bool, has_validation: bool,
                       plan: RunPlan | None = None, checkpoints_kept: int = 1) -> TrainingArguments:
    """The task's budget as TrainingArguments; `plan` (None: fp32, eager) sets precision and compile.
    A stateful loss keeps 2 checkpoints: the Trainer rotates the older one out before the loss's
    state is written into the newer, and a kill in between must leave one to resume from."""
    budget = task.training
    evaluate_during = has_validation and bool(budget.eval_steps)
    return TrainingArguments(
        output_dir=str(output_dir),
        seed=seed,
        data_seed=seed,
        per_device_train_batch_size=budget.per_device_train_batch_size,
        per_device_eval_batch_size=budget.per_device_eval_batch_size,
        gradient_accumulation_steps=budget.gradient_accumulation_steps,
        learning_rate=budget.learning_rate,
        num_train_epochs=budget.num_train_epochs,
        max_steps=budget.max_steps,
        warmup_steps=budget.warmup_ratio,  # transformers 5 reads a value below 1 as a ratio of the steps
        weight_decay=budget.weight_decay,
        max_grad_norm=budget.max_grad_norm,
        **{CHECKPOINTING_ARGUMENT: budget.gradient_checkpointing},
        fsdp=budget.fsdp,
        fsdp_config=budget.fsdp_config,
        lr_scheduler_type=budget.lr_scheduler_type,
        logging_steps=budget.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if evaluate_during else "no",
        eval_steps=budget.eval_steps if evaluate_during else None,
        save_strategy="steps",
        save_steps=budget.save_steps or DEFAULT_SAVE_STEPS,
        save_total_limit=checkpoints_kept,
        bf16=plan is not None and plan.precision == "bf16",
        torch_compile=plan is not None and plan.compile,  # once per point; packed rows vary in shape
        use_cpu=use_cpu(),  # lets torchrun form a gloo group on CPU-only machines
        report_to=[],
        # Data order is fixed by our seeded shuffle; both arms read it in the same sequence.
        train_sampling_strategy="sequential",
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        remove_unused_columns=True,
    )


def release_training_state(trainer) -> None:
    """Once training is over only the model is needed: drop the optimizer (AdamW keeps two fp32
    copies of every trained weight), the scheduler, the gradients and accelerate's references, and
    give the memory back before validation and generation."""
    from harness.runner.memory import give_back_memory

    trainer.accelerator.free_memory()
    trainer.optimizer = None
    trainer.lr_scheduler = None
    trainer.model.zero_grad(set_to_none=True)
    give_back_memory()


def freeze_embeddings(model) -> None:
    """Freeze the input embedding (and a tied LM head): a large share of a small LM's parameters,
    which makes CPU steps much cheaper; both arms freeze the same weights."""
    model.get_input_embeddings().weight.requires_grad_(False)
    head = model.get_output_embeddings()
    if head is not None:
        head.weight.requires_grad_(False)


def prepare_training(*, point, model, tokenizer, splits, is_encoder_decoder: bool, progress: bool) -> TrainingSetup:
    from harness.data import all_text_token_ids, target_token_ids, tokenize_for_training
    from harness.frequency import frequencies_from_token_ids
    from harness.losses import build_loss, frequency_source, loss_context

    run, task, store = point.run, point.task, point.store
    train = tokenize_for_training(task, splits["train"], tokenizer, is_encoder_decoder=is_encoder_decoder)
    train = train.shuffle(seed=run.seed).flatten_indices()
    has_validation = "validation" in splits and len(splits["validation"]) > 0
    validation = (
        tokenize_for_training(task, splits["validation"], tokenizer, is_encoder_decoder=is_encoder_decoder)
        if has_validation else None
    )

    freq_cache = cache_root() / "frequencies"
    targets = frequencies_from_token_ids(
        target_token_ids(train), tokenizer, source="targets",
        data_fingerprint=train._fingerprint, cache_dir=freq_cache,
    )
    loss_frequencies = targets
    if frequency_source(run.loss, point.loss_options) == "all_text":
        loss_frequencies = frequencies_from_token_ids(
            all_text_token_ids(splits["train"], tokenizer), tokenizer, source="all_text",
            data_fingerprint=splits["train"]._fingerprint, cache_dir=freq_cache,
        )
    vocab_out = model.get_output_embeddings().weight.shape[0]
    context = loss_context(tokenizer, is_encoder_decoder=is_encoder_decoder,
                           frequencies=loss_frequencies, model_vocab_size=vocab_out)
    loss_fn = build_loss(run.loss, point.loss_options, context)
    eval_fn = build_loss("ce", {}, context)

    if task.training.freeze_embeddings:
        freeze_embeddings(model)
    plan = plan_run(fast=run.fast, compile=run.compile, model=model, is_encoder_decoder=is_encoder_decoder,
                    loss=loss_fn)
    if plan.packed_rows:
        collator = PackedCollator(pad_token_id=tokenizer.pad_token_id)
    else:
        collator = DataCollatorForSeq2Seq(
            tokenizer, model=model if is_encoder_decoder else None, label_pad_token_id=-100, padding=True,
        )
    stateful = hasattr(loss_fn, "state_dict")
    args = training_arguments(task, store.checkpoints, run.seed, progress, has_validation, plan,
                              checkpoints_kept=2 if stateful else 1)
    trainer = PairedTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=collator,
        processing_class=tokenizer,
        compute_loss_func=loss_fn,
        eval_loss_func=eval_fn,
        loss_scaled_for_accumulation=loss_fn.scaled_for_grad_accumulation,
        chunked_head=model.get_output_embeddings() if plan.packed_rows else None,
    )
    if stateful:
        trainer.add_callback(SaveLossState(loss_fn))
    if os.environ.get(KILL_AFTER_SAVE_ENV):
        trainer.add_callback(KillAfterSave(int(os.environ[KILL_AFTER_SAVE_ENV])))
    resume = last_complete_checkpoint(store.checkpoints, (LOSS_STATE_FILE,) if stateful else ())
    if resume is not None and stateful:
        with np.load(resume / LOSS_STATE_FILE, allow_pickle=False) as saved:
            loss_fn.load_state_dict(dict(saved))
    summary = {
        "source": loss_frequencies.source,
        "total_tokens": int(loss_frequencies.total),
        "distinct_tokens": int((loss_frequencies.counts > 0).sum()),
        "target_tokens": int(targets.total),
    }
    return TrainingSetup(trainer, str(resume) if resume else None, order_hash(list(train["id"])),
                         targets.counts, summary, has_validation, plan)

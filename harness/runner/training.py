"""Build the Trainer for one point: tokenized data in a seeded order, token frequencies, the loss,
and TrainingArguments from the task's training budget."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import DataCollatorForSeq2Seq, TrainerCallback, TrainingArguments

from harness.io import append_jsonl, write_jsonl_atomic, write_npz_atomic
from harness.runner.packing import PackedCollator
from harness.runner.dist import process_state, use_cpu
from harness.results import TENSORBOARD_FOLDER, TRAIN_LOG_FILE
from harness.runner.plan import RunPlan, plan_run, planned_optimizer_steps, requested_precision
from harness.runner.trainer import CHECKPOINT_RE, PairedTrainer, last_complete_checkpoint
from harness.stopping import Terminated, raise_if_stopped, stop_requested


@dataclass
class TrainingSetup:
    trainer: PairedTrainer
    resume_from: str | None
    data_order_hash: str
    train_counts: np.ndarray
    frequency_summary: dict[str, Any]
    has_validation: bool
    plan: RunPlan  # which path this point takes (packing, chunked loss, compile, generation cache, precision)
    loss_weights: dict[str, Any] | None = None  # harness.losses.applied_weights, taken before training


# transformers >= 5.2x renamed gradient_checkpointing (the old name warns on every run); 5.17 has only it.
CHECKPOINTING_ARGUMENT = ("activation_checkpointing"
                          if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                          else "gradient_checkpointing")
DEFAULT_SAVE_STEPS = 50  # checkpoint cadence when the task sets none: bounds the work a crash loses
KILL_AFTER_SAVE_ENV = "PDL_BENCH_KILL_AFTER_SAVE"


class StopOnSignal(TrainerCallback):
    """Ends training at the next step once a stop signal came, also one whose exception Python
    swallowed (harness/stopping.py): a scheduler's SIGTERM must not wait for the whole point. With
    several processes every rank stops at the same step end, agreed through accelerate's trigger (a
    one-number all-reduce): a rank that stopped alone would leave the others waiting in a collective."""

    def __init__(self, accelerator):
        self.accelerator = accelerator

    def on_step_begin(self, args, state, control, **kwargs):
        if self.accelerator.num_processes == 1:
            raise_if_stopped()

    def on_step_end(self, args, state, control, **kwargs):
        if self.accelerator.num_processes == 1:
            raise_if_stopped()
            return
        if stop_requested():
            self.accelerator.set_trigger()
        if self.accelerator.check_trigger():
            raise_if_stopped()
            raise Terminated()  # another rank's signal


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


PHASES_FILE = "phases.json"  # in the checkpoints folder: what a resumed run keeps (harness.runner.memory.Phases)
TRAINING_NOTE = "training"  # the Phases note: the step training ended at and the Trainer's summary line


class TimeCheckpoints(TrainerCallback):
    """Each checkpoint notes the training seconds spent to reach it, over every run that trained
    toward it, in the point's phase record; a run resumed from that checkpoint continues the count,
    so its train_s holds the time of the runs before it too."""

    def __init__(self, phases):
        self.phases = phases

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step > 0:
            self.phases.resume("train", state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.phases.mark("train", state.global_step)


SCHEDULES_WITHOUT_WARMUP = ("constant", "reduce_lr_on_plateau")


class WarnAboutWarmup(TrainerCallback):
    """transformers rounds a warmup ratio up to whole steps, and the first warmup step trains at
    rate 0: when the warmup covers every step (e.g. --max-steps 1 with warmup_ratio 0.05) no step
    trains at the full rate, and a one-step run changes no weight. Say so when training starts (the
    schedule stays as transformers makes it, so no point's numbers change)."""

    def on_train_begin(self, args, state, control, **kwargs):
        steps, schedule = state.max_steps, getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
        warmup = args.get_warmup_steps(steps)
        if not state.is_world_process_zero or schedule in SCHEDULES_WITHOUT_WARMUP or not 0 < steps <= warmup:
            return
        plural = lambda n: f"{n} step" + ("s" if n != 1 else "")  # noqa: E731
        setting = (f"training.warmup_ratio {args.warmup_steps:g} of {plural(steps)} is {plural(warmup)} of warmup"
                   if args.warmup_steps < 1 else f"training.warmup_steps {int(args.warmup_steps)} of {plural(steps)}")
        print(f"pdl-bench: warning: {setting}: no step trains at the full learning rate, and the first"
              f"{' (here the only one)' if steps == 1 else ''} at rate 0; train more steps (--max-steps) "
              "or --set training.warmup_ratio=0", file=sys.stderr, flush=True)


def note_training(trainer, phases) -> None:
    """At the end of training, note the step it ended at and the Trainer's summary line (train
    loss and runtime), for a run that resumes the point after this one has trained it."""
    summary = next((row for row in reversed(trainer.state.log_history) if "train_runtime" in row), None)
    phases.note(TRAINING_NOTE, {"global_step": trainer.state.global_step, "summary": summary})


def keep_earlier_training(setup: TrainingSetup, phases, log_path: Path) -> int | None:
    """After the train phase of a resumed run: the step it resumed from (None: it trained from the
    start). A run resumed from the checkpoint of the last step trains nothing; the training record
    is then the one of the run that trained: its train phase's measurements and its summary line
    in train_log.jsonl (this run's would say 0 steps, a loss of 0 and a runtime of a second)."""
    if setup.resume_from is None:
        return None
    trainer = setup.trainer
    step = int(CHECKPOINT_RE.match(Path(setup.resume_from).name).group(1))
    earlier = phases.earlier.get("notes", {}).get(TRAINING_NOTE) or {}
    if (trainer.state.global_step == step == earlier.get("global_step") and earlier.get("summary")
            and "train" in phases.finished_earlier()):
        phases.keep("train")
        trainer.state.log_history = [row for row in trainer.state.log_history if "train_runtime" not in row]
        trainer.state.log_history.append(earlier["summary"])
        write_jsonl_atomic(log_path, trainer.state.log_history)  # the live log too, should this run stop
        phases.note(TRAINING_NOTE, earlier)
    return step


def cache_root() -> Path:
    from harness.models import model_cache_dir

    return model_cache_dir().parent


def order_hash(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()[:16]


def report_to_names(trainer_options: dict[str, Any]) -> list[str]:
    """The task's report_to as a list of names (TrainingArguments takes a name or a list)."""
    report_to = trainer_options.get("report_to", "none")
    return [report_to] if isinstance(report_to, str) else list(report_to or [])


def reporting(trainer_options: dict[str, Any]) -> tuple[list[str] | str, bool]:
    """(report_to for the Trainer, whether pdl-bench adds TensorBoard itself). TensorBoard is taken
    out of report_to and written by our own callback into <point>/tensorboard, so its event files
    stay with the point (the Trainer's default folder is inside the checkpoints, which are deleted)."""
    from transformers.integrations import get_available_reporting_integrations

    names = report_to_names(trainer_options)
    if "all" in names:  # every installed tracker, TensorBoard among them: written here as below
        names = get_available_reporting_integrations()
    if "tensorboard" not in names:
        return trainer_options.get("report_to", "none"), False
    rest = [name for name in names if name != "tensorboard"]
    return rest or "none", True


def training_arguments(task, output_dir: Path, seed: int, progress: bool, has_validation: bool,
                       plan: RunPlan | None = None, checkpoints_kept: int | None = 1,
                       probe: bool = False) -> TrainingArguments:
    """The task's budget as TrainingArguments; `plan` (None: fp32, eager) sets precision and compile.
    Any other TrainingArguments field the task sets (harness.trainer_options) passes through as is
    (over our defaults for logging_first_step and dataloader_num_workers). checkpoints_kept None
    keeps every checkpoint. probe: only check the values, touching no device (CPU, no tf32), so a
    login node without GPUs can plan a GPU sweep."""
    budget = task.training
    evaluate_during = has_validation and bool(budget.eval_steps)
    skipped = ("bf16", "fp16", "report_to") + (("tf32",) if probe else ())
    passthrough = {k: v for k, v in budget.trainer_options.items() if k not in skipped}
    precision = plan.precision if plan is not None else "fp32"
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
        eval_strategy="steps" if evaluate_during else "no",
        eval_steps=budget.eval_steps if evaluate_during else None,
        save_strategy="steps",
        save_steps=budget.save_steps or DEFAULT_SAVE_STEPS,
        save_total_limit=checkpoints_kept,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        torch_compile=plan is not None and plan.compile,  # once per point; packed rows vary in shape
        use_cpu=probe or use_cpu(),  # lets torchrun form a gloo group on CPU-only machines
        report_to=reporting(budget.trainer_options)[0],
        # Data order is fixed by our seeded shuffle; both arms read it in the same sequence.
        train_sampling_strategy="sequential",
        disable_tqdm=not progress,
        remove_unused_columns=True,
        **{"logging_first_step": True, "dataloader_num_workers": 0, **passthrough},
    )


def check_training_arguments(task) -> None:
    """Build the task's TrainingArguments once before anything loads, and check its trackers, so
    a value transformers rejects (an unknown optimizer, an uninstalled tracker) fails in seconds."""
    import tempfile

    from transformers.integrations import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    from harness.errors import HarnessError

    for name in report_to_names(task.training.trainer_options):
        if name in ("none", "all"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise HarnessError(f"training.report_to: unknown tracker {name!r}",
                               f"use one of: none, all, {', '.join(sorted(INTEGRATION_TO_CALLBACK))}")
        if name not in get_available_reporting_integrations():
            raise HarnessError(f"training.report_to: {name} is not installed in this environment",
                               f"pip install {name.replace('_', '-')}, or report to tensorboard (installed)")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            training_arguments(task, Path(scratch), seed=0, progress=False, has_validation=True,
                               plan=_precision_only_plan(task), probe=True)
        except (ValueError, TypeError, ImportError, RuntimeError) as err:
            raise HarnessError(f"transformers.TrainingArguments rejects the task's training keys: {err}",
                               "fix the training key it names (e.g. --set training.optim=adamw_torch)") from err


def _precision_only_plan(task) -> RunPlan:
    return RunPlan(packed_rows=False, chunked_loss=False, compile=False, static_cache_generation=False,
                   precision=requested_precision(task.training.trainer_options) or "fp32")


class LiveTrainLog(TrainerCallback):
    """train_log.jsonl grows as training goes (`tail -f` shows progress; a killed run keeps its
    curve). At the start it is rewritten from the Trainer's history, which on resume is the
    checkpoint's, so entries logged after that checkpoint by a killed run are not repeated."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_jsonl_atomic(self.path, state.log_history)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and state.log_history:
            append_jsonl(self.path, state.log_history[-1])


def tensorboard_callback(folder: Path):
    """The Trainer's own TensorBoard callback, writing into `folder` (<point>/tensorboard)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(folder)))


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


def prepare_training(*, point, model, tokenizer, splits, is_encoder_decoder: bool, progress: bool,
                     phases=None) -> TrainingSetup:
    from harness.data import all_text_token_ids, target_token_ids, tokenize_for_training
    from harness.frequency import frequencies_from_token_ids
    from harness.losses import applied_weights, build_loss, frequency_source, loss_context

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

    if task.training.freeze_embeddings and task.training.peft is None:  # peft has frozen the whole base
        freeze_embeddings(model)
    steps = planned_optimizer_steps(len(train), task.training, process_state().num_processes)
    plan = plan_run(fast=run.fast, compile=run.compile, model=model, is_encoder_decoder=is_encoder_decoder,
                    loss=loss_fn, precision=requested_precision(task.training.trainer_options), steps=steps)
    if plan.packed_rows:
        collator = PackedCollator(pad_token_id=tokenizer.pad_token_id)
    else:
        collator = DataCollatorForSeq2Seq(
            tokenizer, model=model if is_encoder_decoder else None, label_pad_token_id=-100, padding=True,
        )
    stateful = hasattr(loss_fn, "state_dict")
    # keep=checkpoints: all of them. Else the last one, or two for a stateful loss: the Trainer
    # rotates the older one out before the loss's state is written into the newer, and a kill in
    # between must leave one to resume from.
    kept = None if task.training.keep == "checkpoints" else (2 if stateful else 1)
    args = training_arguments(task, store.checkpoints, run.seed, progress, has_validation, plan,
                              checkpoints_kept=kept)
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
    if trainer.is_world_process_zero():
        trainer.add_callback(LiveTrainLog(store.file(TRAIN_LOG_FILE)))
        if reporting(task.training.trainer_options)[1]:
            trainer.add_callback(tensorboard_callback(store.file(TENSORBOARD_FOLDER)))
    trainer.add_callback(WarnAboutWarmup())
    trainer.add_callback(StopOnSignal(trainer.accelerator))
    if phases is not None:  # before the drill below, so a checkpoint's time is noted before any kill
        trainer.add_callback(TimeCheckpoints(phases))
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
    weights = applied_weights(loss_fn, np.flatnonzero(targets.counts), tokenizer.eos_token_id,
                              decode=lambda i: tokenizer.convert_ids_to_tokens(i))
    return TrainingSetup(trainer, str(resume) if resume else None, order_hash(list(train["id"])),
                         targets.counts, summary, has_validation, plan, weights)

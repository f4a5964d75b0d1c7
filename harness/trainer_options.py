"""Which `transformers.TrainingArguments` fields a task may set under `training:` (or `--set
training.KEY=...`), checked against the installed TrainingArguments so a typo fails at load time.

Any field passes through to the Trainer as it is (optimizer, schedules, precision, trackers, ...),
except the ones below: each would break the pairing of arms (same seed, same data in the same
order, the same loss) or is decided by pdl-bench itself, and the refusal says what to use instead.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any


# key -> why it cannot be set, and what to do instead.
REFUSED = {
    "seed": "the seed is the point's (--seed / --seeds), recorded and shared by paired arms",
    "data_seed": "data order is the point's seeded shuffle (--seed), identical in every arm",
    "train_sampling_strategy": "data is read in the seeded order pdl-bench records (data_order_hash)",
    "group_by_length": "data is read in the seeded order pdl-bench records (data_order_hash)",
    "dataloader_in_order": "data is read in the seeded order pdl-bench records (data_order_hash)",
    "auto_find_batch_size": "it may shrink one arm's batch and not the other's, so the arms stop being paired",
    "ignore_data_skip": "a resumed run must continue the same data order to match an uninterrupted one",
    "label_smoothing_factor": "the loss is the point's `--loss` (label smoothing would change CE and PDL alike "
                              "yet is ignored by a custom loss)",
    "use_liger_kernel": "it replaces the model's loss; pdl-bench's chunked loss already avoids full logits",
    "liger_kernel_config": "it replaces the model's loss; pdl-bench's chunked loss already avoids full logits",
    "load_best_model_at_end": "a point's model is its last step's, the same number of steps in every arm",
    "output_dir": "checkpoints go into the point's folder (--results-dir)",
    "save_strategy": "set training.save_steps; checkpoints are saved every save_steps",
    "save_total_limit": "set training.keep (none | final | checkpoints)",
    "eval_strategy": "set training.eval_steps to evaluate during training",
    "resume_from_checkpoint": "a rerun of the same command resumes from the last complete checkpoint",
    "overwrite_output_dir": "finished points are kept; --force reruns one without deleting it",
    "torch_compile": "use --compile auto|on|off",
    "disable_tqdm": "use --no-progress",
    "use_cpu": "pdl-bench uses the GPU when there is one (hide it with CUDA_VISIBLE_DEVICES=)",
    "remove_unused_columns": "pdl-bench passes the model only the columns it needs",
    "push_to_hub": "use --push-to-hub REPO_ID (the trained model is pushed once, after scoring)",
    "hub_model_id": "use --push-to-hub REPO_ID",
    "hub_strategy": "use --push-to-hub REPO_ID",
    "activation_checkpointing": "set training.gradient_checkpointing",
    "warmup_steps": "set training.warmup_ratio (a fraction of the steps)",
    "do_train": "pdl-bench always trains, then generates and scores",
    "do_eval": "set training.eval_steps to evaluate during training",
    "do_predict": "pdl-bench generates on the test split itself",
}


@functools.lru_cache(maxsize=1)
def trainer_field_types() -> dict[str, Any]:
    """The installed TrainingArguments' settable fields and their annotated types (imported only
    when a task sets one)."""
    import typing

    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    return {name: hints[name] for name, field in TrainingArguments.__dataclass_fields__.items() if field.init}


def checked_trainer_options(options: dict[str, Any], own_keys: list[str]) -> tuple[dict[str, Any], list[str]]:
    """`options` (a task's `training:` keys that are not pdl-bench's own, `own_keys`) converted to
    their TrainingArguments types (YAML reads `1e-8` as text; the Trainer needs a float, and one
    value must hash the same however it was written), and the problems, one "key: problem" each:
    every key must be a TrainingArguments field that is not refused, holding a value of its type."""
    if not options:
        return {}, []
    from pydantic import TypeAdapter, ValidationError

    types = trainer_field_types()
    checked, problems = {}, []
    for key, value in options.items():
        if key in REFUSED and key in types:
            problems.append(f"{key}: cannot be set: {REFUSED[key]}")
        elif key not in types:
            problems.append(f"{key}: unknown key{_hint(key, set(types) | set(own_keys))}")
        else:
            try:
                checked[key] = TypeAdapter(types[key]).validate_python(value)
            except ValidationError as err:
                problems.append(f"{key}: {err.errors()[0]['msg']} (TrainingArguments.{key} is {getattr(types[key], '__name__', types[key])}), "
                                f"got {value!r}")
    return checked, problems


def _hint(key: str, known: set[str]) -> str:
    if key.startswith(("lora", "peft", "qlora")):
        return " (LoRA is set in training.peft: --lora, or e.g. --set training.peft.r=16)"
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    if close:
        return f" (did you mean {' or '.join(close)}?)"
    return " (not a pdl-bench training key nor a field of the installed transformers.TrainingArguments)"

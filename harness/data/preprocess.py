"""From raw splits to model inputs: normalise to id/source/target, cap sizes, build prompts and
tokenize so that only target tokens carry labels.

The training sequence of a decoder-only model is `prompt_ids + target_ids + [eos]`, where
`prompt_ids` are exactly the ids `tokenize_for_generation` feeds to `generate`: the generation
prompt is always a strict prefix of the training sequence.
"""

from __future__ import annotations

import os
from typing import Sequence

from harness.data.dialogue import dialogue_pairs
from harness.data.sources import load_raw, split_origin
from harness.errors import HarnessError
from harness.labels import IGNORE_INDEX
from harness.task import SPLITS, TaskConfig

_NORMALISED = ("id", "source", "target")


def load_splits(task: TaskConfig, *, data_dir: str | os.PathLike | None = None, limit: int | None = None,
                splits: Sequence[str] = SPLITS):
    """A DatasetDict of the requested splits with string columns id, source, target.

    Rows with an empty source or target are dropped (`drop_empty`). Each split is then capped at
    `limit` (or, when `limit` is None, at the task's `limits.<split>`): the kept rows are the first N
    of a permutation seeded with `limits.seed`, in their original order. A smaller cap therefore
    selects a subset of a larger one, and every run with the same task sees the same examples.
    """
    from datasets import DatasetDict

    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise HarnessError(f"unknown split(s) {unknown}", f"choose from {', '.join(SPLITS)}")
    raw = load_raw(task, data_dir, tuple(splits))
    out = {}
    for split in splits:
        ds = _normalise(task, raw[split], split)
        _refuse_duplicate_ids(ds, task, data_dir, split)
        if task.drop_empty:
            ds = ds.filter(lambda b: [bool(s.strip()) and bool(t.strip()) for s, t in zip(b["source"], b["target"])],
                           batched=True)
        if len(ds) == 0:
            raise HarnessError(f"split {split!r} of task {task.name!r} is empty after filtering",
                               "check the data files and the task's fields (empty sources/targets are dropped)")
        cap = limit if limit is not None else getattr(task.limits, split)
        out[split] = _take(ds, cap, task.limits.seed)
    return DatasetDict(out)


def _refuse_duplicate_ids(ds, task: TaskConfig, data_dir, split: str) -> None:
    """Ids name an example in generations, scores and paired comparisons, so they must be unique."""
    seen: set[str] = set()
    for example_id in ds["id"]:
        if example_id in seen:
            raise HarnessError(f"duplicate example id {example_id!r} in split {split!r} of task {task.name!r} "
                               f"({split_origin(task, data_dir, split)})",
                               "give every row a unique id, or set fields.id: null to number the rows")
        seen.add(example_id)


def _take(ds, cap: int | None, seed: int):
    import numpy as np

    if cap is None or cap >= len(ds):
        return ds
    if cap < 1:
        raise HarnessError(f"limit must be at least 1, got {cap}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:cap])
    return ds.select(keep.tolist()).flatten_indices()


def _normalise(task: TaskConfig, ds, split: str):
    fields = task.fields
    missing = [c for c in (fields.input, fields.target, fields.id) if c and c not in ds.column_names]
    if missing:
        raise HarnessError(
            f"task {task.name!r}: split {split!r} has no column {missing[0]!r} (columns: {', '.join(ds.column_names)})",
            "set `fields` in the task YAML to the data's column names, or rename the columns",
        )
    from datasets import Features, Value

    # Explicit features: datasets would otherwise cast a rewritten `id` back to the raw column's type.
    strings = Features({name: Value("string") for name in _NORMALISED})
    if task.dialogue is not None:
        return ds.map(_dialogue_rows(task, split), batched=True, with_indices=True,
                      remove_columns=ds.column_names, features=strings)
    if fields.input == "source" and fields.target == "target" and fields.id == "id" and ds.column_names == list(_NORMALISED):
        return ds  # embedded corpora are already normalised

    def rename(batch, indices):
        ids = batch[fields.id] if fields.id else [f"{split}-{i}" for i in indices]
        return {
            "id": [str(i) for i in ids],
            "source": ["" if s is None else str(s) for s in batch[fields.input]],
            "target": ["" if t is None else str(t) for t in batch[fields.target]],
        }

    return ds.map(rename, batched=True, with_indices=True, remove_columns=ds.column_names, features=strings)


def _dialogue_rows(task: TaskConfig, split: str):
    fields, k = task.fields, task.dialogue.context_turns

    def expand(batch, indices):
        rows = {"id": [], "source": [], "target": []}
        for row, (turns, index) in enumerate(zip(batch[fields.input], indices)):
            if isinstance(turns, str) or not isinstance(turns, Sequence):
                raise HarnessError(f"task {task.name!r}: column {fields.input!r} must hold a list of turns, "
                                   f"got {type(turns).__name__}", "point fields.input at the dialogue's list of turns")
            dialogue_id = str(batch[fields.id][row]) if fields.id else f"{split}-{index}"
            for turn, context, response in dialogue_pairs([str(t or "") for t in turns], k):
                rows["id"].append(f"{dialogue_id}/{turn}")
                rows["source"].append(context)
                rows["target"].append(response)
        return rows

    return expand


# ---------------------------------------------------------------- prompts and tokenization


def uses_chat_template(task: TaskConfig, tokenizer, is_encoder_decoder: bool) -> bool:
    return not is_encoder_decoder and task.prompt.chat_template and bool(getattr(tokenizer, "chat_template", None))


def build_prompt(task: TaskConfig, source: str, tokenizer, *, is_encoder_decoder: bool) -> str:
    """Encoder-decoder: prefix + source. Decoder-only: the filled template as a user turn of the
    tokenizer's chat template (with the system message), ready for the assistant's reply; without a
    chat template: system message, filled template and a newline, after which the target follows."""
    if is_encoder_decoder:
        return task.prompt.prefix + source
    text = task.prompt.template.format(source=source)
    system = task.prompt.system
    if uses_chat_template(task, tokenizer, is_encoder_decoder):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return (f"{system}\n\n" if system else "") + text + "\n"


def truncate_sources(task: TaskConfig, sources: list[str], tokenizer) -> list[str]:
    """Each source cut to at most `max_source_tokens` tokens, on the side `source_truncation` names
    (left keeps the latest dialogue turns). Cuts at token boundaries of the original text."""
    limit = task.max_source_tokens
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(sources, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for text, offsets in zip(sources, enc["offset_mapping"]):
            if len(offsets) <= limit:
                out.append(text)
            elif task.source_truncation == "right":
                out.append(text[: offsets[limit - 1][1]])
            else:
                out.append(text[offsets[len(offsets) - limit][0]:])
        return out
    ids = tokenizer(sources, add_special_tokens=False)["input_ids"]
    keep = [i[:limit] if task.source_truncation == "right" else i[-limit:] for i in ids]
    return [s if len(i) <= limit else tokenizer.decode(k) for s, i, k in zip(sources, ids, keep)]


def _prompt_ids(task: TaskConfig, sources: list[str], tokenizer, is_encoder_decoder: bool) -> list[list[int]]:
    prompts = [build_prompt(task, s, tokenizer, is_encoder_decoder=is_encoder_decoder)
               for s in truncate_sources(task, sources, tokenizer)]
    # A rendered chat template already holds its special tokens; plain prompts get the tokenizer's own.
    add_special = not uses_chat_template(task, tokenizer, is_encoder_decoder)
    return tokenizer(prompts, add_special_tokens=add_special)["input_ids"]


def _target_ids(task: TaskConfig, targets: list[str], tokenizer) -> list[list[int]]:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise HarnessError("the tokenizer has no eos token, so targets cannot be terminated",
                           "use a tokenizer with an eos_token (or set one before training)")
    ids = tokenizer(targets, add_special_tokens=False)["input_ids"]
    return [t[: task.max_target_tokens] + [eos] for t in ids]


def tokenize_for_training(task: TaskConfig, split_ds, tokenizer, *, is_encoder_decoder: bool):
    """Columns id, input_ids, attention_mask, labels (unpadded; pad labels with -100 when batching).

    Decoder-only: input_ids = prompt + target + eos, labels -100 on the prompt. Encoder-decoder:
    input_ids = prefix + source, labels = target + eos. Targets are cut to `max_target_tokens`.
    """

    def encode(batch):
        prompts = _prompt_ids(task, batch["source"], tokenizer, is_encoder_decoder)
        targets = _target_ids(task, batch["target"], tokenizer)
        if is_encoder_decoder:
            return {"input_ids": prompts, "attention_mask": [[1] * len(p) for p in prompts], "labels": targets}
        input_ids = [p + t for p, t in zip(prompts, targets)]
        return {
            "input_ids": input_ids,
            "attention_mask": [[1] * len(i) for i in input_ids],
            "labels": [[IGNORE_INDEX] * len(p) + t for p, t in zip(prompts, targets)],
        }

    return split_ds.map(encode, batched=True, remove_columns=["source", "target"], desc="tokenize (train)")


def tokenize_for_generation(task: TaskConfig, split_ds, tokenizer, *, is_encoder_decoder: bool):
    """Columns id, input_ids, attention_mask (the prompt only) and reference (the target text)."""

    def encode(batch):
        prompts = _prompt_ids(task, batch["source"], tokenizer, is_encoder_decoder)
        return {"input_ids": prompts, "attention_mask": [[1] * len(p) for p in prompts], "reference": batch["target"]}

    return split_ds.map(encode, batched=True, remove_columns=["source", "target"], desc="tokenize (generate)")


def target_token_ids(tokenized_train) -> list[list[int]]:
    """Exactly the labelled ids of each example (target + eos): what PDL's frequencies count by default."""
    return [[t for t in labels if t != IGNORE_INDEX] for labels in tokenized_train["labels"][:]]


def all_text_token_ids(split_ds, tokenizer) -> list[list[int]]:
    """Source ids followed by target ids per example, without special tokens: the official PDL
    code's count over the whole text (prompt and response), offered as an option."""
    sources = tokenizer(split_ds["source"][:], add_special_tokens=False)["input_ids"]
    targets = tokenizer(split_ds["target"][:], add_special_tokens=False)["input_ids"]
    return [s + t for s, t in zip(sources, targets)]

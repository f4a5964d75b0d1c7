"""Batched generation for the test split: length-sorted batches, left padding for decoder-only
models, greedy by default, stopping at EOS. Returns rows in the input order.

Under torchrun/accelerate every process generates: the batches (the same ones a single process
makes) are dealt round-robin to the ranks and the outputs gathered back into the input order, and
sampling is seeded per batch, so any number of processes writes the same generations.

Fast path (`fast=True`, used on GPU): a static KV cache (HF `cache_implementation="static"`, which
transformers compiles with torch.compile on CUDA), prompts left-padded to a multiple of
PROMPT_BUCKET so the cache and the compiled graphs take few shapes, and batches of at least
FAST_BATCH prompts. Greedy outputs equal the plain path's in fp32 (tests/test_perf.py)."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

PROMPT_BUCKET = 64  # fast path: prompt lengths rounded up to this, so few static-cache shapes
FAST_BATCH = 64


def generation_kwargs(gen_config: Any, tokenizer, model_eos: int | list[int] | None = None) -> dict[str, Any]:
    """Translate the task's generation settings into `model.generate` arguments."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": gen_config.max_new_tokens,
        "num_beams": gen_config.num_beams,
        "do_sample": gen_config.do_sample,
        "pad_token_id": tokenizer.pad_token_id,
        # The model's generation_config may list extra stop ids (e.g. <|eot_id|>); keep them all.
        "eos_token_id": model_eos if model_eos is not None else tokenizer.eos_token_id,
    }
    if gen_config.do_sample:
        kwargs["temperature"] = gen_config.temperature
        kwargs["top_p"] = gen_config.top_p
    else:
        # Explicit greedy: never inherit sampling settings from a checkpoint's generation_config.
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    gen_config: Any,
    *,
    is_encoder_decoder: bool,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    fast: bool = False,
    process_index: int = 0,
    num_processes: int = 1,
) -> list[str]:
    """Decode continuations of `prompts` (token id lists); one string per prompt, in input order.
    With num_processes > 1 every rank must call this (the outputs are gathered to all ranks)."""
    model.eval()
    device = next(model.parameters()).device
    kwargs = generation_kwargs(gen_config, tokenizer, getattr(model.generation_config, "eos_token_id", None))
    fast = fast and not is_encoder_decoder
    if fast:
        kwargs["cache_implementation"] = "static"
        batch_size = max(batch_size, FAST_BATCH)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[str | None] = [None] * len(prompts)
    side = "right" if is_encoder_decoder else "left"
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mine = list(enumerate(batches))[process_index::num_processes]
    for number, batch in tqdm(mine, desc="generate", unit="batch", disable=not progress or process_index != 0):
        torch.manual_seed(seed + number)  # sampling depends on the batch, not on which rank runs it
        features = [{"input_ids": prompts[i]} for i in batch]
        enc = tokenizer.pad(features, padding=True, padding_side=side, return_tensors="pt",
                            pad_to_multiple_of=PROMPT_BUCKET if fast else None).to(device)
        out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
        new_tokens = out if is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for index, text in zip(batch, texts):
            outputs[index] = text.strip()
    if num_processes > 1:
        outputs = gather_outputs(outputs)
    return outputs  # type: ignore[return-value]


def gather_outputs(outputs: list[str | None]) -> list[str | None]:
    """Every rank's outputs merged by position (each position was filled by exactly one rank)."""
    from accelerate.utils import gather_object

    merged = list(outputs)
    for index, text in gather_object([(i, t) for i, t in enumerate(outputs) if t is not None]):
        merged[index] = text
    return merged

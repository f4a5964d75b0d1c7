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

from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from harness.stopping import raise_if_stopped

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


class Generated(NamedTuple):
    """One decoded output and how it ended: `new_tokens` generated (the end token included), and
    whether it stopped at an end token or ran into max_new_tokens (an unterminated output)."""

    text: str
    new_tokens: int
    stopped: str  # "eos" | "max_new_tokens"


def generate(model, tokenizer, prompts: list[list[int]], gen_config: Any, **options) -> list[str]:
    """The decoded texts only (see generate_outputs for the arguments)."""
    return [output.text for output in generate_outputs(model, tokenizer, prompts, gen_config, **options)]


def _endings(new_tokens: torch.Tensor, eos, max_new_tokens: int) -> list[tuple[int, str]]:
    """(tokens generated, how it stopped) per row of the new tokens [B, T]: up to and including the
    first end token, else the whole row, which generate only leaves unended at max_new_tokens."""
    eos_ids = torch.as_tensor([eos] if isinstance(eos, int) else list(eos or []), device=new_tokens.device)
    is_end = torch.isin(new_tokens, eos_ids)
    ended = is_end.any(dim=1)
    first = is_end.int().argmax(dim=1)
    return [(int(f) + 1, "eos") if e else (max_new_tokens, "max_new_tokens") for e, f in zip(ended, first)]


@torch.no_grad()
def generate_outputs(
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
) -> list[Generated]:
    """Decode continuations of `prompts` (token id lists); one output per prompt, in input order.
    With num_processes > 1 every rank must call this (the outputs are gathered to all ranks)."""
    model.eval()
    device = next(model.parameters()).device
    kwargs = generation_kwargs(gen_config, tokenizer, getattr(model.generation_config, "eos_token_id", None))
    fast = fast and not is_encoder_decoder
    if fast:
        kwargs["cache_implementation"] = "static"
        batch_size = max(batch_size, FAST_BATCH)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[Generated | None] = [None] * len(prompts)
    side = "right" if is_encoder_decoder else "left"
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    mine = list(enumerate(batches))[process_index::num_processes]
    for number, batch in tqdm(mine, desc="generate", unit="batch", disable=not progress or process_index != 0):
        raise_if_stopped()
        torch.manual_seed(seed + number)  # sampling depends on the batch, not on which rank runs it
        features = [{"input_ids": prompts[i]} for i in batch]
        enc = tokenizer.pad(features, padding=True, padding_side=side, return_tensors="pt",
                            pad_to_multiple_of=PROMPT_BUCKET if fast else None).to(device)
        out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
        new_tokens = out if is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        if is_encoder_decoder:
            new_tokens = new_tokens[:, 1:]  # the decoder start token is not generated
        endings = _endings(new_tokens, kwargs["eos_token_id"], gen_config.max_new_tokens)
        for index, text, (count, stopped) in zip(batch, texts, endings):
            outputs[index] = Generated(text.strip(), count, stopped)
    if num_processes > 1:
        outputs = gather_outputs(outputs)
    return outputs  # type: ignore[return-value]


def gather_outputs(outputs: list[Generated | None]) -> list[Generated | None]:
    """Every rank's outputs merged by position (each position was filled by exactly one rank)."""
    from accelerate.utils import gather_object

    merged = list(outputs)
    for index, text in gather_object([(i, t) for i, t in enumerate(outputs) if t is not None]):
        merged[index] = text
    return merged

"""Validation cross-entropy at token level, the same yardstick for every arm.

The Trainer's `eval_loss` averages per-batch token means weighted by examples, which is not the
token-level CE when batches differ in size or length. This loop sums -log p over every validation
target token and divides by their number, on the main process, with the plain padded collator.

Where the run plan allows it (`chunked=True`: a decoder-only model with a bias-free linear LM head,
not --plain), the sum comes from the final hidden states through harness.losses.chunked, so the
[tokens, vocab] logits never exist: at vocabulary 152k one eval batch of 64 x 580 tokens would be
~22 GB of float32 logits. Both paths compute the same sum (tests/test_evaluation.py).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq

from harness.labels import IGNORE_INDEX
from harness.losses import LossContext, build_loss
from harness.losses.base import align, token_nll
from harness.losses.chunked import HeadInputCapture, chunked_token_loss
from harness.runner.plan import chunkable_head

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")
SCORED_ROWS = 512  # target tokens sent through the LM head at once by token_scores
FULL_LOGITS_PATH = "plain (full logits)"
CHUNKED_PATH = "chunked (LM head at target positions only)"


class ValidationCE(NamedTuple):
    ce: float  # nats per validation target token
    path: str  # which computation ran (FULL_LOGITS_PATH or CHUNKED_PATH), for provenance


def full_logits_nll(logits: torch.Tensor, labels: torch.Tensor, *, shift: bool) -> tuple[float, int]:
    """(sum of -log p over the target tokens, their number) from logits [B, T, V]."""
    logits, targets = align(logits, labels, shift=shift, vocab_size=logits.shape[-1])
    return float(token_nll(logits, targets).sum()), int((targets != IGNORE_INDEX).sum())


@functools.lru_cache(maxsize=4)
def _plain_ce(vocab: int):
    """The registered `ce` loss for a vocabulary, built once (not once per validation batch)."""
    return build_loss("ce", {}, LossContext(vocab_size=vocab, base_vocab_size=vocab, special_ids=frozenset(),
                                            is_encoder_decoder=False))


def chunked_nll(hidden: torch.Tensor, head_weight: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """The same sum for a causal LM from its final hidden states [B, T, H] and head weight [V, H]:
    plain CE through `chunked_token_loss` with divisor 1 (num_items_in_batch=1), i.e. the sum."""
    total = chunked_token_loss(_plain_ce(head_weight.shape[0]), hidden, head_weight, labels, num_items_in_batch=1)
    return float(total), int((labels[:, 1:] != IGNORE_INDEX).sum())


def _teacher_forced_batches(model, tokenizer, dataset, *, is_encoder_decoder: bool, batch_size: int, chunked: bool):
    """(device, head-input capture or None, padded batches in dataset order): what validation_ce and
    token_scores share. The capture is there when chunking was asked for and the model allows it
    (`chunkable_head`, the rule the run plan uses)."""
    model.eval()
    chunked = chunked and chunkable_head(model, is_encoder_decoder)
    capture = HeadInputCapture(model.get_output_embeddings()) if chunked else None
    collator = DataCollatorForSeq2Seq(tokenizer, model=model if is_encoder_decoder else None,
                                      label_pad_token_id=IGNORE_INDEX, padding=True)
    columns = [c for c in dataset.column_names if c in MODEL_INPUTS]
    loader = DataLoader(dataset.select_columns(columns), batch_size=batch_size, collate_fn=collator)
    return next(model.parameters()).device, capture, loader


@torch.no_grad()
def validation_ce(model, tokenizer, dataset, *, is_encoder_decoder: bool, batch_size: int,
                  chunked: bool) -> ValidationCE:
    """sum over target tokens of -log p(token) / number of target tokens (nats per token), and the
    path that computed it: chunked when asked (the run plan's packed_rows) and the model allows it
    (`chunkable_head`, the rule the plan uses), else from the full logits."""
    device, capture, loader = _teacher_forced_batches(model, tokenizer, dataset, is_encoder_decoder=is_encoder_decoder,
                                                      batch_size=batch_size, chunked=chunked)
    chunked = capture is not None
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        if capture is not None:
            with capture.active():  # the head sees zero positions; its input is kept
                model(**batch, use_cache=False)
                hidden = capture.hidden
            batch_total, batch_count = chunked_nll(hidden, capture.head.weight, labels)
        else:
            outputs = model(**batch, use_cache=False)
            batch_total, batch_count = full_logits_nll(outputs.logits, labels, shift=not is_encoder_decoder)
        total += batch_total
        count += batch_count
    return ValidationCE(total / max(count, 1), CHUNKED_PATH if chunked else FULL_LOGITS_PATH)


class TokenScores(NamedTuple):
    """Teacher-forced scores of every reference target token of a split, in dataset order:
    which example it belongs to, its id, -log p(token) and whether it is the model's top-1."""

    example: np.ndarray  # [N] int64: row of the dataset
    token: np.ndarray  # [N] int64
    nll: np.ndarray  # [N] float64, nats
    correct: np.ndarray  # [N] bool
    path: str


def _score_rows(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(-log p(target), target is the argmax) for logits [N, V] in float32 and targets [N]."""
    logits = logits.float()
    nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, targets[:, None]).squeeze(1)
    return nll, logits.argmax(dim=-1).eq(targets)


@torch.no_grad()
def token_scores(model, tokenizer, dataset, *, is_encoder_decoder: bool, batch_size: int,
                 chunked: bool) -> TokenScores:
    """Score each target token of `dataset` (tokenize_for_training's columns) under teacher forcing:
    the per-token data behind the likelihood-by-frequency table (harness.metrics.likelihood). Where
    `chunked` applies (as for validation_ce), only the target positions go through the LM head, a
    few hundred at a time, so no [tokens, vocab] logits exist for the whole batch."""
    device, capture, loader = _teacher_forced_batches(model, tokenizer, dataset, is_encoder_decoder=is_encoder_decoder,
                                                      batch_size=batch_size, chunked=chunked)
    chunked = capture is not None
    parts: dict[str, list[torch.Tensor]] = {"example": [], "token": [], "nll": [], "correct": []}
    first_row = 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        if capture is not None:
            with capture.active():
                model(**batch, use_cache=False)
                states = capture.hidden[:, :-1]
            targets, head = labels[:, 1:], capture.head.weight.float()
        else:
            states = model(**batch, use_cache=False).logits
            states, targets = align(states, labels, shift=not is_encoder_decoder, vocab_size=states.shape[-1])
        keep = targets.ne(IGNORE_INDEX)
        rows, wanted = states[keep], targets[keep]
        for start in range(0, wanted.numel(), SCORED_ROWS):
            part = rows[start:start + SCORED_ROWS]
            logits = part.float() @ head.T if capture is not None else part
            nll, correct = _score_rows(logits, wanted[start:start + SCORED_ROWS])
            parts["nll"].append(nll.double().cpu())
            parts["correct"].append(correct.cpu())
        parts["example"].append(keep.nonzero()[:, 0].cpu() + first_row)
        parts["token"].append(wanted.cpu())
        first_row += labels.shape[0]
    arrays = {k: (torch.cat(v) if v else torch.empty(0)).numpy() for k, v in parts.items()}
    return TokenScores(arrays["example"].astype(np.int64), arrays["token"].astype(np.int64),
                       arrays["nll"].astype(np.float64), arrays["correct"].astype(bool),
                       CHUNKED_PATH if chunked else FULL_LOGITS_PATH)

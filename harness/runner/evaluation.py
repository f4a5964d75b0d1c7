"""Validation cross-entropy at token level, the same yardstick for every arm.

The Trainer's `eval_loss` averages per-batch token means weighted by examples, which is not the
token-level CE when batches differ in size or length. This loop sums -log p over every validation
target token and divides by their number, on the main process, with the plain padded collator.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq

from harness.labels import IGNORE_INDEX
from harness.losses.base import align, token_nll

MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


@torch.no_grad()
def validation_ce(model, tokenizer, dataset, *, is_encoder_decoder: bool, batch_size: int) -> float:
    """sum over target tokens of -log p(token) / number of target tokens (nats per token)."""
    model.eval()
    device = next(model.parameters()).device
    collator = DataCollatorForSeq2Seq(tokenizer, model=model if is_encoder_decoder else None,
                                      label_pad_token_id=IGNORE_INDEX, padding=True)
    columns = [c for c in dataset.column_names if c in MODEL_INPUTS]
    loader = DataLoader(dataset.select_columns(columns), batch_size=batch_size, collate_fn=collator)
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        outputs = model(**batch, use_cache=False)
        logits, targets = align(outputs, labels, shift=not is_encoder_decoder, vocab_size=outputs.logits.shape[-1])
        total += float(token_nll(logits, targets).sum())
        count += int((targets != IGNORE_INDEX).sum())
    return total / max(count, 1)

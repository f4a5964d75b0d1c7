"""Padding-free batches for decoder-only training: the examples of one micro-batch (the same
examples, in the same order, as the padded path) are packed first-fit-decreasing into rows no
longer than `rows_of` times the longest example. Each example restarts its position_ids at 0 and there is no
attention_mask, so transformers (>= 4.53, every attention backend) builds a block-diagonal causal
mask from the position_ids: no token sees another example. Attention costs at most `rows_of`
times what the padded batch costs (SDPA computes the masked blocks too), and far fewer pad tokens
go through the model; with XSum-like lengths (most examples longer than half the longest) rows of
one longest example would hold one example each, hence rows_of=2.

The loss is unchanged: the first label of every example is -100 (the prompt is always masked;
we enforce it, since the padded path never uses that label either), so the causal shift never
trains one example on the next one's first token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.labels import IGNORE_INDEX



def pack_rows(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of examples per row, first-fit decreasing (ties keep input order): deterministic."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return rows


@dataclass
class PackedCollator:
    """Collates tokenized examples (input_ids, labels) into packed rows with position_ids.

    Rows are right-filled to a common length (a multiple of `pad_to_multiple_of`, which keeps the
    number of distinct shapes small for torch.compile) with pad tokens that form their own
    dummy segment: position_ids restart at 0, labels are -100.
    """

    pad_token_id: int
    pad_to_multiple_of: int = 8
    rows_of: int = 2  # row capacity in longest examples

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(f["input_ids"]) for f in features]
        rows = pack_rows(lengths, self.rows_of * max(lengths))
        longest_row = max(sum(lengths[i] for i in row) for row in rows)
        width = -(-longest_row // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            at = 0
            for index in row:
                n = lengths[index]
                input_ids[r, at:at + n] = torch.as_tensor(features[index]["input_ids"])
                labels[r, at:at + n] = torch.as_tensor(features[index]["labels"])
                labels[r, at] = IGNORE_INDEX
                positions[r, at:at + n] = torch.arange(n)
                at += n
            positions[r, at:] = torch.arange(width - at)
        return {"input_ids": input_ids, "labels": labels, "position_ids": positions}

"""BYU Chit-Chat Challenge conversations (PyPI chitchat-dataset, MIT): last k turns -> next turn.

Only two-party conversations are used, a turn is one sender's consecutive messages joined by a
space, and conversations (not pairs) are assigned to splits, so no conversation leaks into test.
"""

from __future__ import annotations

import json

from pydantic import Field

from harness.data.dialogue import dialogue_pairs
from harness.data.embedded import BUILDERS, Builder, BuilderOptions, split_of_group


class ChitchatOptions(BuilderOptions):
    context_turns: int = Field(3, ge=1)
    validation_pct: int = Field(5, ge=0, le=50)
    test_pct: int = Field(5, ge=1, le=50)


def _dataset_json():
    from importlib.resources import files

    return files("chitchat_dataset").joinpath("dataset.json")


def build(options: ChitchatOptions) -> dict[str, list[dict[str, str]]]:
    conversations = json.loads(_dataset_json().read_text(encoding="utf-8"))
    rows: dict[str, list[dict[str, str]]] = {"train": [], "validation": [], "test": []}
    for conv_id in sorted(conversations):
        messages = conversations[conv_id]["messages"]
        if len({u["sender"] for turn in messages for u in turn}) != 2:
            continue
        turns = [" ".join(u["text"] for u in turn) for turn in messages]
        split = split_of_group(conv_id, options.validation_pct, options.test_pct)
        for index, context, response in dialogue_pairs(turns, options.context_turns):
            rows[split].append({"id": f"{conv_id}/{index}", "source": context, "target": response})
    return rows


BUILDERS.register("chitchat", Builder(ChitchatOptions, build, ("chitchat-dataset",)))

"""Turn a dialogue into (context -> next turn) pairs, shared by the chitchat and DailyDialog tasks."""

from __future__ import annotations

from typing import Iterator


def format_context(turns: list[str]) -> str:
    """One line per turn, speakers labelled A/B so that the last context turn is A's and the
    reply to write is B's, whatever the turn's position in the dialogue."""
    labels = ["A" if (len(turns) - 1 - i) % 2 == 0 else "B" for i in range(len(turns))]
    return "\n".join(f"{label}: {turn}" for label, turn in zip(labels, turns))


def dialogue_pairs(turns: list[str], context_turns: int) -> Iterator[tuple[int, str, str]]:
    """(index of the response turn, context of up to `context_turns` previous turns, response).

    Empty turns are dropped from contexts; pairs with an empty response or context are skipped.
    """
    turns = [" ".join(t.split()) for t in turns]
    for i in range(1, len(turns)):
        context = [t for t in turns[max(0, i - context_turns): i] if t]
        if turns[i] and context:
            yield i, format_context(context), turns[i]

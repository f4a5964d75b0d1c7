"""Shared offline fixtures: everything is built locally in seconds, nothing touches the hub."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Tests never reach for the hub; the harness must still fail fast if code tries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Caches (converted models, corpora, token frequencies) go to a fresh folder, never the user's.
TEST_CACHE = tempfile.mkdtemp(prefix="pdl-bench-test-cache-")
os.environ["PDL_BENCH_CACHE"] = TEST_CACHE

import tiny  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PDL_SKIP_SLOW") == "1":
        skip = pytest.mark.skip(reason="PDL_SKIP_SLOW=1")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def umask_022():
    """The usual umask (group and others may read), whatever the test runner's is."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-tokenizer")
    tiny.build_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    out = tmp_path_factory.mktemp("tiny-causal")
    tiny.build_causal_lm(out, tiny_tokenizer)
    return out


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    out = tmp_path_factory.mktemp("tiny-seq2seq")
    tiny.build_seq2seq_lm(out, tiny_tokenizer)
    return out

"""Token-frequency counting and its on-disk cache."""

from collections import Counter

import numpy as np
import pytest
import torch

from harness.errors import HarnessError
from harness.frequency import (
    TokenFrequencies, count_token_ids, frequencies_from_texts, frequencies_from_token_ids,
    load_frequencies, save_frequencies, tokenizer_fingerprint,
)

TEXTS = ["In the beginning God created the heavens and the earth.", "   ", "And God said, Let there be light."]


def _counter_counts(seqs, size):
    counts = np.zeros(size, dtype=np.int64)
    for token, n in Counter(t for s in seqs for t in s if t != -100).items():
        counts[token] = n
    return counts


def test_count_token_ids_lists_arrays_tensors_agree_with_counter():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(0, 50, size=rng.integers(0, 30))) + [-100] for _ in range(200)]
    expected = _counter_counts(seqs, 50)
    assert np.array_equal(count_token_ids(seqs, 50), expected)
    padded = np.full((len(seqs), 40), -100)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    assert np.array_equal(count_token_ids(padded, 50), expected)
    assert np.array_equal(count_token_ids(torch.from_numpy(padded), 50), expected)
    assert count_token_ids([], 7).shape == (7,) and count_token_ids([], 7).dtype == np.int64


def test_count_token_ids_rejects_out_of_range_and_negative_ids():
    with pytest.raises(HarnessError, match="out of range"):
        count_token_ids([[1, 2, 10]], 10)
    with pytest.raises(HarnessError, match="negative"):
        count_token_ids(np.array([1, -5]), 10)


def test_token_frequencies_relative_total_and_read_only():
    freqs = TokenFrequencies(np.array([0, 3, 1], dtype=np.int64), "targets", "tok", "data")
    assert freqs.total == 4
    assert np.allclose(freqs.relative(), [0, 0.75, 0.25])
    with pytest.raises(ValueError):
        freqs.counts[0] = 1
    with pytest.raises(HarnessError, match="unknown frequency source"):
        TokenFrequencies(np.zeros(3, dtype=np.int64), "prompts", "tok", "data")


def test_texts_counted_like_per_text_encode(tiny_tokenizer):
    freqs = frequencies_from_texts(TEXTS, tiny_tokenizer, source="all_text", data_fingerprint="d1")
    per_text = [tiny_tokenizer.encode(t, add_special_tokens=False) for t in TEXTS if t.strip()]
    assert np.array_equal(freqs.counts, _counter_counts(per_text, len(tiny_tokenizer)))
    assert freqs.source == "all_text" and freqs.tokenizer_fingerprint == tokenizer_fingerprint(tiny_tokenizer)
    with pytest.raises(HarnessError, match="expected text"):
        frequencies_from_texts([b"bytes"], tiny_tokenizer, data_fingerprint="d")


def test_counts_cover_added_special_token(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tok.add_tokens(["<|sep|>"], special_tokens=True)
    sep = tok.convert_tokens_to_ids("<|sep|>")
    assert sep == len(tok) - 1 and sep >= tok.vocab_size
    freqs = frequencies_from_texts(["light <|sep|> earth <|sep|>"], tok, data_fingerprint="d")
    assert freqs.counts.shape == (len(tok),)
    assert freqs.counts[sep] == 2


def test_fingerprint_stable_across_reload_and_calls(tiny_tokenizer, tiny_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    before = tokenizer_fingerprint(tiny_tokenizer)
    tiny_tokenizer(["some text"] * 2, padding="max_length", truncation=True, max_length=4)
    assert tokenizer_fingerprint(tiny_tokenizer) == before
    tiny_tokenizer.save_pretrained(tmp_path)
    assert tokenizer_fingerprint(AutoTokenizer.from_pretrained(tmp_path)) == before
    other = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    other.add_tokens(["<|sep|>"], special_tokens=True)
    assert tokenizer_fingerprint(other) != before


class _Once:
    """An iterable that fails if it is read twice: proves the cache answered."""

    def __init__(self, items):
        self.items, self.reads = items, 0

    def __iter__(self):
        self.reads += 1
        return iter(self.items)


def test_cache_hit_and_invalidation(tiny_tokenizer, tiny_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    ids = [[5, 6, 6, -100], [7]]
    first = _Once(ids)
    a = frequencies_from_token_ids(first, tiny_tokenizer, source="targets", data_fingerprint="d1", cache_dir=tmp_path)
    again = _Once(ids)
    b = frequencies_from_token_ids(again, tiny_tokenizer, source="targets", data_fingerprint="d1", cache_dir=tmp_path)
    assert first.reads == 1 and again.reads == 0
    assert np.array_equal(a.counts, b.counts) and a.counts[6] == 2
    assert len(list(tmp_path.glob("*.npy"))) == 1

    changed_data = _Once([[5]])
    c = frequencies_from_token_ids(changed_data, tiny_tokenizer, source="targets", data_fingerprint="d2", cache_dir=tmp_path)
    assert changed_data.reads == 1 and c.counts[6] == 0
    changed_source = _Once(ids)
    d = frequencies_from_token_ids(changed_source, tiny_tokenizer, source="all_text", data_fingerprint="d1", cache_dir=tmp_path)
    assert changed_source.reads == 1 and d.source == "all_text"
    other_tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    other_tok.add_tokens(["<|sep|>"], special_tokens=True)
    changed_tok = _Once(ids)
    e = frequencies_from_token_ids(changed_tok, other_tok, source="targets", data_fingerprint="d1", cache_dir=tmp_path)
    assert changed_tok.reads == 1 and e.counts.shape == (len(tiny_tokenizer) + 1,)
    # texts and ids with the same fingerprint are different methods: no cross-hit
    texts = _Once(["light"])
    frequencies_from_texts(texts, tiny_tokenizer, source="targets", data_fingerprint="d1", cache_dir=tmp_path)
    assert texts.reads == 1


def test_corrupt_cache_is_recounted(tiny_tokenizer, tmp_path):
    ids = [[5, 6, 6]]
    frequencies_from_token_ids(ids, tiny_tokenizer, data_fingerprint="d", cache_dir=tmp_path)
    (npy,) = tmp_path.glob("*.npy")
    npy.write_bytes(b"not a numpy file")
    again = _Once(ids)
    freqs = frequencies_from_token_ids(again, tiny_tokenizer, data_fingerprint="d", cache_dir=tmp_path)
    assert again.reads == 1 and freqs.counts[6] == 2
    # and the rewritten file is good again
    assert np.array_equal(load_frequencies(npy).counts, freqs.counts)


def test_save_load_roundtrip_and_bad_file(tmp_path):
    freqs = TokenFrequencies(np.array([1, 0, 4], dtype=np.int64), "targets", "tok", "data")
    path = save_frequencies(freqs, tmp_path / "freqs")
    loaded = load_frequencies(path)
    assert np.array_equal(loaded.counts, freqs.counts)
    assert (loaded.source, loaded.tokenizer_fingerprint, loaded.data_fingerprint) == ("targets", "tok", "data")
    np.save(path, np.array([1, 0, 5], dtype=np.int64))  # counts no longer match the metadata
    with pytest.raises(HarnessError, match="cannot read token frequencies"):
        load_frequencies(path)

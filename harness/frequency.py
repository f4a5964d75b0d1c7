"""Token-frequency tables for frequency-weighted losses (PDL, FACE), counted once and cached on disk.

Counts are indexed by token id and sized `len(tokenizer)`, so added special tokens have a slot.
A table remembers which tokenizer and which data it was counted from (fingerprints), so a loss can
refuse a table that belongs to another tokenizer instead of silently weighting the wrong ids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from harness.errors import HarnessError
from harness.io import write_json_atomic, write_npy_atomic
from harness.labels import IGNORE_INDEX

SOURCES = ("targets", "all_text")
CACHE_FORMAT = 1
_CHUNK_TOKENS = 4_000_000  # bound the memory of one bincount pass over python lists
_TEXT_BATCH = 2_000


@dataclass(frozen=True, eq=False)
class TokenFrequencies:
    """How often each token id occurs in the counted text (training targets by default)."""

    counts: np.ndarray  # int64, shape [len(tokenizer)]
    source: str  # "targets" (training targets) | "all_text" (prompt + target, as the official code)
    tokenizer_fingerprint: str
    data_fingerprint: str

    def __post_init__(self):
        counts = np.asarray(self.counts)
        if counts.ndim != 1 or counts.dtype != np.int64:
            raise HarnessError(
                f"token counts must be a 1-D int64 array, got shape {counts.shape} dtype {counts.dtype}",
                "build tables with count_token_ids or frequencies_from_* instead of by hand",
            )
        if counts.size and counts.min() < 0:
            raise HarnessError("token counts contain negative values", "recount the frequencies")
        _check_source(self.source)
        counts = counts.copy() if counts.flags.writeable else counts
        counts.setflags(write=False)  # a shared table must not change under a loss that uses it
        object.__setattr__(self, "counts", counts)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def size(self) -> int:
        return int(self.counts.size)

    def relative(self) -> np.ndarray:
        total = self.total
        if total == 0:
            return np.zeros(self.counts.shape, dtype=np.float64)
        return self.counts.astype(np.float64) / total


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise HarnessError(
            f"unknown frequency source {source!r}",
            f"use one of {', '.join(SOURCES)}",
        )


def tokenizer_fingerprint(tokenizer) -> str:
    """A stable hash of what decides token ids: vocabulary, merges, normalisation, added tokens.

    Fast tokenizers hash their backend JSON minus the runtime padding/truncation settings (those
    change whenever the tokenizer is called with padding=/truncation=). Slow tokenizers hash the
    class name, the vocabulary and the added tokens.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        payload = {"backend": state}
    else:
        payload = {
            "class": type(tokenizer).__name__,
            "vocab": sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]),
        }
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    payload["added"] = sorted((int(i), str(tok), bool(getattr(tok, "special", False))) for i, tok in added.items())
    payload["size"] = len(tokenizer)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _bincount(ids: np.ndarray, size: int) -> np.ndarray:
    ids = ids[ids != IGNORE_INDEX]
    if ids.size == 0:
        return np.zeros(size, dtype=np.int64)
    low, high = int(ids.min()), int(ids.max())
    if low < 0:
        raise HarnessError(
            f"token id {low} is negative (only {IGNORE_INDEX} marks ignored positions)",
            "check the tokenised data: labels should be token ids or -100",
        )
    if high >= size:
        raise HarnessError(
            f"token id {high} is out of range for a vocabulary of {size}",
            "count with the tokenizer that produced these ids (size = len(tokenizer))",
        )
    return np.bincount(ids, minlength=size).astype(np.int64, copy=False)


def count_token_ids(sequences, size: int) -> np.ndarray:
    """Count token ids (int64, shape [size]); -100 (ignored label positions) is skipped.

    `sequences` is a numpy array / torch tensor of any shape, or an iterable of id lists.
    """
    if size <= 0:
        raise HarnessError(f"vocabulary size must be positive, got {size}", "pass len(tokenizer)")
    if hasattr(sequences, "detach"):  # torch tensor, without importing torch here
        sequences = sequences.detach().cpu().numpy()
    if isinstance(sequences, np.ndarray):
        return _bincount(np.asarray(sequences, dtype=np.int64).ravel(), size)
    counts = np.zeros(size, dtype=np.int64)
    iterator = iter(sequences)
    while True:
        chunk, n_tokens = [], 0
        for seq in iterator:
            chunk.append(seq)
            n_tokens += len(seq)
            if n_tokens >= _CHUNK_TOKENS:
                break
        if not chunk:
            return counts
        flat = np.fromiter(itertools.chain.from_iterable(chunk), dtype=np.int64, count=n_tokens)
        counts += _bincount(flat, size)


# ---- cache ---------------------------------------------------------------------------------


def _cache_key(tok_fp: str, data_fingerprint: str, source: str, size: int, method: dict) -> str:
    blob = json.dumps(
        {"format": CACHE_FORMAT, "tokenizer": tok_fp, "data": data_fingerprint, "source": source,
         "size": size, "method": method},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _cache_paths(cache_dir, key: str) -> tuple[Path, Path]:
    base = Path(cache_dir) / f"token-freq-{key[:24]}"
    return base.with_suffix(".npy"), base.with_suffix(".json")


def save_frequencies(freqs: TokenFrequencies, path, *, key: str | None = None) -> Path:
    """Write `path`.npy (counts, no pickle) and `path`.json (metadata), each atomically."""
    npy, meta = Path(path).with_suffix(".npy"), Path(path).with_suffix(".json")
    write_npy_atomic(npy, freqs.counts)
    info = {
        "format": CACHE_FORMAT, "key": key, "source": freqs.source, "size": freqs.size,
        "total": freqs.total, "tokenizer_fingerprint": freqs.tokenizer_fingerprint,
        "data_fingerprint": freqs.data_fingerprint,
    }
    write_json_atomic(meta, info)
    return npy


def load_frequencies(path, *, key: str | None = None) -> TokenFrequencies:
    """Read a table written by save_frequencies; HarnessError if it is missing, corrupt or not `key`."""
    npy, meta = Path(path).with_suffix(".npy"), Path(path).with_suffix(".json")
    try:
        info = json.loads(meta.read_text())
        counts = np.load(npy, allow_pickle=False)
        ok = (
            info["format"] == CACHE_FORMAT
            and (key is None or info["key"] == key)
            and counts.dtype == np.int64
            and counts.shape == (info["size"],)
            and int(counts.sum()) == info["total"]
        )
        if not ok:
            raise ValueError("metadata does not match the counts")
        return TokenFrequencies(np.array(counts), info["source"], info["tokenizer_fingerprint"], info["data_fingerprint"])
    except (OSError, ValueError, KeyError, TypeError, HarnessError) as err:
        raise HarnessError(
            f"cannot read token frequencies from {npy}: {err}",
            "delete the file (and its .json) to recount",
        ) from None


def _cached(cache_dir, key: str, count):
    """Return the cached table for `key`, or count it (recounting over a corrupt or stale file)."""
    if cache_dir is None:
        return count()
    npy, _ = _cache_paths(cache_dir, key)
    if npy.exists():
        try:
            return load_frequencies(npy, key=key)
        except HarnessError:
            pass  # corrupt or from another key: recount and overwrite
    freqs = count()
    save_frequencies(freqs, npy, key=key)
    return freqs


def frequencies_from_token_ids(
    sequences, tokenizer, *, source: str = "targets", data_fingerprint: str, cache_dir=None
) -> TokenFrequencies:
    """Count already-tokenised ids (e.g. training labels, -100 skipped) for `tokenizer`.

    `data_fingerprint` must change whenever the data changes: the cache trusts it.
    """
    _check_source(source)
    tok_fp, size = tokenizer_fingerprint(tokenizer), len(tokenizer)
    key = _cache_key(tok_fp, data_fingerprint, source, size, {"input": "token_ids"})
    return _cached(
        cache_dir, key,
        lambda: TokenFrequencies(count_token_ids(sequences, size), source, tok_fp, data_fingerprint),
    )


def _require_text(text) -> str:
    if not isinstance(text, str):
        raise HarnessError(
            f"expected text to count token frequencies, got {type(text).__name__}",
            "pass the text column (strings); use frequencies_from_token_ids for token ids",
        )
    return text


def frequencies_from_texts(
    texts: Iterable[str], tokenizer, *, source: str = "targets", data_fingerprint: str, cache_dir=None
) -> TokenFrequencies:
    """Tokenise texts in batches (add_special_tokens=False, as the official code) and count ids.

    Blank texts are skipped, as the official code does. `data_fingerprint` must change whenever
    the texts change: the cache trusts it.
    """
    _check_source(source)
    tok_fp, size = tokenizer_fingerprint(tokenizer), len(tokenizer)
    method = {"input": "texts", "add_special_tokens": False, "skip_blank": True}
    key = _cache_key(tok_fp, data_fingerprint, source, size, method)

    def count() -> TokenFrequencies:
        counts = np.zeros(size, dtype=np.int64)
        iterator = (t for t in map(_require_text, texts) if t.strip())
        while batch := list(itertools.islice(iterator, _TEXT_BATCH)):
            ids = tokenizer(batch, add_special_tokens=False, return_attention_mask=False)["input_ids"]
            counts += count_token_ids(ids, size)
        return TokenFrequencies(counts, source, tok_fp, data_fingerprint)

    return _cached(cache_dir, key, count)

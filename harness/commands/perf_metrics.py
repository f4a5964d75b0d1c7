"""`pdl-bench perf-metrics`: time the metric suite at XSum test-set scale on this machine."""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from harness.report.options import add_workers_argument, workers_from
from harness.workers import usable_cores

HELP = "Time the full metric suite (with 1,000 bootstrap resamples) on 11,334 synthetic XSum-sized pairs."
DESCRIPTION = """\
Builds 11,334 synthetic prediction/reference pairs of XSum summary length (predictions 20-25 words,
references ~23 words, one or two sentences) from a seeded generator over a built-in vocabulary, then
times, on this machine:
  - ROUGE-1/2/L/Lsum alone with 1 worker and with --workers processes,
  - the whole default suite (ROUGE, distinct-n, n-gram entropy, seq-rep-4, length, vocabulary)
    with --n-boot bootstrap resamples, with 1 worker and with --workers processes.
Prints the figures with the core count and writes them to results/perf/metrics.json.

Example:
  pdl-bench perf-metrics
  pdl-bench perf-metrics --n 2000 --n-boot 200 --output /tmp/metrics-perf.json
"""

XSUM_TEST_SIZE = 11_334
FUNCTION_WORDS = ("the a of to in and was for on is has that with by at said it as from have be his "
                  "he will are an its who their not after been but they more than were this had which "
                  "new would two one over said also year people about first last up out".split())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=XSUM_TEST_SIZE, help="number of pairs (default: %(default)s)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    add_workers_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the bootstrap")
    parser.add_argument("--output", type=Path, default=Path("results/perf/metrics.json"),
                        help="JSON file for the figures (default: %(default)s)")


def synthetic_vocabulary(rng, size: int = 20_000) -> list[str]:
    """Function words first, then pronounceable pseudo-words built from syllables (no data files)."""
    onsets = "b c d f g h j k l m n p r s t v w br cl dr fl gr pl pr sh st th tr".split()
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    codas = ["", "n", "r", "s", "t", "l", "nd", "st", "ng", "ck"]
    suffixes = ["", "", "", "s", "ed", "ing", "er", "ly", "tion"]
    words = list(dict.fromkeys(FUNCTION_WORDS))
    seen = set(words)
    while len(words) < size:
        syllables = rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])
        word = "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))]
                       + codas[rng.integers(len(codas))] for _ in range(syllables))
        word += suffixes[rng.integers(len(suffixes))]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def synthetic_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(predictions, references): Zipf-distributed words; predictions reuse ~half the reference words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = synthetic_vocabulary(rng)
    zipf = 1.0 / (np.arange(len(vocab)) + 2.7) ** 1.05
    zipf /= zipf.sum()
    ref_lengths = np.clip(np.rint(rng.normal(23, 5, n)), 8, 45).astype(int)
    pred_lengths = rng.integers(20, 26, n)
    words = rng.choice(len(vocab), size=int(ref_lengths.sum() + pred_lengths.sum()), p=zipf)
    cursor = 0
    predictions, references = [], []
    for ref_len, pred_len in zip(ref_lengths, pred_lengths):
        ref = [vocab[w] for w in words[cursor:cursor + ref_len]]
        cursor += ref_len
        fresh = [vocab[w] for w in words[cursor:cursor + pred_len]]
        cursor += pred_len
        keep = rng.random(pred_len) < 0.5
        pred = [ref[min(int(i * ref_len / pred_len), ref_len - 1)] if k else fresh[i] for i, k in enumerate(keep)]
        references.append(_sentences(ref, rng))
        predictions.append(_sentences(pred, rng))
    return predictions, references


def _sentences(tokens: list[str], rng) -> str:
    """One sentence, or two when long enough (so rougeLsum has something to split)."""
    cut = len(tokens) // 2 if len(tokens) > 12 and rng.random() < 0.3 else len(tokens)
    parts = [tokens[:cut], tokens[cut:]] if cut < len(tokens) else [tokens]
    return " ".join(" ".join(p).capitalize() + "." for p in parts)


def run(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.io import write_json_atomic
    from harness.metrics import DEFAULT_METRICS, score
    from harness.metrics.rouge import rouge_scores
    from harness.metrics.suite import forget_estimates

    if args.n < 2 or args.n_boot < 0:
        raise HarnessError("--n must be >= 2 and --n-boot >= 0", "use the defaults")
    workers = workers_from(args)
    cores = usable_cores()
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {cores} cores available "
          f"({os.cpu_count()} logical), python {platform.python_version()}, load average {load:.2f} at start")

    start = time.perf_counter()
    predictions, references = synthetic_pairs(args.n, args.seed)
    figures: dict[str, float] = {"generate_pairs_s": time.perf_counter() - start}

    def timed(key: str, fn) -> None:
        forget_estimates()  # each timing computes: the suite remembers estimates of the same texts
        begin = time.perf_counter()
        fn()
        figures[key] = time.perf_counter() - begin
        print(f"  {key:<34} {figures[key]:8.2f} s")

    print(f"{args.n} pairs, {args.n_boot} bootstrap resamples")
    timed("rouge_1_worker_s", lambda: rouge_scores(predictions, references, workers=1))
    timed(f"rouge_{workers}_workers_s", lambda: rouge_scores(predictions, references, workers=workers))
    timed("suite_1_worker_s", lambda: score(predictions, references, n_boot=args.n_boot, seed=args.seed))
    timed(f"suite_{workers}_workers_s",
          lambda: score(predictions, references, n_boot=args.n_boot, seed=args.seed, workers=workers))
    timed("suite_no_rouge_s", lambda: score(
        predictions, references, metrics=[m for m in DEFAULT_METRICS if not m.startswith("rouge")],
        n_boot=args.n_boot, seed=args.seed))
    best = min(figures["suite_1_worker_s"], figures[f"suite_{workers}_workers_s"])
    print(f"whole suite: {best:.1f} s (target: under 60 s on 2 cores)")

    record = {
        "n_pairs": args.n, "n_boot": args.n_boot, "workers": workers, "seed": args.seed,
        "metrics": DEFAULT_METRICS, "cores_available": cores, "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "load_average_at_start": round(load, 2), "load_average_at_end": round(os.getloadavg()[0], 2),
        "seconds": {k: round(v, 3) for k, v in figures.items()},
    }
    write_json_atomic(args.output, record)
    print(f"wrote {args.output}")
    return 0

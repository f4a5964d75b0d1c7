"""`pdl-bench perf`: plain HF paths against the harness's fast paths, measured in one run."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Measure training, loss-memory and generation speed: plain HF path vs the fast paths."
DESCRIPTION = """\
Builds random-init models from configs (nothing is downloaded) and, on batches with XSum-like
lengths, measures in this one run:
  - training tokens/s (non-padding prompt+target tokens), MFU against a matmul peak measured now,
    and peak memory: plain (padded, full logits) vs fast (packed rows + chunked loss) vs
    fast+compile (GPU), for the ce and pdl losses, after checking that plain and fast give the
    same loss and gradients on one batch;
  - the loss alone at a large vocabulary (Qwen2 head: vocab 151,936 x hidden 896 on the small
    and full sizes): full logits vs chunked, value/gradient difference and peak memory, and
    whether the chunked peak is at most half the plain one. On a GPU the peak is the CUDA
    allocator's; on CPU each path runs once in a fresh child process and the peak is its peak
    RSS above the RSS of the inputs (resident pages, allocator caching included);
  - greedy generation: HF dynamic cache vs static cache (compiled on CUDA), new tokens/s and
    token agreement.
Sizes: tiny (CI, seconds), small (CPU, a few minutes; its loss part 2,048 tokens, about a
minute), full (GPU: SmolLM2-135M and Qwen2-0.5B shapes). --loss-memory runs the loss part only.
Writes JSON with device, versions and git hash, after every measurement (a run cut short keeps
what it measured; "complete" says whether it finished). A measurement that fails is recorded and
printed, the others still run, and the exit status is 1.

Example:
  pdl-bench perf --size tiny
  pdl-bench perf --size small --loss-memory
  pdl-bench perf --size full --output results/perf/h100.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=["tiny", "small", "full"],
                        help="workload size (default: full on a GPU, small on CPU)")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--quick", action="store_true", help="training and loss only, no generation")
    parts.add_argument("--loss-memory", action="store_true",
                       help="only the loss alone and the validation CE pass: full logits vs chunked "
                            "(peak memory, values, gradients)")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="also time fast+compile (auto: on a GPU only)")
    parser.add_argument("--models", help="comma-separated model shapes instead of the size's")
    parser.add_argument("--output", type=Path, help="JSON file (default: results/perf/<size>-<time>.json)")


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from harness.errors import HarnessError
    from harness.io import write_json_atomic
    from harness.perf.report import render, run_suite
    from harness.provenance import provenance
    from harness.runner.plan import on_or_auto_on_gpu

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or ("full" if device.type == "cuda" else "small")
    compile_ = on_or_auto_on_gpu(args.compile, device.type == "cuda")  # perf times compilation itself, whatever the budget
    if args.models and args.loss_memory:
        raise HarnessError("--models has no effect with --loss-memory (the loss probe uses no model)",
                           "drop --models, or drop --loss-memory to measure training and generation")
    models = args.models.split(",") if args.models else None
    name = f"{size}{'-loss-memory' if args.loss_memory else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    output = args.output or Path("results/perf") / f"{name}.json"
    started = provenance()

    def save(result: dict, line: str) -> None:
        """After every measurement: the JSON so far (a run cut short keeps it) and one line."""
        write_json_atomic(output, {**result, "provenance": started, "complete": False})
        print(line, flush=True)

    result = run_suite(size, device, compile_=compile_, generation=not args.quick, models=models,
                       loss_only=args.loss_memory, on_update=save)
    write_json_atomic(output, {**result, "provenance": started, "complete": True})
    print("\n" + render(result))
    print(f"\nwritten: {output}")
    return 1 if result["errors"] else 0

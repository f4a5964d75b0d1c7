"""Arguments shared by `run`, `bench` and `sweep`, and their translation into a RunConfig."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.keyvalue import parse_key_value

DEFAULT_TASK = "bible"


def add_point_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default=DEFAULT_TASK,
                        help=f"task name or YAML path (default: {DEFAULT_TASK}, the embedded offline task)")
    parser.add_argument("--model", help="builtin alias, local path or hub id (default: the task's model)")
    parser.add_argument("--data-dir", help="local copy of the task's dataset (jsonl/parquet/csv per split)")
    parser.add_argument("--limit", type=int, help="cap every split at N examples (quick runs)")
    parser.add_argument("--max-steps", type=int, help="stop training after N optimizer steps")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a task key, type-checked, e.g. --set training.learning_rate=1e-4 (repeatable)")
    parser.add_argument("--loss-option", dest="loss_option", action="append", default=[], metavar="KEY=VALUE",
                        help="option of the loss, e.g. --loss-option normalization=batch_weight_sum (repeatable)")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where results go (default: results/)")
    parser.add_argument("--force", action="store_true", help="rerun finished points (old folders are moved aside, not deleted)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--plain", action="store_true",
                       help="use the plain HF paths (padded batches, full logits, dynamic KV cache)")
    speed.add_argument("--fast", action="store_true",
                       help="also use static-KV-cache generation on CPU (default: packed rows + chunked loss "
                            "everywhere, static cache on GPU)")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                        help="torch.compile the model on the fast training path (auto: on GPU only; "
                             "off if compilation fails on your stack)")


def parse_key_values(pairs: list[str], what: str) -> dict[str, Any]:
    """KEY=VALUE pairs with YAML-typed values, parsed exactly like --set (harness.keyvalue)."""
    return dict(parse_key_value(pair, what, "alpha=0.5") for pair in pairs)


def parse_number_list(text: str, kind: type, what: str) -> list:
    try:
        return [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise HarnessError(f"{what} must be a comma-separated list of numbers, got {text!r}",
                           f"e.g. {what} 0,0.5,1") from None


def run_config(args: argparse.Namespace, loss: str = "ce", loss_options: dict | None = None, seed: int = 0):
    from harness.runner.config import RunConfig

    overrides = list(args.overrides)
    if args.limit is not None:
        if args.limit < 1:
            raise HarnessError(f"--limit must be >= 1, got {args.limit}", "pass a positive number of examples")
        overrides += [f"limits.{split}={args.limit}" for split in ("train", "validation", "test")]
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise HarnessError(f"--max-steps must be >= 1, got {args.max_steps}",
                               "pass a positive number of optimizer steps, or drop it to train the task's epochs")
        overrides.append(f"training.max_steps={args.max_steps}")
    options = {**parse_key_values(args.loss_option, "--loss-option"), **(loss_options or {})}
    return RunConfig(
        task=args.task, model=args.model, loss=loss, loss_options=options, seed=seed,
        data_dir=args.data_dir, overrides=overrides, trust_remote_code=args.trust_remote_code,
        fast="off" if args.plain else "on" if args.fast else "auto", compile=args.compile,
    )

"""Command-line options shared by `pdl-bench table`, `plot` and `report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import HarnessError
from harness.results import DEFAULT_RESULTS_DIR
from harness.workers import DEFAULT_WORKERS_CAP, default_workers


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR,
                        help=f"the results tree to read (default: {DEFAULT_RESULTS_DIR}/)")


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """--workers, as table, report, score and perf-metrics take it (workers_from reads it)."""
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for ROUGE and the resamples of MTLD, MATTR and the compression ratio; the "
                             "numbers do not depend on it (default: the cores this process may use, at most "
                             f"{DEFAULT_WORKERS_CAP})")


def workers_from(args: argparse.Namespace) -> int:
    """The --workers given, checked, else default_workers()."""
    if args.workers is None:
        return default_workers()
    if args.workers < 1:
        raise HarnessError(f"--workers must be >= 1, got {args.workers}", "use 1, or leave it out for the default")
    return args.workers


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", help="comma-separated metrics to show (default: every metric the runs report)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for delta CIs (default 1000)")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    add_workers_argument(parser)
    parser.add_argument("--no-deltas", action="store_true",
                        help="means and stds only: skip the paired deltas (no generations read, no tokenizer)")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow the hub model's own tokenizer code, for models that need it (off by default)")


def table_settings(args: argparse.Namespace):
    from harness.report.tables import TableSettings

    if args.n_boot < 0:
        raise HarnessError(f"--n-boot must be >= 0, got {args.n_boot}", "use e.g. 1000 (0: deltas without CIs)")
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip()) if args.metrics else None
    return TableSettings(n_boot=args.n_boot, bootstrap_seed=args.bootstrap_seed, metrics=metrics,
                         deltas=not args.no_deltas, trust_remote_code=args.trust_remote_code,
                         workers=workers_from(args))

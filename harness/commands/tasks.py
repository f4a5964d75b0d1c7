"""`pdl-bench tasks`: what tasks exist, where their data comes from and which model they default to."""

from __future__ import annotations

from pathlib import Path

HELP = "list the task definitions (name, kind, data source, default model, split sizes)"
DESCRIPTION = """List every task shipped with pdl-bench (or in --tasks-dir): its kind, where the data comes from
(hub id, local files, or a corpus embedded in an installed package), the model a run uses unless
--model is given (the task's `model`), the suggested offline model for running a hub task's data
from --data-dir on a machine without the hub, and the split sizes recorded in the YAML (train/validation/test,
before the per-split limits that are shown after them).

Example:
  pdl-bench tasks
  pdl-bench tasks --tasks-dir my_tasks/
"""


def add_arguments(parser) -> None:
    parser.add_argument("--tasks-dir", type=Path, default=None, help="folder of task YAMLs (default: $PDL_BENCH_TASKS_DIR if set, else the tasks "
                             "shipped with pdl-bench: the repository's tasks/ in a checkout)")


def describe_source(task) -> str:
    src = task.source
    if src.type == "hub":
        return f"hub:{src.path}"
    if src.type == "local":
        return f"local:{src.path or '--data-dir'}"
    return f"embedded:{src.builder}"


def _sizes(values: dict | None, keys=("train", "validation", "test")) -> str:
    if not values:
        return "-"
    return "/".join("all" if values.get(k) is None else str(values[k]) for k in keys)


def run(args) -> int:
    from harness.data.sources import check_source
    from harness.task import list_tasks

    rows = [("task", "kind", "source", "model", "offline model", "sizes", "limits")]
    for task in map(check_source, list_tasks(args.tasks_dir)):  # an unknown builder or option fails here
        rows.append((task.name, task.kind, describe_source(task), task.model, task.offline_model or "-",
                     _sizes(task.expected_sizes), _sizes(task.limits.model_dump())))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0

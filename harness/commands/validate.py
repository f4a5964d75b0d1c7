"""`pdl-bench validate`: check task YAMLs before a long run finds the mistake for you."""

from __future__ import annotations

from pathlib import Path

HELP = "check task YAML files (all of tasks/ by default); exit 1 on any error"
DESCRIPTION = """Load and type-check task definitions: YAML syntax (with the line of an error),
unknown or misspelled keys, value types and ranges, prompt placeholders, embedded-builder options,
metric names, the TrainingArguments fields under `training:` (as transformers builds them), and that each file in the tasks folder is named after its task. Prints OK or the
errors per file, and exits 1 if any file has an error. Data is not downloaded.

Example:
  pdl-bench validate
  pdl-bench validate tasks/xsum.yaml my_task.yaml
"""


def add_arguments(parser) -> None:
    parser.add_argument("files", nargs="*", type=Path, help="task YAML files (default: every tasks/*.yaml)")
    parser.add_argument("--tasks-dir", type=Path, default=None, help="folder to check when no files are given")


def check_file(path: Path, *, name_must_match: bool) -> str | None:
    """None if the file is a valid task, else the error message. Files in a tasks folder must be
    named <task name>.yaml, since that is how `--task NAME` finds them."""
    from harness.data.sources import check_source
    from harness.errors import HarnessError
    from harness.task import load_task_file

    from harness.runner.training import check_training_arguments

    try:
        task = check_source(load_task_file(path), str(path))  # the builder and its options too
        check_training_arguments(task)  # the TrainingArguments fields it passes through, by transformers
    except HarnessError as err:
        return str(err)
    if name_must_match and task.name != path.stem:
        return f"task name {task.name!r} differs from the file name {path.name!r}; name the file {task.name}.yaml"
    return unknown_metric(task)


def unknown_metric(task) -> str | None:
    """Metric names are plain strings in the YAML; check them against the metrics registry here."""
    from harness.errors import HarnessError
    from harness.metrics import METRICS

    for name in task.metrics:
        try:
            METRICS.get(name)
        except HarnessError as err:
            return f"metrics: {err.message.split(';')[0]} ({err.hint})"
    return None


def run(args) -> int:
    from harness.errors import HarnessError
    from harness.task import default_tasks_dir

    files = list(args.files)
    from_folder = not files
    if from_folder:
        folder = args.tasks_dir or default_tasks_dir()
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise HarnessError(f"no task files (*.yaml) in {folder}", "pass files, or --tasks-dir with task YAMLs")
    failures = 0
    for path in files:
        problem = check_file(path, name_must_match=from_folder)
        failures += problem is not None
        print(f"OK     {path}" if problem is None else f"ERROR  {path}: {problem}")
    print(f"{len(files) - failures} ok, {failures} with errors")
    return 1 if failures else 0

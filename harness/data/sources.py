"""Raw splits from wherever a task's data lives: the hub, local files, or an embedded corpus.

Returns {split: datasets.Dataset} with the raw columns; preprocess.load_splits normalises them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import HarnessError
from harness.io import check_utf8, read_text
from harness.task import EmbeddedSource, HubSource, LocalSource, TaskConfig

TABULAR_FORMATS = ("jsonl", "json", "parquet", "csv")
SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "valid", "val", "dev", "tune"), "test": ("test",)}
CACHE_ENV = "PDL_BENCH_CACHE"


def expected_columns(task: TaskConfig) -> list[str]:
    return [c for c in (task.fields.input, task.fields.target, task.fields.id) if c]


def local_files_hint(task: TaskConfig) -> str:
    """How to supply this task's data as local files: used in every 'data not found' error."""
    src = task.source
    if isinstance(src, LocalSource) and src.format == "lines":
        files = ", ".join(f"{p.source} + {p.target}" for p in src.parallel.values())
        return f"pass --data-dir DIR holding the line-aligned files {files} (see docs/tasks.md)"
    return (
        "pass --data-dir DIR holding train/validation/test files named <split>.jsonl|.json|.parquet|.csv "
        f"(valid/val/dev also accepted for validation) with the columns {', '.join(expected_columns(task))}"
    )


def load_raw(task: TaskConfig, data_dir: str | os.PathLike | None, splits: tuple[str, ...]) -> dict:
    src = task.source
    if isinstance(src, EmbeddedSource):
        if data_dir is not None:
            raise HarnessError(f"task {task.name!r} is built from an installed package and reads no --data-dir",
                               "drop --data-dir, or use a task with a hub or local source")
        corpus = load_embedded(src.builder, check_source(task).source.options)
        return {split: corpus[split] for split in splits}
    if data_dir is not None or isinstance(src, LocalSource):
        return _load_local(task, data_dir, splits)
    return _load_hub(task, src, splits)


def check_source(task: TaskConfig, origin: str | None = None) -> TaskConfig:
    """`task` with what the task schema cannot check about its source checked: an embedded
    source's builder must exist and take the options given (returned filled in with the
    builder's defaults). `origin` names the task in errors (its file; default its name)."""
    src = task.source
    if not isinstance(src, EmbeddedSource):
        return task
    from harness.data.embedded import check_options

    options = check_options(src.builder, src.options, origin or repr(task.name))
    return task.model_copy(update={"source": src.model_copy(update={"options": options})})


def split_origin(task: TaskConfig, data_dir: str | os.PathLike | None, split: str) -> str:
    """Where a split's rows come from, in words (the file for local data), for error messages."""
    src = task.source
    if isinstance(src, EmbeddedSource):
        return f"the embedded {src.builder} corpus"
    if data_dir is not None or isinstance(src, LocalSource):
        root = _local_root(task, data_dir)
        if isinstance(src, LocalSource) and src.format == "lines":
            return str(root / src.parallel[split].source)
        preferred = src.format if isinstance(src, LocalSource) else "jsonl"
        formats = (preferred,) + tuple(f for f in TABULAR_FORMATS if f != preferred)
        return str(_find_split_file(root, split, formats, task))
    return f"hub dataset {src.path} (split {src.splits[split]!r})"


def _load_hub(task: TaskConfig, src: HubSource, splits: tuple[str, ...]) -> dict:
    from harness.hub import require_hub

    require_hub(src.path, "dataset", local_files_hint(task))
    from datasets import load_dataset

    return {
        split: load_dataset(src.path, src.name, revision=src.revision, data_dir=src.data_dir, split=src.splits[split])
        for split in splits
    }


def _local_root(task: TaskConfig, data_dir) -> Path:
    path = data_dir if data_dir is not None else getattr(task.source, "path", None)
    if path is None:
        raise HarnessError(f"task {task.name!r} reads local files only and no data directory was given",
                           local_files_hint(task))
    root = Path(path).expanduser()
    if not root.is_dir():
        raise HarnessError(f"data directory {root} for task {task.name!r} does not exist", local_files_hint(task))
    return root


def _load_local(task: TaskConfig, data_dir, splits: tuple[str, ...]) -> dict:
    root = _local_root(task, data_dir)
    src = task.source
    if isinstance(src, LocalSource) and src.format == "lines":
        return {split: _read_line_pairs(root, src.parallel[split].source, src.parallel[split].target, task) for split in splits}
    preferred = src.format if isinstance(src, LocalSource) else "jsonl"
    formats = (preferred,) + tuple(f for f in TABULAR_FORMATS if f != preferred)
    return {split: _read_table(_find_split_file(root, split, formats, task), split) for split in splits}


def _find_split_file(root: Path, split: str, formats: tuple[str, ...], task: TaskConfig) -> Path:
    for fmt in formats:
        for name in SPLIT_ALIASES[split]:
            path = root / f"{name}.{fmt}"
            if path.is_file():
                return path
    raise HarnessError(f"no {split} file in {root} for task {task.name!r} "
                       f"(looked for {', '.join(SPLIT_ALIASES[split])} with .{'/.'.join(formats)})",
                       local_files_hint(task))


def _read_table(path: Path, split: str):
    """One split file as a Dataset. Text is checked for UTF-8 before datasets reads it (it would
    fail obscurely or load the bad bytes and crash later); parquet strings are checked after."""
    from datasets import Dataset

    if path.suffix != ".parquet":
        check_utf8(path)
        with path.open("rb") as handle:
            if not any(line.strip() for line in handle):  # datasets says only "StopIteration"
                raise HarnessError(f"split {split} is empty in {path}", "add its examples, or check --data-dir")
    readers = {".jsonl": Dataset.from_json, ".json": Dataset.from_json,
               ".parquet": Dataset.from_parquet, ".csv": Dataset.from_csv}
    try:
        dataset = readers[path.suffix](str(path))
    except Exception as err:  # datasets raises many types for a bad file; say which file
        raise HarnessError(f"could not read {path}: {type(err).__name__}: {err}",
                           "check the file is valid for its extension") from None
    try:
        dataset.data.table.validate(full=True)  # full: also checks that strings are valid UTF-8
    except ValueError as err:  # pyarrow.ArrowInvalid
        raise HarnessError(f"{path} holds text that is not UTF-8 ({err})", "re-save it as UTF-8") from None
    return dataset


def _read_line_pairs(root: Path, source_name: str, target_name: str, task: TaskConfig):
    from datasets import Dataset

    columns = {}
    for column, name in (("source", source_name), ("target", target_name)):
        path = root / name
        if not path.is_file():
            raise HarnessError(f"missing file {path} for task {task.name!r}", local_files_hint(task))
        columns[column] = read_text(path).splitlines()
    if len(columns["source"]) != len(columns["target"]):
        raise HarnessError(f"{source_name} has {len(columns['source'])} lines but {target_name} has "
                           f"{len(columns['target'])} in {root}", "the two files must be line-aligned")
    return Dataset.from_dict(columns)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pdl-bench") / "data"


def _cache_key(builder_name: str, options: dict) -> str:
    """Changes when the options, the package versions or the building code change."""
    from harness.data.embedded import get_builder

    builder = get_builder(builder_name)
    versions = {d: importlib.metadata.version(d) for d in builder.packages}
    from harness.data import dialogue, embedded

    code = "".join(inspect.getsource(m) for m in (inspect.getmodule(builder.build), embedded, dialogue))
    blob = json.dumps({"options": options, "versions": versions, "code": code}, sort_keys=True)
    return f"{builder_name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def load_embedded(builder_name: str, options: dict):
    """The embedded corpus as a DatasetDict, built once (1-2 s) and then read from a datasets
    cache (save_to_disk: Arrow files, no pickle) under $PDL_BENCH_CACHE or ~/.cache/pdl-bench."""
    from datasets import load_from_disk

    from harness.data.embedded import build_embedded, get_builder, require_packages

    require_packages(get_builder(builder_name).packages, builder_name)
    target = cache_root() / _cache_key(builder_name, options)
    if target.is_dir():
        return load_from_disk(str(target))
    corpus = build_embedded(builder_name, options)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".building-"))
    try:
        corpus.save_to_disk(str(staging))
        os.replace(staging, target)  # atomic: a reader never sees a half-written cache
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race; its copy is identical
    return load_from_disk(str(target)) if target.is_dir() else corpus

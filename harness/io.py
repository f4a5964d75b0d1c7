"""Crash-safe file writes (write to a temp file in the same folder, fsync, rename) and JSONL reading."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable

from harness.errors import HarnessError


def _write_atomic(path: Path, mode: str, write: Callable[[IO], None]) -> None:
    """Readers see the old file or the new one, never a half-written one: write a temp file in
    the same folder, fsync it, rename it over the target, fsync the folder (the rename itself)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, "w", lambda handle: handle.write(text))


def write_npy_atomic(path: Path, array) -> None:
    """A numpy array as .npy (never pickled)."""
    import numpy as np

    _write_atomic(path, "wb", lambda handle: np.save(handle, np.asarray(array), allow_pickle=False))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path} is not valid JSON (line {err.lineno}: {err.msg})",
                           "delete or repair the file and run again") from err


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a bad line fails with its line number."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path} does not exist", "check the path")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise HarnessError(f"{path}:{number}: not valid JSON ({err.msg})",
                                   "each line must be one JSON object") from err
            if not isinstance(row, dict):
                raise HarnessError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}",
                                   "each line must be one JSON object")
            rows.append(row)
    return rows

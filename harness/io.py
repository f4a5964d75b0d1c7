"""Crash-safe file writes (write to a temp file in the same folder, fsync, rename) and the readers
of text, JSON, JSONL and .npy files. A failed write, or a file that is not what its reader expects,
fails with one line naming the file (HarnessError), never with a library's traceback."""

from __future__ import annotations

import errno
import functools
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
        os.fchmod(fd, new_file_mode())  # mkstemp makes 0600; results are shared like any file
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


def new_file_mode() -> int:
    """The mode open() would give a new file under this process's umask (0644 under umask 022)."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def share_like_new_files(folder: Path) -> None:
    """Give every file under `folder` that a library wrote the mode a new file gets under this
    process's umask, like every other result file (safetensors' save_file makes its files 0600,
    which other users of a shared results tree or model cache could not read)."""
    mode = new_file_mode()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def write_error(path: Path, err: OSError) -> HarnessError:
    """One line naming the file a write failed on (read-only folder, full disk) and what to do;
    also for files that libraries write themselves (matplotlib's savefig)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "disk quota exceeded" if err.errno == errno.EDQUOT else "no space left on the device"
        return HarnessError(f"cannot write {path}: {what}",
                            "free some disk space, or write to another disk, and run again")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "read-only file system" if err.errno == errno.EROFS else "permission denied"
        return HarnessError(f"cannot write {path}: {what}",
                            f"make {Path(path).parent} writable, or choose another output folder")
    return HarnessError(f"cannot write {path}: {err.strerror or err}", "check the path and the disk")


def _naming_the_file(write: Callable) -> Callable:
    """The public writers below fail with write_error's one line instead of an OSError traceback."""

    @functools.wraps(write)
    def wrapped(path: Path, *args, **kwargs):
        try:
            return write(path, *args, **kwargs)
        except OSError as err:
            raise write_error(path, err) from err

    return wrapped


@_naming_the_file
def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, "w", lambda handle: handle.write(text))


@_naming_the_file
def write_npy_atomic(path: Path, array) -> None:
    """A numpy array as .npy (never pickled)."""
    import numpy as np

    _write_atomic(path, "wb", lambda handle: np.save(handle, np.asarray(array), allow_pickle=False))


@_naming_the_file
def write_npz_atomic(path: Path, arrays: dict, *, compressed: bool = False) -> None:
    """Named numpy arrays as one .npz (never pickled), whole or not at all."""
    import numpy as np

    save = np.savez_compressed if compressed else np.savez
    _write_atomic(path, "wb", lambda handle: save(handle, **arrays))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


@_naming_the_file
def append_jsonl(path: Path, row: dict) -> None:
    """One line appended and flushed to disk (a live log: each line is whole before the next)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _not_utf8(path: Path, line: int, err: UnicodeDecodeError) -> HarnessError:
    return HarnessError(f"{path} is not UTF-8 text (line {line}: {err.reason})", "re-save it as UTF-8")


def read_error(path: Path, err: OSError) -> HarnessError:
    """One line naming a file that cannot be read (missing, a folder, no permission) and what to do,
    instead of an OSError traceback."""
    if isinstance(err, FileNotFoundError):
        return HarnessError(f"{path} does not exist", "check the path")
    if isinstance(err, IsADirectoryError):
        return HarnessError(f"{path} is a folder, not a file", "pass the file inside it")
    return HarnessError(f"cannot read {path}: {err.strerror or err}", "check the path and its permissions")


def read_text(path: Path) -> str:
    """A UTF-8 text file; any other encoding fails with one line naming the file and the line, and a
    file that cannot be read (missing, a folder, no permission) with one line naming it."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise read_error(path, err) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _not_utf8(path, data.count(b"\n", 0, err.start) + 1, err) from None


def check_utf8(path: Path) -> None:
    """Fail like read_text for a file that a library reads itself (datasets, pyarrow): those crash
    later, or load the bad bytes silently. Line by line, so a large file is never held whole."""
    with Path(path).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _not_utf8(path, number, err) from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path} is not valid JSON (line {err.lineno}: {err.msg})",
                           "delete or repair the file and run again") from err


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a bad line fails with its line number."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob("*.jsonl"))
        raise HarnessError(f"{path} is a folder, not a JSONL file",
                           f"pass a file inside it, e.g. {inside[0]}" if inside else "pass a .jsonl file")
    if not path.is_file():
        raise HarnessError(f"{path} does not exist", "check the path")
    rows = []
    with path.open("rb") as handle:  # bytes: a line that is not UTF-8 is reported with its number
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise _not_utf8(path, number, err) from None
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


def read_npy(path: Path, hint: str):
    """A .npy array, never unpickled. numpy calls any damaged file "pickled data", which misleads;
    say it is corrupt, and `hint` says how to get a good copy."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError):
        raise HarnessError(f"{path} is corrupt (not a readable numpy .npy array)", hint) from None
    except OSError as err:
        raise read_error(path, err) from None

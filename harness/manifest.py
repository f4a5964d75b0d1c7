"""A sweep's intended points, recorded when it starts or is submitted.

The results tree alone cannot say which points of a sweep were never started (they have no folder)
nor which command finishes it, so `pdl-bench sweep` writes <results>/.sweeps/<id>.json before it
runs or submits anything, and `pdl-bench status` reads it. The id is a hash of the sweep's point
folders: the same sweep run again (to resume it, or resubmitted) updates one manifest and appends
its launch to `launches`; a sweep over other points gets its own. Written atomically, under a lock,
as JSON (never pickle).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError
from harness.io import new_file_mode, read_json, write_json_atomic

SWEEPS_FOLDER = ".sweeps"  # hidden: the report's tree walk skips it (harness.store.is_point_folder_name)
MANIFEST_FORMAT = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestPoint(_Record):
    """One point of the sweep, as resolved when the sweep was launched."""

    path: str  # the point folder, relative to the results folder
    task: str
    model: str
    group: str  # PointConfig.group_key(): the points that differ only in loss, options and seed
    settings: dict[str, Any]  # what sets it apart in the sweep: loss, alpha, seed, each --grid key

    @property
    def label(self) -> str:
        return settings_label(self.settings)


class Launch(_Record):
    """One run or submission of the sweep."""

    launcher: Literal["local", "slurm"]
    time: str
    host: str
    pending: int  # points launched (the unfinished ones at that time)
    job_id: str | None = None  # the SLURM array job
    log_folder: str | None = None


class SweepManifest(_Record):
    format: int = MANIFEST_FORMAT
    id: str
    created: str
    command: list[str]  # the sweep command that finishes it: finished points are skipped
    points: list[ManifestPoint]
    launches: list[Launch] = Field(default_factory=list)


def settings_label(settings: dict[str, Any]) -> str:
    """A point of a sweep in words, e.g. `pdl alpha=0.5 seed=0 training.learning_rate=1e-5`."""
    rest = [f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in settings.items() if key != "loss"]
    return " ".join([str(settings.get("loss", "?")), *rest])


def sweep_id(task: str, point_paths: list[str]) -> str:
    """`<task>-<hash of the point folders>`: one id per set of points, whatever order they come in."""
    digest = hashlib.sha256(json.dumps(sorted(point_paths)).encode()).hexdigest()[:10]
    return f"{task}-{digest}"


def manifest_path(results_dir: Path, sweep: str) -> Path:
    return Path(results_dir) / SWEEPS_FOLDER / f"{sweep}.json"


def log_folder(results_dir: Path, sweep: str) -> Path:
    """Where the scheduler's logs of a sweep's jobs go: <results>/.sweeps/<id>.logs/<job>/."""
    return Path(results_dir) / SWEEPS_FOLDER / f"{sweep}.logs"


def record_launch(results_dir: Path, manifest: SweepManifest, launch: Launch) -> SweepManifest:
    """Write the manifest with `launch` appended to the launches already recorded for this sweep
    (read, merged and written under a file lock, so two launches at once both stay recorded)."""
    from filelock import FileLock

    path = manifest_path(results_dir, manifest.id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", mode=new_file_mode()):
            earlier = read_manifest(path) if path.is_file() else None
            merged = manifest.model_copy(update={
                "created": earlier.created if earlier else manifest.created,
                "launches": [*(earlier.launches if earlier else []), launch],
            })
            write_json_atomic(path, merged.model_dump(mode="json"))
    except OSError as err:
        raise HarnessError(f"cannot write the sweep manifest {path}: {err.strerror}",
                           "pass a writable --results-dir") from None
    return merged


def read_manifest(path: Path) -> SweepManifest:
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("format"), int) and data["format"] > MANIFEST_FORMAT:
        raise HarnessError(f"{path} has sweep manifest format {data['format']}, newer than this pdl-bench reads",
                           "upgrade pdl-bench to read it")
    try:
        return SweepManifest.model_validate(data)
    except ValidationError as err:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:3])
        raise HarnessError(f"{path} is not a pdl-bench sweep manifest ({problem})",
                           "move it out of the .sweeps folder; rerun the sweep command to write it again") from None


def read_manifests(results_dir: Path) -> tuple[list[SweepManifest], dict[Path, HarnessError]]:
    """Every sweep recorded under `results_dir`, oldest first, and each manifest that does not read
    (cut short, hand-edited, a newer format) with its error: one bad file hides no other sweep."""
    folder = Path(results_dir) / SWEEPS_FOLDER
    manifests, unreadable = [], {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            manifests.append(read_manifest(path))
        except HarnessError as err:
            unreadable[path] = err
    return sorted(manifests, key=lambda m: (m.created, m.id)), unreadable


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")

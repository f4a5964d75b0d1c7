"""Where each recorded sweep stands (`pdl-bench status`): per sweep, its points grouped as the tables
group them, each done / running / failed / pending, and the command that finishes the sweep.

The points come from the sweep's manifest (<results>/.sweeps/<id>.json, harness/manifest.py), so the
points never started are listed too; each point's state comes from harness.store.point_state, the
rule `table` and `report` use. Nothing is loaded but those small files and the locks' holder files.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.manifest import ManifestPoint, SweepManifest, read_manifests
from harness.render.cells import Grid, Row
from harness.render.terminal import text_table
from harness.store import PointStore, point_state, slurm_job_name

STATES = ("done", "running", "failed", "pending")  # what status shows; the store's other kinds are pending
ARM_SETTINGS = ("loss", "alpha", "seed")  # settings that vary inside one table group


@dataclass
class PointStatus:
    point: ManifestPoint
    state: str  # one of STATES
    detail: str  # running: holder and age; failed: the error's first line; pending: interrupted or not started
    info: dict[str, Any] = field(default_factory=dict)  # host, pid, job, age_s, error (for --format json)


@dataclass
class StatusReport:
    """What `status` shows: every readable sweep, and each manifest that does not read, with why."""

    sweeps: list["SweepStatus"]
    unreadable: dict[Path, HarnessError] = field(default_factory=dict)


@dataclass
class SweepStatus:
    manifest: SweepManifest
    points: list[PointStatus]

    def counts(self) -> dict[str, int]:
        return {state: sum(p.state == state for p in self.points) for state in STATES}

    def groups(self) -> list[tuple[str, list[PointStatus]]]:
        """(title, points) per task, model and group key: the groups `pdl-bench table` compares in."""
        groups: dict[tuple[str, str, str], list[PointStatus]] = {}
        for status in self.points:
            p = status.point
            groups.setdefault((p.task, p.model, p.group), []).append(status)
        return [(group_title(points[0].point), points) for points in groups.values()]

    @property
    def finish_command(self) -> str | None:
        """The sweep's own command (finished points are skipped), unless every point is done."""
        return None if self.counts()["done"] == len(self.points) else shlex.join(self.manifest.command)


def group_title(point: ManifestPoint) -> str:
    """`task / model`, plus the --grid settings the group's points share (e.g. a learning rate)."""
    extra = [f"{key}={value}" for key, value in point.settings.items() if key not in ARM_SETTINGS and key != "model"]
    return f"{point.task} / {point.model}" + (f" ({', '.join(extra)})" if extra else "")


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def point_status(results_dir: Path, point: ManifestPoint) -> PointStatus:
    state = point_state(PointStore(Path(results_dir) / point.path))
    holder = state.holder or {}
    info: dict[str, Any] = {}
    if holder:
        info = {"host": holder.get("host"), "pid": holder.get("pid"), "job": slurm_job_name(holder)}
        if "started_at" in holder:
            info["age_s"] = round(time.time() - float(holder["started_at"]), 1)
    if state.kind == "done":
        return PointStatus(point, "done", "")
    if state.kind == "running":
        who = f"{info['host']}, pid {info['pid']}" + (f", SLURM job {info['job']}" if info.get("job") else "")
        since = f", for {age(info['age_s'])}" if "age_s" in info else ""
        return PointStatus(point, "running", who + since if holder else state.detail, info)
    if state.kind == "unreadable":
        return PointStatus(point, "failed", state.detail, info)
    if state.kind == "failed":
        error = state.error.model_dump(mode="json")
        info = {"host": error["host"], "pid": error["pid"], "job": slurm_job_name(error), "error": error}
        return PointStatus(point, "failed", state.detail, info)
    return PointStatus(point, "pending", "" if state.kind == "not started" else f"{state.kind}: {state.detail}", info)


def sweep_statuses(results_dir: Path) -> StatusReport:
    root = Path(results_dir)
    if not root.is_dir():
        raise HarnessError(f"results folder {root} does not exist", "pass the --results-dir the sweep wrote to")
    manifests, unreadable = read_manifests(root)
    return StatusReport([SweepStatus(m, [point_status(root, p) for p in m.points]) for m in manifests], unreadable)


def unreadable_lines(report: StatusReport) -> list[str]:
    """One line per manifest that does not read: the file's error and what to do."""
    return [f"unreadable sweep manifest: {err.message}" + (f" ({err.hint})" if err.hint else "")
            for err in report.unreadable.values()]  # the message names the file


def render_text(report: StatusReport, results_dir: Path) -> str:
    if not report.sweeps:
        return "\n".join([*unreadable_lines(report),
                          f"no sweep recorded under {results_dir} (`pdl-bench sweep` records one in "
                          f"{results_dir}/.sweeps/); `pdl-bench table` lists single points"])
    parts = []
    for sweep in report.sweeps:
        m = sweep.manifest
        counts = ", ".join(f"{n} {state}" for state, n in sweep.counts().items())
        lines = [f"sweep {m.id}: {len(sweep.points)} points: {counts}"]
        if m.launches:
            last = m.launches[-1]
            via = f"SLURM job {last.job_id}" if last.job_id else last.launcher
            lines.append(f"last launch: {via} from {last.host} at {last.time}, {last.pending} point(s)"
                         + (f"; logs in {last.log_folder}" if last.log_folder else ""))
        for title, points in sweep.groups():
            grid = Grid(["point", "state", "detail"], [False, False, False],
                        [Row([p.point.label, p.state, p.detail]) for p in points])
            lines += ["", title, text_table(grid)]
        if sweep.finish_command:
            lines += ["", f"to finish it: {sweep.finish_command}"]
        parts.append("\n".join(lines))
    if report.unreadable:
        parts.append("\n".join(unreadable_lines(report)))
    return "\n\n".join(parts)


def status_json(report: StatusReport, results_dir: Path) -> dict[str, Any]:
    return {"results_dir": str(results_dir), "sweeps": [{
        "id": s.manifest.id,
        "created": s.manifest.created,
        "counts": s.counts(),
        "finish_command": s.finish_command,
        "launches": [launch.model_dump(mode="json") for launch in s.manifest.launches],
        "points": [{"path": p.point.path, "label": p.point.label, "task": p.point.task, "model": p.point.model,
                    "group": p.point.group, "settings": p.point.settings, "state": p.state, "detail": p.detail,
                    **p.info} for p in s.points],
    } for s in report.sweeps], "unreadable_manifests": [
        {"path": str(path), "error": err.message, "hint": err.hint} for path, err in report.unreadable.items()]}

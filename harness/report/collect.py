"""Read a results tree into points and groups of comparable points, without loading any model.

Layout (written by harness/runner): results/<task>/<model_slug>/<point>/ with config.json,
metrics.json (written last: a point without it is incomplete), generations.jsonl, train_log.jsonl,
provenance.json and train_counts.npz. Archived (`*.replaced-*`), staging (`*.forced-run`) and hidden
folders (`.locks/`) are skipped (harness.store.is_point_folder_name decides).

Points are grouped by task, model and the rest of the config minus loss, loss options and seed: only
points in one group differ in nothing but the loss (and seed), so only they may share a table row set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from harness.comparison import BASELINE_LOSS
from harness.errors import HarnessError
from harness.io import read_jsonl
from harness.results import (
    CONFIG_FILE, ERROR_FILE, TRAIN_LOG_FILE, PointConfig, Provenance, arm_labels, generations_file,
    read_config, read_provenance, read_token_scores, read_train_counts,
)
from harness.store import PointStore, is_point_folder_name, point_state

# Top-level folders of results/ that hold reports, not tasks.
OUTPUT_FOLDERS = frozenset({"tables", "figures", "perf"})


@dataclass
class Point:
    """One finished training run: its config (typed, as read), scores and (lazily) its larger files."""

    path: Path
    record: PointConfig
    metrics: dict[str, Any]

    @cached_property
    def config(self) -> dict[str, Any]:
        return self.record.model_dump(mode="json")

    @property
    def task(self) -> str:
        return self.record.task_name

    @property
    def model(self) -> str:
        return self.record.model

    @property
    def loss(self) -> str:
        return self.record.loss

    @property
    def loss_options(self) -> dict[str, Any]:
        return self.record.loss_options

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def arm(self) -> tuple[str, str]:
        """What makes an arm: the loss and all its options (not the seed)."""
        return self.record.arm

    @property
    def alpha(self) -> float | None:
        value = self.loss_options.get("alpha")
        return None if value is None else float(value)

    @cached_property
    def provenance_record(self) -> Provenance:
        return read_provenance(self.path)

    @cached_property
    def provenance(self) -> dict[str, Any]:
        return self.provenance_record.model_dump(mode="json")

    def metric(self, name: str) -> dict[str, Any] | None:
        return self.metrics.get("metrics", {}).get(name)

    def generations(self, decoding: str | None = None) -> list[dict[str, Any]]:
        """The main decoding's generations, or a further decoding's by its name."""
        return read_jsonl(self.path / generations_file(decoding))

    def token_scores(self) -> dict[str, np.ndarray] | None:
        """The teacher-forced per-token scores (None for a point written before format 3)."""
        return read_token_scores(self.path)

    def train_log(self) -> list[dict[str, Any]]:
        path = self.path / TRAIN_LOG_FILE
        return read_jsonl(path) if path.is_file() else []

    def train_counts(self) -> np.ndarray | None:
        hint = "rerun the point with --force, or delete the file (its rare-token deltas are then skipped)"
        return read_train_counts(self.path, hint)


@dataclass(frozen=True)
class Missing:
    """A point folder that cannot be reported: still running, crashed, or unreadable."""

    path: Path
    reason: str


@dataclass
class Group:
    """Points that differ only in loss, loss options and seed: one table, one set of figures."""

    task: str
    model: str
    model_slug: str
    key: str  # short hash of the shared config
    config: dict[str, Any]  # the shared config (without loss, loss_options, seed)
    points: list[Point] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    distinction: str = ""  # what tells it from the other groups of its task and model, e.g. training.learning_rate=1e-05

    @property
    def seeds(self) -> list[int]:
        return sorted({p.seed for p in self.points})

    def metric_list(self) -> list[str]:
        """The task's metric list as its points were scored (the metric list is not part of the
        shared config: scores are derived data), in task order, each name once."""
        return list(dict.fromkeys(name for p in self.points for name in p.record.task.get("metrics") or []))

    def arms(self) -> list[tuple[str, str]]:
        """Arms in display order: the CE baseline first, then by loss, then alpha and options."""
        def order(arm):
            loss, options = arm
            alpha = json.loads(options).get("alpha")
            return (loss != BASELINE_LOSS, loss, -1.0 if alpha is None else float(alpha), options)

        return sorted({p.arm for p in self.points}, key=order)

    def points_of(self, arm: tuple[str, str]) -> dict[int, Point]:
        """seed -> point of one arm."""
        return {p.seed: p for p in self.points if p.arm == arm}

    def baseline(self) -> tuple[str, str] | None:
        return next((arm for arm in self.arms() if arm[0] == BASELINE_LOSS), None)

    def labels(self) -> dict[tuple[str, str], str]:
        return arm_labels(self.arms())

    def budget(self) -> str:
        """The training budget in words, for figure titles and table captions."""
        training = self.config.get("task", {}).get("training", {})
        steps = sorted({p.provenance.get("global_steps") for p in self.points} - {None})
        if steps:
            budget = f"{'/'.join(map(str, steps))} steps"
        elif training.get("max_steps", -1) > 0:
            budget = f"max {training['max_steps']} steps"
        else:
            budget = f"{training.get('num_train_epochs', '?')} epochs"
        n_train = sorted({(p.provenance.get("n_examples") or {}).get("train") for p in self.points} - {None})
        if n_train:
            budget += f", {'/'.join(map(str, n_train))} train examples"
        elif self.config.get("task", {}).get("limits", {}).get("train"):
            budget += f", <= {self.config['task']['limits']['train']} train examples"
        return budget

    @property
    def name(self) -> str:
        """`task / model`, plus what sets it apart from the other groups of that task and model."""
        return f"{self.task} / {self.model}" + (f" [{self.distinction}]" if self.distinction else "")

    @property
    def title(self) -> str:
        return f"{self.name} ({self.budget()})"


@dataclass
class Collection:
    root: Path
    groups: list[Group]
    missing: list[Missing]  # every incomplete point, also listed in its group when it has a config


def point_folders(root: Path):
    """(task folder, model folder, point folder) for every candidate point, in sorted order."""
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir() and is_point_folder_name(p.name)
                           and p.name not in OUTPUT_FOLDERS):
        for model_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            for point_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and is_point_folder_name(p.name)):
                yield point_dir


def _read_point(path: Path) -> tuple[PointConfig | None, Point | Missing]:
    """The point's config (None when unreadable) and the Point, or the reason it is missing. Both
    files are read through the result schema (harness/results.py), so a hand-edited or foreign file
    makes its point unreadable here instead of crashing a table or figure later."""
    if not (path / CONFIG_FILE).is_file():
        return None, Missing(path, "no config.json (not a finished point folder)")
    try:
        config = read_config(path)
    except HarnessError as err:
        return None, Missing(path, f"unreadable config.json ({err.message})")
    state = point_state(PointStore(path))
    if state.kind != "done":
        return config, Missing(path, state_reason(path, state))
    return config, Point(path, config, state.metrics.model_dump(mode="json"))


def unfinished_state(path: Path) -> str:
    """Why a point has no readable metrics.json, in words (harness.store.point_state decides)."""
    return state_reason(path, point_state(PointStore(path)))


def state_reason(path: Path, state) -> str:
    """A point's state in words: running (its lock is held by a live process), failed (its last run
    left error.json), unreadable (its metrics.json is), or interrupted (a rerun of the same
    command resumes it)."""
    if state.kind == "unreadable":
        return state.detail
    if state.kind == "running":
        return f"running ({state.detail})"
    if state.kind == "failed":
        return f"failed: {state.detail} (see {path / ERROR_FILE}; the same command retries it)"
    return f"{state.kind}: {state.detail}"


def collect(results_dir: Path) -> Collection:
    """Every point under `results_dir`, grouped; incomplete points are kept as Missing entries."""
    root = Path(results_dir)
    if not root.is_dir():
        raise HarnessError(f"results folder {root} does not exist",
                           "run `pdl-bench bench` or `pdl-bench sweep` first, or pass --results-dir")
    groups: dict[tuple[str, str, str], Group] = {}
    missing: list[Missing] = []
    for path in point_folders(root):
        config, item = _read_point(path)
        if isinstance(item, Missing):
            missing.append(item)
        if config is None:
            continue
        key = (config.task_name, config.model, config.group_key())
        if key not in groups:
            groups[key] = Group(task=key[0], model=key[1], model_slug=path.parent.name, key=key[2],
                                config=config.shared())
        if isinstance(item, Missing):
            groups[key].missing.append(item)
        else:
            groups[key].points.append(item)
    if not groups and not missing:
        raise HarnessError(f"no result points found under {root}",
                           "expected results/<task>/<model>/<point>/metrics.json; run `pdl-bench bench` first "
                           "or pass the right --results-dir")
    ordered = sorted(groups.values(), key=lambda g: (g.task, g.model, g.budget(), g.key))
    for group in ordered:
        check_one_point_per_arm_and_seed(group)
    name_distinctions(ordered)
    return Collection(root, ordered, missing)


def check_one_point_per_arm_and_seed(group: Group) -> None:
    """Two complete folders of one configuration with the same arm and seed (e.g. a loss plugin run
    under two versions, or folders of an earlier format that differed only in their metric list)
    would each stand for that seed, and a table would keep one of them arbitrarily: refuse instead."""
    seen: dict[tuple[tuple[str, str], int], Path] = {}
    for point in group.points:
        key = (point.arm, point.seed)
        if key in seen:
            raise HarnessError(f"{seen[key]} and {point.path} are the same arm ({point.loss} "
                               f"{point.arm[1]}) and seed {point.seed} of one configuration of {group.task}",
                               "move one of them out of the results folder (keep the one you mean to report)")
        seen[key] = point.path


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def name_distinctions(groups: list[Group]) -> None:
    """Set each group's `distinction`: the config keys (task keys as --set writes them) whose values
    differ between the groups of one task and model, so two tables of a learning-rate sweep are
    told apart by their titles, not only by a hash."""
    by_run: dict[tuple[str, str], list[Group]] = {}
    for group in groups:
        by_run.setdefault((group.task, group.model), []).append(group)
    for siblings in by_run.values():
        if len(siblings) < 2:
            continue
        flat = [_flat(g.config) for g in siblings]
        keys = sorted({k for f in flat for k in f if len({f2.get(k) for f2 in flat}) > 1})
        for group, values in zip(siblings, flat):
            group.distinction = ", ".join(f"{k.removeprefix('task.')}={values.get(k, '-')}" for k in keys)


def complete_groups(collection: Collection) -> list[Group]:
    """Groups with at least one finished point; fails clearly when nothing has finished yet."""
    groups = [g for g in collection.groups if g.points]
    if not groups:
        listed = "; ".join(f"{m.path}: {m.reason}" for m in collection.missing[:5])
        raise HarnessError(f"no finished point under {collection.root} (every point lacks metrics.json): {listed}",
                           "wait for the runs to finish, or rerun them with the same command to resume")
    return groups


def group_stems(groups: list[Group]) -> dict[str, str]:
    """File-name stem per group key: `<task>__<model>`, plus the config hash when that is ambiguous."""
    seen: dict[tuple[str, str], int] = {}
    for g in groups:
        seen[(g.task, g.model_slug)] = seen.get((g.task, g.model_slug), 0) + 1
    return {g.key: f"{g.task}__{g.model_slug}" + (f"__{g.key}" if seen[(g.task, g.model_slug)] > 1 else "")
            for g in groups}

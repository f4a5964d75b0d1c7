"""The result files of one point, typed, and the rules every reader and writer shares.

One module decides (a) what a point's files hold (pydantic models with a format version written and
checked on read, like lm-evaluation-harness's result schema), (b) what identifies a point (the hash
in its folder name), (c) when two arms are paired (comparable), and (d) how arms are labelled. The
runner writes through it; `bench`, the tables, figures and report and the synthetic test trees read
and write through it, so they cannot disagree.

Layout: <results>/<task>/<model slug>/<point>/ holding the files named below.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError
from harness.io import read_json, write_json_atomic

FORMAT_VERSION = 2  # 1: the whole task dump was hashed; 2: only what can change the numbers
DEFAULT_RESULTS_DIR = Path("results")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"  # written last: its presence means the point is complete
GENERATIONS_FILE = "generations.jsonl"
PROVENANCE_FILE = "provenance.json"
TRAIN_LOG_FILE = "train_log.jsonl"
TRAIN_COUNTS_FILE = "train_counts.npy"
CHECKPOINTS = "checkpoints"

# Task keys that cannot change a point's numbers, so they stay out of its identity: documentation,
# a suggestion shown by `pdl-bench tasks` (offline_model: the model that ran is `model`), the sweep
# grid (alphas), recorded sizes, and how often the Trainer logs and checkpoints (a resumed run ends
# byte-identical to an uninterrupted one) or whether checkpoints are kept.
IDENTITY_EXCLUDED_TASK_KEYS = ("description", "license", "citation", "offline_model", "alphas", "expected_sizes",
                               "training.logging_steps", "training.save_steps", "training.keep_checkpoints")
# What may differ between the points of one comparison (its arms and seeds); the rest must match.
NON_SHARED_KEYS = ("loss", "loss_options", "seed")
# Recorded facts about a run that paired arms must share (beyond their configs).
PAIRED_PROVENANCE = ("init_hash", "data_order_hash", "seed", "precision", "training_path", "world_size")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointConfig(_Record):
    """config.json: the fully resolved request that made a point (task dump, model, loss, seed...)."""

    format: int = FORMAT_VERSION
    task: dict[str, Any]
    model: str
    loss: str
    loss_options: dict[str, Any] = Field(default_factory=dict)
    seed: int
    data_dir: str | None = None
    fast: Literal["auto", "on", "off"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"

    @property
    def task_name(self) -> str:
        return self.task["name"]

    @property
    def arm(self) -> tuple[str, str]:
        """What makes an arm: the loss and all its options (not the seed)."""
        return self.loss, json.dumps(self.loss_options, sort_keys=True)

    def identity(self) -> dict[str, Any]:
        """Everything that can change this point's numbers: task data, prompts, budget, metrics,
        model, loss and options, seed, data folder and training/generation path requests. Not the
        documentation keys, and not the file format."""
        data = self.model_dump(mode="json", exclude={"format"})
        data["task"] = _without(data["task"], IDENTITY_EXCLUDED_TASK_KEYS)
        return data

    def digest(self) -> str:
        """The 8-hex hash in the point's folder name."""
        return _hash(self.identity())[:8]

    def shared(self) -> dict[str, Any]:
        """The identity without the arm keys: equal for all arms (and seeds) of one comparison."""
        return {k: v for k, v in self.identity().items() if k not in NON_SHARED_KEYS}

    def group_key(self) -> str:
        return _hash(self.shared())[:8]

    def folder_name(self) -> str:
        """e.g. `pdl-a0.5-s0-1a2b3c4d`, `ce-s1-9f8e7d6c` (HELM style: named by its arguments)."""
        parts = [slug(self.loss)]
        if "alpha" in self.loss_options:
            parts.append(f"a{float(self.loss_options['alpha']):g}")
        return "-".join(parts + [f"s{self.seed}", self.digest()])



def point_path(results_dir: Path, config: PointConfig, model_slug: str) -> Path:
    return Path(results_dir) / slug(config.task_name) / slug(model_slug) / config.folder_name()


class MetricRecord(_Record):
    """One metric of one point, with its bootstrap interval (harness.metrics.MetricResult)."""

    name: str
    level: str
    higher_is_better: bool | None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    details: dict[str, Any] = Field(default_factory=dict)


class ProfileBucket(BaseModel):
    model_config = ConfigDict(extra="allow")

    bucket: int | str
    prediction_share: float
    reference_share: float


class RareTokenProfile(BaseModel):
    model_config = ConfigDict(extra="allow")

    buckets: list[ProfileBucket] = Field(default_factory=list)


class PointMetrics(_Record):
    """metrics.json: every metric with its CI, the rare-token profile and plain validation CE."""

    format: int = FORMAT_VERSION
    metrics: dict[str, MetricRecord]
    rare_token_profile: RareTokenProfile = Field(default_factory=RareTokenProfile)
    n_test: int
    validation_ce: float | None = None


class Provenance(BaseModel):
    """provenance.json: what made the numbers. The fields the pairing rule and the tables read are
    typed; the rest (versions, device, timings, frequencies...) is kept as it was recorded."""

    model_config = ConfigDict(extra="allow")

    format: int = FORMAT_VERSION
    seed: int | None = None
    init_hash: str | None = None
    data_order_hash: str | None = None
    precision: str | None = None
    training_path: str | None = None
    world_size: int | None = None
    global_steps: int | None = None
    n_examples: dict[str, int | None] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per phase: load_s, train_s, ...
    peak_memory: dict[str, Any] = Field(default_factory=dict)  # harness.runner.memory.Phases.record()


def _without(data: dict[str, Any], dotted_keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of `data` without the (dotted) keys."""
    out = dict(data)
    for key in dotted_keys:
        head, _, rest = key.partition(".")
        if rest and isinstance(out.get(head), dict):
            out[head] = _without(out[head], (rest,))
        elif not rest:
            out.pop(head, None)
    return out


def _hash(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _read(path: Path, model: type[BaseModel]):
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("format"), int) and data["format"] > FORMAT_VERSION:
        raise HarnessError(f"{path} has result format {data['format']}, newer than this pdl-bench reads "
                           f"({FORMAT_VERSION})", "upgrade pdl-bench to read it")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in err.errors()[:3])
        raise HarnessError(f"{path.name}: {problems}", f"{path} is not a pdl-bench result file; "
                           "rerun the point with --force, or remove the folder") from None


def read_config(folder: Path) -> PointConfig:
    return _read(Path(folder) / CONFIG_FILE, PointConfig)


def read_metrics(folder: Path) -> PointMetrics:
    return _read(Path(folder) / METRICS_FILE, PointMetrics)


def read_provenance(folder: Path) -> Provenance:
    """A point's provenance; a folder without one (hand-made) reads as empty."""
    path = Path(folder) / PROVENANCE_FILE
    return _read(path, Provenance) if path.is_file() else Provenance()


def write_record(folder: Path, record: PointConfig | PointMetrics | Provenance) -> Path:
    names = {PointConfig: CONFIG_FILE, PointMetrics: METRICS_FILE, Provenance: PROVENANCE_FILE}
    path = Path(folder) / names[type(record)]
    write_json_atomic(path, record.model_dump(mode="json"))
    return path


def pairing_problems(config_a: PointConfig, provenance_a: Provenance,
                     config_b: PointConfig, provenance_b: Provenance) -> list[str]:
    """Why two arms may not be compared (an empty list when they may): their identities must
    differ only in the loss and its options, and what was recorded when they ran (initial weights,
    data order, seed, precision, training path, processes) must match. The one rule for `bench`,
    the tables, figures and report."""
    shared_a, shared_b = config_a.shared(), config_b.shared()
    problems = [f"configs differ in {key}" for key in sorted(set(shared_a) | set(shared_b))
                if shared_a.get(key) != shared_b.get(key)]
    if config_a.seed != config_b.seed:
        problems.append(f"seeds differ ({config_a.seed} vs {config_b.seed})")
    for key in PAIRED_PROVENANCE:
        left, right = getattr(provenance_a, key), getattr(provenance_b, key)
        if left != right:
            problems.append(f"{key} differs ({left} vs {right})")
    return problems


def arm_labels(arms: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Short unique labels: `ce`, `pdl(alpha=0.5)`, plus any option that tells two such arms apart."""
    base = {}
    for loss, options in arms:
        opts = json.loads(options)
        base[(loss, options)] = f"{loss}(alpha={float(opts['alpha']):g})" if "alpha" in opts else loss
    labels = {}
    for arm, label in base.items():
        twins = [json.loads(o) for (_, o), lab in base.items() if lab == label]
        if len(twins) > 1:
            opts = json.loads(arm[1])
            differing = sorted(k for k in opts if k != "alpha" and any(t.get(k) != opts[k] for t in twins))
            extra = ", ".join(f"{k}={opts[k]}" for k in differing)
            label = label[:-1] + f", {extra})" if label.endswith(")") else f"{label}({extra})"
        labels[arm] = label
    return labels

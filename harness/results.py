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
import zipfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError
from harness.io import read_error, read_json, read_npy, write_json_atomic, write_npz_atomic
from harness.task import default_decodings

# 1: the whole task dump was hashed; 2: only what can change the numbers; 3: metrics.json adds what
# is measured while the trained model is loaded (likelihood by frequency, the further decodings);
# 4: the metric list leaves the identity (scores are derived from the stored generations and are
# recomputed by `pdl-bench rescore`), and each metric record carries its metric's version
FORMAT_VERSION = 4
LOAD_TIME_MEASUREMENTS_FORMAT = 3  # points of an earlier format lack them: "not measured", never 0
DEFAULT_RESULTS_DIR = Path("results")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"  # written last: its presence means the point is complete
GENERATIONS_FILE = "generations.jsonl"  # the main decoding (the task's `generation`)
TOKEN_SCORES_FILE = "token_scores.npz"  # teacher-forced NLL and top-1 hit of every test reference token
EXAMPLE_SCORES_FILE = "example_scores.npz"  # each decoding's example-level metric values per test example
PROVENANCE_FILE = "provenance.json"
TRAIN_LOG_FILE = "train_log.jsonl"
TRAIN_COUNTS_FILE = "train_counts.npz"  # the counted token ids and their counts, compressed (a few KB)
DENSE_TRAIN_COUNTS_FILE = "train_counts.npy"  # the dense array points written before 2026-11-30 hold
CHECKPOINTS = "checkpoints"
ERROR_FILE = "error.json"  # a failed point: what went wrong, where and when (never beside a metrics.json)
MODEL_FOLDER = "model"  # training.keep final|checkpoints: the trained model, loadable with from_pretrained
ADAPTER_FOLDER = "adapter"  # the same under LoRA: only the adapter (peft), on top of config.json's model
TENSORBOARD_FOLDER = "tensorboard"  # report_to=tensorboard: the event files

# Task keys that cannot change a point's numbers, so they stay out of its identity: documentation,
# a suggestion shown by `pdl-bench tasks` (offline_model: the model that ran is `model`), the sweep
# grid (alphas), recorded sizes, and how often the Trainer logs and checkpoints (a resumed run ends
# byte-identical to an uninterrupted one) or whether checkpoints are kept.
# What a run keeps (training.keep; keep_checkpoints before it) and where it reports its curves
# (report_to, run_name, project) cannot change its numbers either.
IDENTITY_EXCLUDED_TASK_KEYS = ("description", "license", "citation", "offline_model", "alphas", "expected_sizes",
                               "training.logging_steps", "training.save_steps", "training.keep_checkpoints",
                               "training.keep", "training.report_to", "training.run_name", "training.project")
# Task keys that choose only what is computed from the stored generations: changing them rescores a
# point (harness.runner.scoring) and never retrains it, so they stay out of its identity.
SCORING_TASK_KEYS = ("metrics",)
# Keys added after format 2, left out of the identity while at their neutral value, so that adding
# an option never renames (and reruns) the points that do not use it.
IDENTITY_OMITTED_AT = {"training.peft": None, "decodings": default_decodings()}
# What may differ between the points of one comparison (its arms and seeds); the rest must match.
NON_SHARED_KEYS = ("loss", "loss_options", "loss_plugin", "seed")
# Recorded facts about a run that paired arms must share (beyond their configs).
PAIRED_PROVENANCE = ("init_hash", "data_order_hash", "seed", "precision", "batching", "world_size")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointConfig(_Record):
    """config.json: the fully resolved request that made a point (task dump, model, loss, seed...)."""

    format: int = FORMAT_VERSION
    task: dict[str, Any]
    model: str
    loss: str
    loss_options: dict[str, Any] = Field(default_factory=dict)
    loss_plugin: str | None = None  # `dist==version` of a loss from a plugin (None: builtin), harness.registry
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
        """Everything that can change what this point trains and generates: task data, prompts,
        budget, decodings, model, loss and options (and the plugin version of a plugin's loss), seed,
        data folder and training/generation path requests. Not the documentation keys, not the metric
        list (scores are derived data: `pdl-bench rescore`), and not the file format."""
        data = self.model_dump(mode="json", exclude={"format"} | ({"loss_plugin"} if self.loss_plugin is None else set()))
        neutral = tuple(key for key, value in IDENTITY_OMITTED_AT.items() if _lookup(data["task"], key) == value)
        data["task"] = _without(data["task"], IDENTITY_EXCLUDED_TASK_KEYS + SCORING_TASK_KEYS + neutral)
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
    version: int = 1  # the metric's definition version (harness.metrics.base.Metric); records before format 4: 1


class ProfileBucket(BaseModel):
    model_config = ConfigDict(extra="allow")

    bucket: int | str
    prediction_share: float
    reference_share: float


class RareTokenProfile(BaseModel):
    model_config = ConfigDict(extra="allow")

    buckets: list[ProfileBucket] = Field(default_factory=list)


class BucketLikelihood(_Record):
    """One training-frequency bucket of the test references, teacher-forced (None: no token)."""

    bucket: int | str
    n_tokens: int
    nll: float | None
    accuracy: float | None
    probability: float | None


class TokenLikelihood(_Record):
    """Likelihood by training frequency (harness.metrics.likelihood.likelihood_summary); test_ce is
    the teacher-forced CE of the test references, the pooled mean of their token scores, which the
    buckets average to, weighted by their token counts (docs/metrics.md: how earlier points
    computed it)."""

    n_buckets: int
    n_tokens: int
    test_ce: float | None
    path: str | None = None
    buckets: list[BucketLikelihood]


class DecodingMetrics(_Record):
    """One further decoding of the test prompts (the task's `decodings`): its settings and the
    same metrics and rare-token profile as the main decoding, from generations-<name>.jsonl."""

    settings: dict[str, Any]
    metrics: dict[str, MetricRecord]
    rare_token_profile: RareTokenProfile = Field(default_factory=RareTokenProfile)
    n_test: int


class PointMetrics(_Record):
    """metrics.json: every metric with its CI, the rare-token profile and plain validation CE; from
    format 3 also the likelihood by frequency and each further decoding's metrics. A point of an
    earlier format did not measure these: they read as None ("not measured"), never as zero."""

    format: int = FORMAT_VERSION
    metrics: dict[str, MetricRecord]
    rare_token_profile: RareTokenProfile = Field(default_factory=RareTokenProfile)
    n_test: int
    validation_ce: float | None = None
    token_likelihood: TokenLikelihood | None = None
    decodings: dict[str, DecodingMetrics] | None = None
    rescored: dict[str, Any] | None = None  # when the scores were recomputed from the generations: time, git hash

    @property
    def measured_at_load(self) -> bool:
        """Whether this point made the measurements only a loaded model can make (format 3 on):
        one that did not cannot get them later, since points keep no weights by default."""
        return self.format >= LOAD_TIME_MEASUREMENTS_FORMAT


NOT_MEASURED = "not measured"  # how a table shows what a point of an earlier format did not measure
DECODING_SEPARATOR = "/"  # a further decoding's rows are named `<decoding>/<metric>` in every table


def decoding_metric(decoding: str, metric: str) -> str:
    return f"{decoding}{DECODING_SEPARATOR}{metric}"


def split_decoding(name: str) -> tuple[str | None, str]:
    """(decoding, metric) of a row name; decoding None for the main decoding's metrics."""
    decoding, separator, metric = name.partition(DECODING_SEPARATOR)
    return (decoding, metric) if separator else (None, name)


def generations_file(decoding: str | None = None) -> str:
    """The generations file of the main decoding (None) or of a further decoding by its name."""
    return GENERATIONS_FILE if decoding is None else f"generations-{decoding}.jsonl"


STOPPED = ("eos", "max_new_tokens")  # a generation row's `stopped`: ended by itself, or cut off


def finished_flags(rows: list[dict[str, Any]]) -> list[bool] | None:
    """Whether each generation row's output ended by itself (`stopped` == "eos"), or None when no row
    says (a point before result format 3, a plain predictions file): limit-share is then not measured."""
    stopped = [row.get("stopped") for row in rows]
    if all(s is None for s in stopped):
        return None
    bad = next((i for i, s in enumerate(stopped) if s not in STOPPED), None)
    if bad is not None:
        raise HarnessError(f"generation row {bad + 1} has stopped={stopped[bad]!r}",
                           f"`stopped` is one of {', '.join(map(repr, STOPPED))} on every row, or on none")
    return [s == "eos" for s in stopped]


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

    @property
    def batching(self) -> str | None:
        """How the training batches were formed (packed rows or padded batches; compiled or not):
        the part of the training path that paired arms must share. Whether the loss was computed
        in chunks is not part of it: a loss without the per-token weighted form (unlikelihood)
        needs the full logits, and both ways compute the same loss. Records without the run
        plan fall back to the whole training path."""
        plan = (self.model_extra or {}).get("plan")
        if not (isinstance(plan, dict) and "packed_rows" in plan):
            return self.training_path
        return ("packed rows" if plan["packed_rows"] else "padded batches") + (
            ", torch.compile" if plan.get("compile") else "")


class PointError(_Record):
    """error.json: why the last run of a point failed, whatever raised (a HarnessError, an
    out-of-memory error, any exception), and which process it was."""

    format: int = FORMAT_VERSION
    type: str  # the exception's class name, e.g. OutOfMemoryError
    message: str
    hint: str | None = None  # a HarnessError's hint: what to do about it
    traceback: str = ""
    host: str
    pid: int | None = None
    job_id: str | None = None  # SLURM_JOB_ID, and the array job/task when the run was an array task
    array_job_id: str | None = None
    array_task_id: str | None = None
    time: str  # ISO 8601, local time with its offset

    def first_line(self) -> str:
        """`Type: first line of the message` (a HarnessError: just the message, as the CLI prints
        it), for one status cell or summary line."""
        lines = self.message.strip().splitlines()
        if not lines:
            return self.type
        return lines[0] if self.type == "HarnessError" else f"{self.type}: {lines[0]}"


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


def _lookup(data: dict[str, Any], dotted_key: str) -> Any:
    for part in dotted_key.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


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


def read_error(folder: Path) -> PointError:
    return _read(Path(folder) / ERROR_FILE, PointError)


def write_record(folder: Path, record: PointConfig | PointMetrics | Provenance | PointError) -> Path:
    names = {PointConfig: CONFIG_FILE, PointMetrics: METRICS_FILE, Provenance: PROVENANCE_FILE,
             PointError: ERROR_FILE}
    path = Path(folder) / names[type(record)]
    write_json_atomic(path, record.model_dump(mode="json"))
    return path


def write_train_counts(folder: Path, counts) -> Path:
    """A point's training-target token counts, sparse and compressed: the dense array is mostly
    zeros (a 49k vocabulary, a few thousand tokens seen), 390 KB per point that a committed results
    tree does not need."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64)
    ids = np.flatnonzero(counts)
    path = Path(folder) / TRAIN_COUNTS_FILE
    write_npz_atomic(path, {"ids": ids.astype(np.int64), "counts": counts[ids], "size": np.array(counts.size)},
                     compressed=True)
    return path


def write_token_scores(folder: Path, scores) -> Path:
    """A point's teacher-forced per-token scores (harness.runner.evaluation.TokenScores), compressed:
    the likelihood tables and their paired deltas are rebuilt from it, without the model."""
    import numpy as np

    path = Path(folder) / TOKEN_SCORES_FILE
    write_npz_atomic(path, {"example": np.asarray(scores.example, dtype=np.int64),
                            "token": np.asarray(scores.token, dtype=np.int64),
                            "nll": np.asarray(scores.nll, dtype=np.float64),
                            "correct": np.asarray(scores.correct, dtype=bool)}, compressed=True)
    return path


def read_token_scores(folder: Path) -> dict | None:
    """The four arrays write_token_scores wrote (never unpickled), or None for a point without them."""
    import numpy as np

    path = Path(folder) / TOKEN_SCORES_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {key: saved[key] for key in ("example", "token", "nll", "correct")}
    except (ValueError, EOFError, KeyError, OSError, zipfile.BadZipFile):
        raise HarnessError(f"{path} is corrupt (not the token scores a point writes)",
                           "rerun the point with --force") from None


def outputs_digest(rows: list[dict]) -> bytes:
    """What a decoding's per-example scores were computed from: every output, its reference and how
    it ended (sha256 of the generations rows' texts and flags)."""
    texts = [[row["prediction"], row["reference"], row.get("stopped")] for row in rows]
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).digest()


def write_example_scores(folder: Path, scored: dict[str | None, tuple[list[dict], dict[str, tuple[str, Any]]]]) -> Path:
    """Per decoding (None: the main one): the digest of its generations rows and, per example-level
    metric, (its key: Metric.example_key, value per example). HELM's per-instance stats: a report reads them instead of
    computing them again (semantic similarity embeds every output), and `rescore` rewrites them."""
    import numpy as np

    arrays = {}
    for decoding, (rows, metrics) in scored.items():
        stem = generations_file(decoding).removesuffix(".jsonl")
        arrays[f"{stem}/outputs"] = np.frombuffer(outputs_digest(rows), dtype=np.uint8)
        for name, (key, values) in metrics.items():
            arrays[f"{stem}/{name}@{key}"] = np.asarray(values, dtype=np.float64)
    path = Path(folder) / EXAMPLE_SCORES_FILE
    write_npz_atomic(path, arrays, compressed=True)
    return path


def read_example_scores(folder: Path, decoding: str | None, rows: list[dict],
                        keys: dict[str, str]) -> dict[str, Any]:
    """{metric: value per example} stored for this decoding under the `keys` given (each metric's
    Metric.example_key: its version and machine setting), only when they
    were computed from exactly these generations rows; {} for a point without them (never unpickled;
    an unreadable file reads as none: the values are then computed again)."""
    import numpy as np

    path = Path(folder) / EXAMPLE_SCORES_FILE
    if not path.is_file():
        return {}
    stem = generations_file(decoding).removesuffix(".jsonl")
    try:
        with np.load(path, allow_pickle=False) as saved:
            if f"{stem}/outputs" not in saved or saved[f"{stem}/outputs"].tobytes() != outputs_digest(rows):
                return {}
            found = {name: saved[f"{stem}/{name}@{key}"] for name, key in keys.items() if f"{stem}/{name}@{key}" in saved}
            return {name: values for name, values in found.items() if len(values) == len(rows)}
    except (ValueError, EOFError, KeyError, OSError, zipfile.BadZipFile):
        return {}


def read_train_counts(folder: Path, hint: str):
    """The dense counts array of a point (either file form), or None when it has none."""
    for name in (TRAIN_COUNTS_FILE, DENSE_TRAIN_COUNTS_FILE):
        if (Path(folder) / name).is_file():
            return read_counts_file(Path(folder) / name, hint)
    return None


def read_counts_file(path: Path, hint: str):
    """Token counts as a dense array, from the sparse .npz a point writes or a dense .npy; never
    unpickled, and a damaged file is called corrupt (numpy would say "pickled data")."""
    import numpy as np

    if Path(path).suffix != ".npz":
        return read_npy(path, hint)
    try:
        with np.load(path, allow_pickle=False) as saved:
            counts = np.zeros(int(saved["size"]), dtype=np.int64)
            counts[saved["ids"]] = saved["counts"]
    except (ValueError, EOFError, KeyError, IndexError, TypeError, zipfile.BadZipFile):
        raise HarnessError(f"{path} is corrupt (not the sparse token counts a point writes)", hint) from None
    except OSError as err:
        raise read_error(path, err) from None
    return counts


def pairing_problems(config_a: PointConfig, provenance_a: Provenance,
                     config_b: PointConfig, provenance_b: Provenance) -> list[str]:
    """Why two arms may not be compared (an empty list when they may): their identities must
    differ only in the loss and its options, and what was recorded when they ran (initial weights,
    data order, seed, precision, how batches were formed, processes) must match. The one rule for `bench`,
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

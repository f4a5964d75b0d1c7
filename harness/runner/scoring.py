"""A point's scores, derived from its stored generations and training counts.

Scores are computed once at the end of a run and again whenever the metric list or a metric's
version changes (HELM's habit: metrics are recomputed from stored generations). The metric list is
not part of a point's identity, so adding a metric never reruns training or generation:
`rescore_point` rewrites only config.json's `metrics` and metrics.json's scores, each atomically,
and leaves the generations, timings and everything measured with the model loaded as they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable

from harness.errors import HarnessError
from harness.io import read_jsonl
from harness.results import (
    PointConfig, PointMetrics, finished_flags, generations_file, read_config, read_metrics,
    read_example_scores, read_train_counts, write_example_scores, write_record,
)
from harness.store import PointLock, PointStore


# Per decoding (None: the main one): its rows and, per example-level metric, (version, value per
# example): what harness.results.write_example_scores stores beside metrics.json.
ExampleScores = dict[str | None, tuple[list[dict], dict[str, tuple[int, Any]]]]


def score_point(metrics: list[str], rows: list[dict], tokenizer, train_counts, *,
                seed: int) -> tuple[dict[str, Any], dict[str, tuple[int, Any]]]:
    """One decoding's metrics with bootstrap CIs (seeded by the run's seed), plus its rare-token
    profile against the training frequencies; and each example-level metric's (version, value per
    example). A metric that needs how each output ended gets a record with no value when the rows
    do not say (generations from before result format 3)."""
    from harness.metrics import METRICS, MetricContext, needing_finished, rare_token_profile, score, token_ids_fn

    predictions = [r["prediction"] for r in rows]
    references = [r["reference"] for r in rows]
    tokenize = token_ids_fn(tokenizer)
    context = MetricContext(train_counts=train_counts, tokenize=tokenize)
    finished = finished_flags(rows)
    unmeasurable = [] if finished is not None else needing_finished(metrics)
    measurable = [name for name in metrics if name not in unmeasurable]
    results = score(predictions, references, metrics=measurable, context=context, seed=seed,
                    finished=finished) if measurable else {}
    records = {name: result.to_dict() for name, result in results.items()}
    for name in unmeasurable:
        records[name] = not_measured_record(METRICS.get(name), len(rows),
                                            "the generations do not record how each output ended")
    examples = {name: (METRICS.get(name).example_key(), result.examples) for name, result in results.items()
                if result.examples is not None}
    return {
        "metrics": {name: records[name] for name in metrics},
        "rare_token_profile": rare_token_profile(predictions, references, train_counts, tokenize),
        "n_test": len(rows),
    }, examples


def not_measured_record(metric, n: int, why: str) -> dict[str, Any]:
    """A metrics.json record of a metric the stored data cannot give: no value, and why (read as
    "not measured" by every table, never as zero)."""
    return {"name": metric.name, "level": metric.level, "higher_is_better": metric.higher_is_better, "value": None,
            "ci_low": None, "ci_high": None, "n": n, "details": {"not_measured": why}, "version": metric.version}


def score_decodings(metrics: list[str], rows: list[dict], further: dict[str, tuple[dict, list[dict]]], tokenizer,
                    train_counts, *, seed: int) -> tuple[dict[str, Any], ExampleScores]:
    """The scored part of metrics.json: the main decoding's scores, and under `decodings` each
    further decoding's settings and scores (`further`: name -> (settings, rows)); and every
    decoding's per-example values (ExampleScores)."""
    scored, examples = score_point(metrics, rows, tokenizer, train_counts, seed=seed)
    per_decoding: ExampleScores = {None: (rows, examples)}
    scored["decodings"] = {}
    for name, (settings, decoded) in further.items():
        record, values = score_point(metrics, decoded, tokenizer, train_counts, seed=seed)
        scored["decodings"][name] = {"settings": settings, **record}
        per_decoding[name] = (decoded, values)
    return scored, per_decoding


def out_of_date(record: PointMetrics, metrics: list[str]) -> str | None:
    """Why a point's stored scores are not those of `metrics` at their current versions, in words;
    None when they are (every decoding scored by exactly these metrics and versions)."""
    from harness.metrics import METRICS

    wanted = {name: METRICS.get(name).version for name in metrics}
    scored = [record.metrics, *((d.metrics for d in (record.decodings or {}).values()))]
    for stored in scored:
        missing, extra = sorted(set(wanted) - set(stored)), sorted(set(stored) - set(wanted))
        if missing or extra:
            return ", ".join([*(f"+{name}" for name in missing), *(f"-{name}" for name in extra)])
        changed = [f"{name} v{stored[name].version}->v{version}" for name, version in wanted.items()
                   if stored[name].version != version]
        if changed:
            return ", ".join(changed)
    return None


def missing_example_scores(folder: Path, record: PointMetrics) -> str | None:
    """"per-example scores not stored" when some decoding lacks an example-level metric's values
    for its current generations in example_scores.npz under its current key (a point scored before
    the file existed, whose generations changed since, or scored on a machine where rougeLsum's
    sentence splitter resolved otherwise); None when every one is there."""
    from harness.metrics import METRICS

    decodings = [None, *(record.decodings or {})]
    for decoding in decodings:
        scored = record.metrics if decoding is None else record.decodings[decoding].metrics
        wanted = {name: METRICS.get(name).example_key() for name, result in scored.items()
                  if result.level == "example" and result.value is not None}
        path = Path(folder) / generations_file(decoding)
        if wanted and (not path.is_file() or
                       set(read_example_scores(folder, decoding, read_jsonl(path), wanted)) != set(wanted)):
            return "per-example scores not stored"
    return None


def _stored_rows(folder: Path, decoding: str | None) -> list[dict]:
    path = folder / generations_file(decoding)
    if not path.is_file():
        raise HarnessError(f"{folder} has no {path.name}: its scores cannot be recomputed",
                           "rerun that point with --force (its generations were lost)")
    return read_jsonl(path)


@cache
def _tokenizer(model: str, trust_remote_code: bool):
    from harness.models import load_tokenizer

    return load_tokenizer(model, trust_remote_code=trust_remote_code)


def rescore_point(folder: Path, metrics: list[str], *, trust_remote_code: bool = False) -> str | None:
    """Recompute a complete point's scores with `metrics` when they are out of date; returns why it
    was rescored, or None when it already was up to date (nothing is written then).

    Holds the point's lock, so it never races a run of the same point. config.json is written
    first and metrics.json last, each atomically, so a kill leaves each file whole (old or new) and
    the next call, seeing metrics.json out of date, simply does it again.
    """
    from harness.metrics import METRICS

    for name in metrics:
        METRICS.get(name)  # unknown -> one line with did-you-mean, before anything is read
    folder = Path(folder)

    def stale(record: PointMetrics) -> str | None:
        return out_of_date(record, metrics) or missing_example_scores(folder, record)

    if stale(read_metrics(folder)) is None:
        return None  # the common case takes no lock: a read-only or busy tree can still be read
    lock = PointLock(PointStore(folder)).acquire()
    try:
        record = read_metrics(folder)  # again, under the lock: another process may have rescored it
        reason = stale(record)
        if reason is None:
            return None
        config = read_config(folder)
        rows = _stored_rows(folder, None)
        further = {name: (decoding.settings, _stored_rows(folder, name))
                   for name, decoding in (record.decodings or {}).items()}
        counts = read_train_counts(folder, "rerun that point with --force")
        if counts is None:
            raise HarnessError(f"{folder} has no training counts: its rare-token scores cannot be recomputed",
                               "rerun that point with --force")
        scored, examples = score_decodings(metrics, rows, further, _tokenizer(config.model, trust_remote_code),
                                           counts, seed=config.seed)
        write_example_scores(folder, examples)
        if out_of_date(record, metrics) is None:
            return reason  # only the per-example scores were missing: the scores themselves stand as they are
        if record.decodings is None:  # a point before result format 3 made no further decoding: not measured
            scored["decodings"] = None
        from harness.provenance import git_hash

        rescored = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": git_hash(), "why": reason}
        new_record = PointMetrics.model_validate({**record.model_dump(mode="json"), **scored, "rescored": rescored})
        write_record(folder, _with_metrics(config, metrics))
        write_record(folder, new_record)
        return reason
    finally:
        lock.release()


def _with_metrics(config: PointConfig, metrics: list[str]) -> PointConfig:
    """config.json as if the point had been run with `metrics` (its identity is the same)."""
    return config.model_copy(update={"task": {**config.task, "metrics": list(metrics)}})


def task_metrics(config: PointConfig) -> list[str]:
    """The metric list a point should carry now: its task's current definition when `pdl-bench
    tasks` lists a task of that name (an upgraded pdl-bench may score more), else the list it was
    run with (only out-of-date metric versions are then recomputed)."""
    from harness.task import default_tasks_dir, load_task

    name = config.task_name
    listed = {path.stem for path in default_tasks_dir().glob("*.yaml")}
    return list(load_task(name).metrics) if name in listed else list(config.task["metrics"])


@dataclass
class RescoreSummary:
    rescored: list[Path] = field(default_factory=list)
    up_to_date: list[Path] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (point, one line: what and what to do)

    def line(self) -> str:
        checked = len(self.rescored) + len(self.up_to_date) + len(self.problems)
        return (f"rescore: {len(self.rescored)} of {checked} finished points rescored from their stored generations, "
                f"{len(self.up_to_date)} already up to date" + (f", {len(self.problems)} could not be" if self.problems
                                                               else ""))


def rescore_points(targets: Iterable[tuple[Path, list[str]]], *, trust_remote_code: bool = False,
                   progress: bool = True) -> RescoreSummary:
    """Rescore each (complete point folder, metric list) that is out of date, with a progress bar.
    A point that cannot be rescored (no generations, being run by another process) is noted and
    the others go on."""
    from tqdm.auto import tqdm

    targets = list(targets)
    summary = RescoreSummary()
    for folder, metrics in tqdm(targets, desc="rescore", unit="point", disable=not progress or not targets):
        try:
            why = rescore_point(folder, metrics, trust_remote_code=trust_remote_code)
        except HarnessError as err:
            summary.problems.append((folder, f"{err.message} ({err.hint})" if err.hint else err.message))
            continue
        (summary.rescored if why is not None else summary.up_to_date).append(folder)
    return summary

"""Scores are derived data: the metric list leaves a point's identity, and `rescore` recomputes
them from the stored generations, atomically and idempotently, without training or generating."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import CONFIG_FILE, GENERATIONS_FILE, METRICS_FILE, PROVENANCE_FILE, read_config
from harness.runner.config import RunConfig
from harness.runner.point import resolve, run_point
from harness.runner.scoring import out_of_date, rescore_point
from tiny import build_style_task

REPO = Path(__file__).resolve().parents[1]
# A committed reference point of result format 3 (greedy and sampled generations, likelihood by frequency).
REAL_POINT = REPO / "results/reference/bible/smollm2-135m/ce-s0-e55adc71"
UNTOUCHED = ("provenance.json", "generations.jsonl", "generations-sampled.jsonl", "token_scores.npz",
             "train_counts.npz", "train_log.jsonl")


@pytest.fixture
def real_point(tmp_path) -> Path:
    if not (REAL_POINT / METRICS_FILE).is_file():
        pytest.skip(f"{REAL_POINT} is not in this checkout")
    copy = tmp_path / "results" / "bible" / "smollm2-135m" / REAL_POINT.name
    shutil.copytree(REAL_POINT, copy)
    return copy


def test_the_metric_list_is_not_part_of_a_points_identity(tmp_path):
    default = resolve(RunConfig(task="bible"), tmp_path)
    fewer = resolve(RunConfig(task="bible", overrides=["metrics=[rouge1,distinct-2]"]), tmp_path)
    assert fewer.task.metrics == ["rouge1", "distinct-2"] != default.task.metrics
    assert fewer.store.path == default.store.path
    # what does change the numbers still renames the point
    assert resolve(RunConfig(task="bible", overrides=["generation.max_new_tokens=8"]), tmp_path).store.path \
        != default.store.path


def test_a_point_named_before_the_metric_list_left_its_identity_is_still_found(real_point):
    """The committed folders were named by format 3's hash (which covered the metric list)."""
    results = real_point.parents[2]
    config = read_config(real_point)
    assert config.format == 3 and config.folder_name() != real_point.name
    # resolve it the way `make reference` does: the plan's overrides made this point
    from harness.reference_plan import read_plan
    from harness.runner.reference import reference_points

    run = next(run for run, settings in reference_points(read_plan(REPO / "results/reference"))
               if settings == {"task": "bible", "loss": "ce", "seed": 0})
    assert resolve(run, results).store.path == real_point
    # another request (a different budget) is another point
    assert resolve(run.model_copy(update={"overrides": [*run.overrides, "generation.max_new_tokens=8"]}), results).store.path \
        != real_point


def test_rescoring_a_real_point_recomputes_the_scores_and_nothing_else(real_point):
    before = {name: (real_point / name).read_bytes() for name in UNTOUCHED}
    old = json.loads((real_point / METRICS_FILE).read_text())
    metrics = [*read_config(real_point).task["metrics"], "distinct-3"]

    why = rescore_point(real_point, metrics)
    assert why == "+distinct-3"
    assert {name: (real_point / name).read_bytes() for name in UNTOUCHED} == before  # no training, no generation
    new = json.loads((real_point / METRICS_FILE).read_text())
    for section in ("validation_ce", "token_likelihood", "n_test", "format"):
        assert new[section] == old[section]
    # the same scores for the metrics it had (recomputed from the same generations and seed)
    for records_old, records_new in ((old["metrics"], new["metrics"]),
                                     (old["decodings"]["sampled"]["metrics"], new["decodings"]["sampled"]["metrics"])):
        assert set(records_new) == set(records_old) | {"distinct-3"}
        assert all({**records_new[name], "version": 1} == {**records_old[name], "version": 1} for name in records_old)
        assert 0 < records_new["distinct-3"]["value"] <= 1
    assert new["rescored"]["why"] == "+distinct-3" and new["rescored"]["git"]
    assert read_config(real_point).task["metrics"] == metrics
    # idempotent: a second call finds nothing to do and writes nothing
    stamp = (real_point / METRICS_FILE).stat().st_mtime_ns
    assert rescore_point(real_point, metrics) is None
    assert (real_point / METRICS_FILE).stat().st_mtime_ns == stamp


def test_a_new_metric_version_makes_the_scores_out_of_date(real_point, monkeypatch):
    from harness.metrics import METRICS
    from harness.results import read_metrics

    metrics = read_config(real_point).task["metrics"]
    assert out_of_date(read_metrics(real_point), metrics) is None
    bumped = replace(METRICS.get("distinct-2"), version=2)
    monkeypatch.setitem(METRICS._items, "distinct-2", bumped)
    assert out_of_date(read_metrics(real_point), metrics) == "distinct-2 v1->v2"
    assert rescore_point(real_point, metrics) == "distinct-2 v1->v2"
    assert json.loads((real_point / METRICS_FILE).read_text())["metrics"]["distinct-2"]["version"] == 2
    assert out_of_date(read_metrics(real_point), metrics) is None


KILL_DURING_METRICS_WRITE = """
import os, signal, sys
import harness.io
real_replace = os.replace
def replace(src, dst):
    if str(dst).endswith("metrics.json"):
        os.kill(os.getpid(), signal.SIGKILL)  # the new metrics.json is written to its temporary file, not renamed
    real_replace(src, dst)
harness.io.os.replace = replace
from harness.cli import main
sys.exit(main(["rescore", sys.argv[1], "--metrics", sys.argv[2], "--no-progress"]))
"""


def test_a_rescore_killed_mid_write_leaves_every_file_whole_and_the_next_run_finishes(real_point):
    metrics = ",".join([*read_config(real_point).task["metrics"], "distinct-3"])
    old = (real_point / METRICS_FILE).read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_METRICS_WRITE, str(real_point.parents[2]), metrics],
                            cwd=REPO, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert (real_point / METRICS_FILE).read_bytes() == old  # the old file, whole
    json.loads((real_point / CONFIG_FILE).read_text())  # whole (old or new)
    assert main(["rescore", str(real_point.parents[2]), "--metrics", metrics, "--no-progress"]) == 0
    assert "distinct-3" in json.loads((real_point / METRICS_FILE).read_text())["metrics"]
    assert main(["rescore", str(real_point.parents[2]), "--metrics", metrics, "--no-progress"]) == 0


def test_rescore_names_a_point_without_generations_and_goes_on(real_point, tmp_path, capsys):
    other = real_point.with_name("ce-s9-00000000")
    shutil.copytree(real_point, other)
    (other / GENERATIONS_FILE).unlink()
    code = main(["rescore", str(real_point.parents[2]), "--metrics", "distinct-1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "rescore: 1 of 2 finished points rescored" in out
    assert f"not rescored: {other}: {other} has no generations.jsonl: its scores cannot be recomputed" in out
    assert "Traceback" not in out


def test_rescore_refuses_an_unknown_metric_before_touching_anything(real_point, capsys):
    old = (real_point / METRICS_FILE).read_bytes()
    assert main(["rescore", str(real_point.parents[2]), "--metrics", "distinct-7"]) == 2
    assert "unknown metric 'distinct-7'" in capsys.readouterr().err
    assert (real_point / METRICS_FILE).read_bytes() == old


def test_asking_a_finished_point_for_other_metrics_rescores_it_without_training(tmp_path, tiny_causal_dir, capsys):
    task = build_style_task(tmp_path / "task", tiny_causal_dir)
    first = run_point(RunConfig(task=str(task)), tmp_path / "results", progress=False)
    timings = json.loads((first.path / PROVENANCE_FILE).read_text())["timings"]
    again = run_point(RunConfig(task=str(task), overrides=["metrics=[distinct-1,mean-length]"]),
                      tmp_path / "results", progress=False)
    assert again.skipped and again.path == first.path
    assert set(again.metrics["metrics"]) == {"distinct-1", "mean-length"}
    assert json.loads((first.path / PROVENANCE_FILE).read_text())["timings"] == timings
    assert "rescored" in capsys.readouterr().out


def as_before_format_3(point: Path) -> None:
    """Make a format-3 point folder what a point of result format 2 was: one decoding, generations
    that do not say how each output ended, no likelihood by frequency."""
    from harness.io import read_jsonl, write_jsonl_atomic

    rows = [{k: v for k, v in row.items() if k not in ("new_tokens", "stopped")}
            for row in read_jsonl(point / GENERATIONS_FILE)]
    write_jsonl_atomic(point / GENERATIONS_FILE, rows)
    for name in ("generations-sampled.jsonl", "token_scores.npz", "example_scores.npz"):
        (point / name).unlink(missing_ok=True)
    record = json.loads((point / METRICS_FILE).read_text())
    (point / METRICS_FILE).write_text(json.dumps({**record, "decodings": None, "token_likelihood": None}))


def test_rescoring_a_point_from_before_format_3_keeps_its_further_decodings_not_measured(real_point):
    as_before_format_3(real_point)
    metrics = [name for name in read_config(real_point).task["metrics"] if name != "limit-share"]
    rescore_point(real_point, metrics)
    assert rescore_point(real_point, [*metrics, "limit-share"]) == "+limit-share"
    new = json.loads((real_point / METRICS_FILE).read_text())
    assert new["decodings"] is None and new["token_likelihood"] is None  # still "not measured", not "none made"
    assert new["metrics"]["limit-share"]["value"] is None and new["metrics"]["limit-share"]["details"]["not_measured"]


def test_rougelsum_values_stored_under_one_sentence_splitter_are_not_read_under_another(tmp_path, monkeypatch):
    """rougeLsum's per-example values depend on the splitter "auto" resolved to where they were
    scored (punkt when its data is installed, else regex): they are keyed by it, so a machine that
    resolves otherwise computes them again instead of pairing one arm's regex values with the other
    arm's punkt values. rougeL reads no sentences: its stored values stand."""
    from harness.metrics import METRICS, text
    from harness.results import read_example_scores, write_example_scores

    rows = [{"prediction": "A cat sat. It slept.", "reference": "The cat sat. It slept well."}]
    keys = lambda: {name: METRICS.get(name).example_key() for name in ("rougeL", "rougeLsum")}  # noqa: E731
    monkeypatch.setattr(text, "_punkt_available", lambda: False)
    scored_here = keys()
    write_example_scores(tmp_path, {None: (rows, {"rougeL": (scored_here["rougeL"], [40.0]),
                                                  "rougeLsum": (scored_here["rougeLsum"], [50.0])})})
    assert set(read_example_scores(tmp_path, None, rows, keys())) == {"rougeL", "rougeLsum"}
    monkeypatch.setattr(text, "_punkt_available", lambda: True)
    assert keys()["rougeLsum"] != scored_here["rougeLsum"] and keys()["rougeL"] == scored_here["rougeL"]
    assert set(read_example_scores(tmp_path, None, rows, keys())) == {"rougeL"}


def test_per_example_scores_are_stored_and_a_report_reads_them_instead_of_computing_them(real_point, monkeypatch):
    """HELM's per-instance stats: scoring stores each example-level metric's value per example
    (example_scores.npz, keyed by a digest of the generations and the metric's version); a paired
    comparison given them gets the very numbers it would compute, without computing them (here:
    without embedding a sentence), and a changed output makes them unusable."""
    from harness.io import read_jsonl
    from harness.metrics import METRICS, MetricContext, score, semantic
    from harness.metrics.paired import SeedRun, compare_seeds
    from harness.metrics.suite import forget_estimates
    from harness.results import EXAMPLE_SCORES_FILE, read_example_scores, read_metrics

    (real_point / EXAMPLE_SCORES_FILE).unlink(missing_ok=True)
    metrics = read_config(real_point).task["metrics"]
    old = (real_point / METRICS_FILE).read_bytes()
    assert rescore_point(real_point, metrics) == "per-example scores not stored"
    assert (real_point / METRICS_FILE).read_bytes() == old  # the scores stand: only the file of values is written
    assert (real_point / EXAMPLE_SCORES_FILE).is_file()
    assert rescore_point(real_point, metrics) is None

    rows = read_jsonl(real_point / GENERATIONS_FILE)
    names = ["semantic-similarity", "rougeL", "empty-share"]
    stored = read_example_scores(real_point, None, rows, {name: METRICS.get(name).example_key() for name in names})
    assert set(stored) == set(names)
    record = read_metrics(real_point).metrics
    assert all(float(stored[name].mean()) == pytest.approx(record[name].value, rel=1e-12) for name in names)
    assert read_example_scores(real_point, "sampled", read_jsonl(real_point / "generations-sampled.jsonl"),
                               {"semantic-similarity": METRICS.get("semantic-similarity").example_key()})
    changed = [dict(rows[0], prediction=rows[0]["prediction"] + " more"), *rows[1:]]
    assert read_example_scores(real_point, None, changed, {"rougeL": METRICS.get("rougeL").example_key()}) == {}
    assert read_example_scores(real_point, None, rows, {"rougeL": f"v{METRICS.get('rougeL').version + 1}"}) == {}

    predictions = [r["prediction"] for r in rows]
    references = [r["reference"] for r in rows]
    other = predictions[1:] + predictions[:1]  # another arm's outputs: the same texts, shifted
    computed = compare_seeds([SeedRun(other, predictions, references, MetricContext())], ["semantic-similarity"],
                             n_boot=200, seed=0)["semantic-similarity"]
    # the other arm's values as its own scoring would have stored them
    known_other = {"semantic-similarity": score(other, references, metrics=["semantic-similarity"],
                                                n_boot=0)["semantic-similarity"].examples}
    forget_estimates()

    def no_embedding(*args, **kwargs):
        raise AssertionError("embedded again")

    monkeypatch.setattr(semantic, "similarities", no_embedding)
    read = compare_seeds([SeedRun(other, predictions, references, MetricContext(), None, None, known_other,
                                  {"semantic-similarity": stored["semantic-similarity"]})],
                         ["semantic-similarity"], n_boot=200, seed=0)["semantic-similarity"]
    assert (read.delta, read.ci_low, read.ci_high, read.p_value) == \
        (computed.delta, computed.ci_low, computed.ci_high, computed.p_value)


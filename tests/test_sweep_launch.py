"""Sweeps on one machine through the launcher's shared path (harness/runner/launch.py): the grid
(--grid), --dry-run, failures recorded in error.json, and `pdl-bench status`."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
from pathlib import Path

import pytest
from test_runner import task_file  # noqa: F401 - the same tiny task fixture
from test_store import hold_lock

from harness.cli import build_parser, main
from harness.commands._common import field_default, run_config
from harness.results import CONFIG_FILE, ERROR_FILE, METRICS_FILE, PROVENANCE_FILE, read_config
from harness.runner.config import RunConfig
from harness.runner.launch import run_arguments
from harness.runner.point import resolve
from harness.runner.sweep import grid
from harness.store import EARLIER_ERROR_PREFIX, PointStore


def point_folders(results: Path) -> list[Path]:
    return sorted(p for p in results.glob("tiny-bible/*/*") if p.is_dir() and not p.name.startswith("."))


def status(results: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["status", "--results-dir", str(results), "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_arguments_parse_back_into_the_same_point():
    """A point's command (what --dry-run prints and a SLURM task runs) is the point itself: the
    `run` command parses it back into an equal RunConfig, every field set away from its default."""
    run = RunConfig(task="tasks/my task.yaml", model="org/model", loss="pdl", seed=3, data_dir="data dir",
                    loss_options={"alpha": 1e-05, "normalization": "batch_weight_sum", "max_weight": 3.0},
                    overrides=["training.learning_rate=1e-5", "limits.train=4", "prompt.template='a: {source}'"],
                    trust_remote_code=True, push_to_hub="me/repo", fast="off", compile="on")
    unset = [name for name, f in RunConfig.model_fields.items() if getattr(run, name) == field_default(f)]
    assert unset == [], "give the new field a value here and a flag in run_arguments"
    args = build_parser().parse_args(["run", *run_arguments(run, Path("out dir"), force=True)])
    assert run_config(args, args.loss, None, args.seed) == run
    assert args.results_dir == Path("out dir") and args.force and args.no_progress


def test_the_grid_is_losses_x_alphas_x_seeds_x_every_grid_key():
    base = RunConfig(overrides=["limits.train=8"])
    points = grid(base, ["ce", "pdl"], [0.0, 1.0], [0, 1],
                  [("training.learning_rate", ["1e-5", "3e-5"]), ("generation.num_beams", ["1", "2"])])
    assert len(points) == (1 + 2) * 2 * 2 * 2  # ce once per seed, pdl per alpha
    assert len({json.dumps(settings, sort_keys=True) for _, settings in points}) == len(points)
    run = next(r for r, s in points if s == {"loss": "pdl", "alpha": 1.0, "seed": 1,
                                                            "training.learning_rate": "3e-5",
                                                            "generation.num_beams": "2"})
    assert run.loss_options == {"alpha": 1.0} and run.seed == 1
    assert run.overrides == ["limits.train=8", "training.learning_rate=3e-5", "generation.num_beams=2"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--grid", "training.learning_rate=1e-3,fast"], "training.learning_rate=fast"),
    (["--grid", "training.learning_rat=1e-3,2e-3"], "did you mean learning_rate"),
    (["--grid", "training.learning_rate=1e-3,,2e-3"], "none may be empty"),
    (["--grid", "seed=1,2", "--grid", "seed=3"], "given twice"),
    (["--grid", "model=a,b", "--model", "c"], "both choose the model"),
    (["--partition", "gpu"], "only apply to --launcher slurm"),
    (["--launcher", "slurm", "--launcher-config", "{config}"], "unknown_key"),
    (["--launcher", "slurm", "--launcher-config", "{missing}"], "launcher-missing.yaml does not exist"),
    (["--launcher", "slurm", "--launcher-config", "{folder}"], "is a folder, not a file"),
])
def test_bad_sweep_input_fails_before_anything_runs(task_file, tmp_path, capsys, extra, message):  # noqa: F811
    config = tmp_path / "launcher.yaml"
    config.write_text("launcher:\n  partition: debug\n  unknown_key: 1\n")
    results = tmp_path / "results"
    argv = ["sweep", "--task", str(task_file), "--losses", "ce", "--results-dir", str(results)]
    assert main(argv + [item.format(config=config, missing=tmp_path / "launcher-missing.yaml", folder=tmp_path)
                        for item in extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("pdl-bench sweep: error: ") and "Traceback" not in err, err
    assert not results.exists()  # nothing resolved into a folder, no manifest, no lock


@pytest.mark.slow
def test_a_grid_sweep_runs_what_its_dry_run_prints_and_its_tables_name_the_grid(task_file, tmp_path, capsys):  # noqa: F811
    results = tmp_path / "results"
    argv = ["sweep", "--task", str(task_file), "--losses", "ce", "--grid", "training.learning_rate=1e-3,2e-3",
            "--results-dir", str(results)]
    assert main([*argv, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" --set ")[-1].split()[0] for line in lines] == ["training.learning_rate=1e-3",
                                                                         "training.learning_rate=2e-3"]
    assert all(line.startswith("pdl-bench run --task ") for line in lines)
    assert not results.exists()  # a dry run runs and writes nothing
    assert main(shlex.split(lines[0])[1:]) == 0  # the printed command, run as printed
    [first] = point_folders(results)
    capsys.readouterr()

    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 points: 1 to run, 1 complete (skipped)" in out
    folders = point_folders(results)
    assert first in folders and len(folders) == 2 and all((f / METRICS_FILE).is_file() for f in folders)
    assert sorted(read_config(f).task["training"]["learning_rate"] for f in folders) == [1e-3, 2e-3]

    assert main(["table", "--results-dir", str(results), "--no-deltas"]) == 0
    titles = [line for line in capsys.readouterr().out.splitlines() if line.startswith("### ")]
    assert len(titles) == 2  # never one comparison mixing two learning rates
    assert "[training.learning_rate=0.001]" in titles[0] + titles[1]
    assert "[training.learning_rate=0.002]" in titles[0] + titles[1]


@pytest.mark.slow
def test_a_local_sweep_records_every_failure_and_status_shows_each_point(task_file, tmp_path, monkeypatch, capsys):  # noqa: F811
    """One point fails after training (an arbitrary ValueError), one before training (a CUDA-style
    RuntimeError), one is held by another process: the sweep finishes the rest, writes error.json,
    exits 1 with a summary; status shows done / failed / running / pending and the command that
    finishes the sweep, which then does."""
    from harness.runner import point as point_module
    from harness.runner import training

    results = tmp_path / "results"
    real_prepare, real_score, current = training.prepare_training, point_module.score_decodings, {}

    def prepare(**kwargs):
        run = current["run"] = kwargs["point"].run
        if run.loss == "pdl" and run.loss_options["alpha"] == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")
        return real_prepare(**kwargs)

    def score(*args, **kwargs):
        if current["run"].loss == "pdl":
            raise ValueError("scoring exploded")
        return real_score(*args, **kwargs)

    monkeypatch.setattr(training, "prepare_training", prepare)
    monkeypatch.setattr(point_module, "score_decodings", score)
    focal = resolve(RunConfig(task=str(task_file), loss="focal"), results).store
    holder = hold_lock(focal)
    argv = ["sweep", "--task", str(task_file), "--losses", "ce,pdl,focal", "--alphas", "0.5,1",
            "--results-dir", str(results), "--no-progress"]
    try:
        assert main(argv) == 1
        out = capsys.readouterr().out
        assert "sweep: 1 done, 2 failed, 1 taken" in out
        assert "FAILED pdl alpha=0.5 seed=0: ValueError: scoring exploded" in out
        assert "FAILED pdl alpha=1 seed=0: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB" in out
        assert f"TAKEN focal seed=0: {focal.path} is being run by another process (pid {holder.pid} on " in out

        folders = {f.name.rsplit("-", 1)[0]: f for f in point_folders(results)}
        assert sorted(folders) == ["ce-s0", "pdl-a0.5-s0", "pdl-a1-s0"]
        after = json.loads((folders["pdl-a0.5-s0"] / ERROR_FILE).read_text())
        assert after["type"] == "ValueError" and after["message"] == "scoring exploded"
        assert "Traceback" in after["traceback"] and "in score" in after["traceback"]
        assert (after["host"], after["pid"]) == (socket.gethostname(), os.getpid()) and after["time"]
        assert not (folders["pdl-a0.5-s0"] / METRICS_FILE).exists()
        before = json.loads((folders["pdl-a1-s0"] / ERROR_FILE).read_text())
        assert before["type"] == "RuntimeError" and before["message"].startswith("CUDA out of memory")
        # failed before training: the folder is kept with its config, so status can show it
        assert sorted(p.name for p in folders["pdl-a1-s0"].iterdir()) == [CONFIG_FILE, ERROR_FILE]

        assert main(["status", "--results-dir", str(results)]) == 0
        text = capsys.readouterr().out
        assert "4 points: 1 done, 1 running, 2 failed, 0 pending" in text
        assert re.search(r"pdl alpha=0\.5 seed=0 +failed +ValueError: scoring exploded", text)
        assert re.search(rf"focal seed=0 +running +{re.escape(socket.gethostname())}, pid {holder.pid}, for ", text)
        sweep = status(results, capsys)["sweeps"][0]
        states = {p["label"]: p["state"] for p in sweep["points"]}
        assert states == {"ce seed=0": "done", "pdl alpha=0.5 seed=0": "failed", "pdl alpha=1 seed=0": "failed",
                          "focal seed=0": "running"}
        running = next(p for p in sweep["points"] if p["state"] == "running")
        assert running["pid"] == holder.pid and running["host"] == socket.gethostname() and running["age_s"] >= 0
        failed = next(p for p in sweep["points"] if p["label"] == "pdl alpha=1 seed=0")
        assert failed["error"]["type"] == "RuntimeError" and failed["detail"].startswith("RuntimeError: CUDA out")
    finally:
        holder.kill()
        holder.wait()
    sweep = status(results, capsys)["sweeps"][0]
    assert sweep["counts"] == {"done": 1, "running": 0, "failed": 2, "pending": 1}
    finish = sweep["finish_command"]
    assert finish == shlex.join(["pdl-bench", *argv])

    monkeypatch.undo()  # whatever broke is fixed: the printed command finishes the sweep
    assert main(shlex.split(finish)[1:]) == 0
    assert "4 points: 3 to run, 1 complete (skipped)" in capsys.readouterr().out
    sweep = status(results, capsys)["sweeps"][0]
    assert sweep["counts"] == {"done": 4, "running": 0, "failed": 0, "pending": 0} and sweep["finish_command"] is None
    assert not (folders["pdl-a0.5-s0"] / ERROR_FILE).exists()  # a later success shows no old failure
    assert len(list(folders["pdl-a0.5-s0"].glob(EARLIER_ERROR_PREFIX + "*.json"))) == 1  # kept, aside
    assert len(sweep["launches"]) == 2


@pytest.mark.slow
def test_a_sweep_rescores_its_finished_points_whose_scores_are_out_of_date(task_file, tmp_path, capsys):  # noqa: F811
    """As `run` does for a finished point: from its stored generations, nothing trained or generated
    again; --dry-run rescores nothing."""
    results = tmp_path / "results"
    argv = ["sweep", "--task", str(task_file), "--losses", "ce", "--results-dir", str(results), "--no-progress"]
    assert main(argv) == 0
    [folder] = point_folders(results)
    provenance = (folder / PROVENANCE_FILE).read_bytes()
    scored = lambda: set(json.loads((folder / METRICS_FILE).read_text())["metrics"])  # noqa: E731
    fewer = [*argv, "--set", "metrics=[distinct-1,mean-length]"]
    assert scored() != {"distinct-1", "mean-length"}
    assert main([*fewer, "--dry-run"]) == 0
    assert scored() != {"distinct-1", "mean-length"}
    capsys.readouterr()

    assert main(fewer) == 0
    out = capsys.readouterr().out
    assert "1 points: 0 to run, 1 complete (skipped)" in out
    assert "rescore: 1 of 1 finished points rescored from their stored generations" in out
    assert scored() == {"distinct-1", "mean-length"}
    assert read_config(folder).task["metrics"] == ["distinct-1", "mean-length"]
    assert (folder / PROVENANCE_FILE).read_bytes() == provenance  # not trained or generated again
    assert main(fewer) == 0 and "0 of 1 finished points rescored" in capsys.readouterr().out


def test_status_without_a_recorded_sweep_says_so(tmp_path, capsys):
    assert main(["status", "--results-dir", str(tmp_path)]) == 0
    assert "no sweep recorded under" in capsys.readouterr().out
    assert status(tmp_path, capsys) == {"results_dir": str(tmp_path), "sweeps": [], "unreadable_manifests": []}
    assert main(["status", "--results-dir", str(tmp_path / "missing")]) == 2


def test_one_corrupt_manifest_hides_no_other_sweep_from_status(tmp_path, capsys):
    from harness.manifest import Launch, ManifestPoint, SweepManifest, manifest_path, record_launch

    point = ManifestPoint(path="t/m/ce-s0-12345678", task="t", model="m", group="g", settings={"loss": "ce", "seed": 0})
    good = SweepManifest(id="t-good", created="2026-01-01T00:00:00+0000", command=["pdl-bench", "sweep"],
                         points=[point])
    record_launch(tmp_path, good, Launch(launcher="local", time="2026-01-01T00:00:00+0000", host="h", pending=1))
    bad = manifest_path(tmp_path, "t-bad")
    bad.write_text(manifest_path(tmp_path, "t-good").read_text()[:50])  # cut short mid-write
    capsys.readouterr()
    assert main(["status", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sweep t-good: 1 points: 0 done, 0 running, 0 failed, 1 pending" in out and "ce seed=0" in out
    [line] = [line for line in out.splitlines() if "t-bad.json" in line]
    assert line.startswith("unreadable sweep manifest: ") and "not valid JSON" in line
    report = status(tmp_path, capsys)
    assert [s["id"] for s in report["sweeps"]] == ["t-good"]
    assert [m["path"] for m in report["unreadable_manifests"]] == [str(bad)]


@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_failure_record_outside_a_sweep_names_the_run(task_file, tmp_path, capsys, monkeypatch, command):  # noqa: F811
    """`pdl-bench run` (what a SLURM task runs) and `bench` record their failure too, with the
    SLURM job ids; bench stops at its first arm's failure."""
    results = tmp_path / "results"
    for name, value in (("SLURM_JOB_ID", "78"), ("SLURM_ARRAY_JOB_ID", "76"), ("SLURM_ARRAY_TASK_ID", "2")):
        monkeypatch.setenv(name, value)
    code = main([command, "--task", str(task_file), "--model", str(tmp_path / "missing-model"),
                 "--results-dir", str(results)])
    assert code == 2 and "missing-model" in capsys.readouterr().err
    [folder] = point_folders(results)
    error = json.loads((folder / ERROR_FILE).read_text())
    assert error["type"] == "HarnessError" and "missing-model" in error["message"] and error["hint"]
    assert (error["job_id"], error["array_job_id"], error["array_task_id"]) == ("78", "76", "2")
    assert PointStore(folder).failure().first_line() == error["message"].splitlines()[0]


def test_groups_of_one_task_and_model_are_titled_by_what_differs(tmp_path):
    from harness.report.collect import collect
    from harness.report.synthetic import task_config, write_point

    rows = [{"id": 0, "source": "s", "prediction": "p", "reference": "r"}]
    for rate in (1e-5, 3e-5):
        task = task_config()
        task["training"] = {**task.get("training", {}), "learning_rate": rate}
        write_point(tmp_path, task, "m", "ce", {}, 0, generations=rows, metric_values={"rouge1": 1.0})
    write_point(tmp_path, task_config("other"), "m", "ce", {}, 0, generations=rows, metric_values={"rouge1": 1.0})
    names = sorted(g.name for g in collect(tmp_path).groups)
    assert names == ["demo / m [training.learning_rate=1e-05]", "demo / m [training.learning_rate=3e-05]",
                     "other / m"]

"""A point's life under interruption, concurrency, forced reruns and bad input: results are never
wrong, lost or hidden, and bad input fails before any model is loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.runner.config import RunConfig
from harness.runner.point import resolve, run_point
from harness.results import METRICS_FILE
from harness.store import PointLock, PointStore
from harness.runner.trainer import last_complete_checkpoint
from test_runner import REPO, point, poison_after_step, task_file  # noqa: F401 - the same tiny task fixture
from test_store import hold_lock


def cli(args: list[str], env_extra: dict | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, **popen)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


# --- forced reruns --------------------------------------------------------------------------------

def test_force_is_refused_while_another_process_runs_the_point(task_file, tmp_path):
    first = run_point(point(task_file), tmp_path, progress=False)
    before = (first.path / METRICS_FILE).read_bytes()
    holder = hold_lock(PointStore(first.path))
    try:
        with pytest.raises(HarnessError, match="being run by another process"):
            run_point(point(task_file), tmp_path, force=True, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert (first.path / METRICS_FILE).read_bytes() == before  # nothing moved, nothing trained
    assert sorted(p.name for p in first.path.parent.iterdir()) == [first.path.name]


@pytest.mark.slow
def test_a_killed_forced_rerun_hides_nothing_and_a_finished_one_replaces_the_result(task_file, tmp_path):
    first = run_point(point(task_file), tmp_path, progress=False)
    args = ["run", "--task", str(task_file), "--results-dir", str(tmp_path), "--no-progress", "--force"]
    code, _, _ = finish(cli(args, {"PDL_BENCH_KILL_AFTER_SAVE": "2"}))
    assert code == -9
    assert (first.path / METRICS_FILE).is_file()  # the earlier result is still where tables look
    assert main(["table", "--results-dir", str(tmp_path)]) == 0
    code, out, err = finish(cli(args))
    assert code == 0, err
    archived = list(first.path.parent.glob(first.path.name + ".replaced-*"))
    assert len(archived) == 1 and (archived[0] / METRICS_FILE).is_file()
    assert (first.path / METRICS_FILE).is_file() and "earlier results moved to" in out
    assert not list(first.path.parent.glob("*.forced-run"))


# --- checkpoints ------------------------------------------------------------------------------------

def with_callback(prepare_training, make_callback):
    """prepare_training, whose Trainer also gets the callback `make_callback(TrainerCallback)` builds."""
    from transformers import TrainerCallback

    def prepare(**kwargs):
        setup = prepare_training(**kwargs)
        setup.trainer.add_callback(make_callback(TrainerCallback))
        return setup

    return prepare


def test_a_nan_gradient_stops_before_the_update_and_the_named_checkpoint_is_finite(task_file, tmp_path,
                                                                                   monkeypatch):
    import torch
    from safetensors.torch import load_file

    poison_after_step(monkeypatch, 1, lambda model: model.model.layers[0].mlp.down_proj.weight.register_hook(
        lambda grad: grad * float("nan")))  # from step 2 on, one weight's gradient is NaN; the loss stays finite
    run = point(task_file, overrides=["training.save_steps=1"])
    with pytest.raises(HarnessError, match="gradient norm became nan at step 2") as err:
        run_point(run, tmp_path, progress=False)
    checkpoints = resolve(run, tmp_path).store.checkpoints
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-1"]  # step 2 neither applied nor saved
    assert str(checkpoints / "checkpoint-1") in str(err.value)
    weights = load_file(checkpoints / "checkpoint-1" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_a_truncated_checkpoint_is_skipped_for_the_one_before(tmp_path):
    from safetensors.torch import save_file
    import torch

    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        save_file({"w": torch.ones(4)}, folder / "model.safetensors")
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    state = tmp_path / "checkpoint-4" / "trainer_state.json"
    state.write_text(state.read_text()[:5])  # a kill while transformers rewrote it in place
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    state.write_text(json.dumps({"global_step": 4}))
    weights = tmp_path / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-3])  # weights cut short
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"


@pytest.mark.slow
def test_a_point_whose_newest_checkpoint_is_truncated_still_finishes_identically(task_file, tmp_path):
    args = ["run", "--task", str(task_file), "--no-progress"]
    code, _, err = finish(cli(args + ["--results-dir", str(tmp_path / "clean")]))
    assert code == 0, err
    code, _, _ = finish(cli(args + ["--results-dir", str(tmp_path / "crash")], {"PDL_BENCH_KILL_AFTER_SAVE": "4"}))
    assert code == -9
    [crashed] = list((tmp_path / "crash").glob("tiny-bible/*/*"))
    state = crashed / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    state.write_text(state.read_text()[:40])
    code, _, err = finish(cli(args + ["--results-dir", str(tmp_path / "crash")]))
    assert code == 0, err
    [clean] = list((tmp_path / "clean").glob("tiny-bible/*/*"))
    assert (crashed / METRICS_FILE).read_bytes() == (clean / METRICS_FILE).read_bytes()


# --- signals ----------------------------------------------------------------------------------------

# A `pdl-bench run` that pauses mid-training, at the end of step 3 (checkpoint-2 is saved, step 3's
# update is not), having touched $PAUSED_MARKER: a signal sent then lands at a known point.
PAUSED_RUN = """
import os, pathlib, sys, time
from transformers import TrainerCallback
import harness.runner.training as training
class Pause(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            pathlib.Path(os.environ["PAUSED_MARKER"]).touch()
            time.sleep(120)
real = training.prepare_training
def paused(**kwargs):
    setup = real(**kwargs)
    setup.trainer.add_callback(Pause())
    return setup
training.prepare_training = paused
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigterm_says_so_and_leaves_a_resumable_point(task_file, tmp_path, capsys):
    """SIGTERM at step 3 (save_steps=2): the run says so, has named its folder, lets go of the
    point, checkpoint-2 stays, and the same command run again resumes from it and finishes the point."""
    args = ["run", "--task", str(task_file), "--results-dir", str(tmp_path / "results"), "--no-progress"]
    marker = tmp_path / "paused"
    run = subprocess.Popen([sys.executable, "-c", PAUSED_RUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env={**os.environ, "PYTHONPATH": str(REPO), "PAUSED_MARKER": str(marker)},
                           cwd=REPO)
    store = resolve(point(task_file), tmp_path / "results").store
    deadline = time.time() + 300
    while not marker.exists():
        assert run.poll() is None and time.time() < deadline, run.communicate()
        time.sleep(0.1)
    run.send_signal(signal.SIGTERM)
    code, out, err = finish(run)
    assert code == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err
    assert f"folder: {store.path}\n" in out  # named before any work: scripts/gpu_point.sh reads it
    assert PointLock(store).is_held_elsewhere() is False
    assert main(["table", "--results-dir", str(tmp_path / "results")]) == 2  # no finished point, and it says why
    checkpoint = store.checkpoints / "checkpoint-2"
    assert last_complete_checkpoint(store.checkpoints) == checkpoint  # what a rerun resumes from
    capsys.readouterr()
    assert main(args) == 0  # the same command
    out = capsys.readouterr().out
    assert f"resuming from {checkpoint}\n" in out and f"{store.path}: done" in out
    assert (store.path / METRICS_FILE).is_file()
    # That a resumed run ends with an uninterrupted run's metrics, byte for byte:
    # test_a_point_whose_newest_checkpoint_is_truncated_still_finishes_identically.


class SignalInFinalizer:
    """Sends SIGTERM to this process from __del__: the handler runs inside the finalizer, where
    Python only prints "Exception ignored" for its exception (as in the gc.collect() accelerate
    calls as training starts), so a run that trusted the exception alone would go on."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes after the kill: the pending handler runs here
            pass


def swallowed_exceptions(monkeypatch) -> list:
    """The exceptions Python swallows from here on ("Exception ignored in ..."), as their hook saw them."""
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(unraisable.exc_type))
    return seen


def test_a_stop_signal_whose_exception_was_swallowed_is_raised_at_the_next_check(monkeypatch):
    from harness.stopping import Terminated, raise_if_stopped, stop_signals

    swallowed = swallowed_exceptions(monkeypatch)
    with stop_signals():
        SignalInFinalizer()  # dropped at once: its finalizer runs, and the handler's exception is swallowed
        assert swallowed == [Terminated]
        with pytest.raises(Terminated):
            raise_if_stopped()
    raise_if_stopped()  # the stop belongs to that block only


def test_stop_signals_keep_an_ignored_sigint_and_give_the_handlers_back():
    """A job a script started in the background ignores Ctrl-C: it still does inside the block;
    SIGTERM gets the harness's handler there and the caller's after."""
    from harness.stopping import stop_signals

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        caller = signal.getsignal(signal.SIGTERM)
        with stop_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not caller
        assert signal.getsignal(signal.SIGTERM) is caller
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_sweep_stops_on_a_sigterm_swallowed_as_training_starts(task_file, tmp_path, monkeypatch, capsys):
    """The ablation's lost SIGTERM: the signal came while a garbage collection ran a finalizer, and
    the sweep finished the point and went on to the next. Now the first point stops at its next
    step, says so (exit 143), leaves no result, lets go of its lock, and no other point starts."""
    from harness.runner import training
    from harness.stopping import Terminated

    def swallow(base):
        class Swallow(base):
            def on_train_begin(self, args, state, control, **kwargs):
                SignalInFinalizer()

        return Swallow()

    swallowed = swallowed_exceptions(monkeypatch)
    monkeypatch.setattr(training, "prepare_training", with_callback(training.prepare_training, swallow))
    argv = ["sweep", "--task", str(task_file), "--losses", "ce,pdl", "--alphas", "1", "--seeds", "0",
            "--results-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 143
    out, err = capsys.readouterr()
    assert Terminated in swallowed and "terminated (SIGTERM)" in err
    assert out.count("folder: ") == 1
    [started] = [p for p in (tmp_path / "tiny-bible").glob("*/*") if p.is_dir()]
    assert not (started / METRICS_FILE).exists() and PointLock(PointStore(started)).is_held_elsewhere() is False
    assert not list(PointStore(started).checkpoints.glob("checkpoint-*"))  # stopped before step 1, not after 6


def slow_steps(seconds: float):
    """Each training step takes at least `seconds` more, so a run's training time is known to be long."""

    def make(base):
        class Slow(base):
            def on_step_end(self, args, state, control, **kwargs):
                time.sleep(seconds)

        return Slow()

    return make


@pytest.mark.parametrize("lora", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["full", "lora"])
def test_a_point_stopped_after_training_keeps_the_training_record_of_the_run_that_trained_it(
        task_file, tmp_path, monkeypatch, lora):
    from harness.stopping import Terminated
    from harness.io import read_jsonl
    from harness.results import PROVENANCE_FILE, TRAIN_LOG_FILE
    from harness.runner import generation, training

    def stopped(*args, **kwargs):  # SIGTERM while the trained model generates
        raise Terminated()

    original_prepare, original_generate = training.prepare_training, generation.generate_outputs
    monkeypatch.setattr(training, "prepare_training", with_callback(original_prepare, slow_steps(0.5)))
    monkeypatch.setattr(generation, "generate_outputs", stopped)
    run = point(task_file, overrides=["training.peft.method=lora"] if lora else [])
    with pytest.raises(Terminated):
        run_point(run, tmp_path, progress=False)
    store = resolve(run, tmp_path).store
    trained_log = read_jsonl(store.file(TRAIN_LOG_FILE))
    [summary] = [row for row in trained_log if "train_runtime" in row]
    assert summary["train_runtime"] >= 3 and summary["train_loss"] > 0  # 6 steps of >= 0.5 s

    monkeypatch.setattr(training, "prepare_training", original_prepare)
    monkeypatch.setattr(generation, "generate_outputs", original_generate)
    resumed = run_point(run, tmp_path, progress=False)
    assert read_jsonl(store.file(TRAIN_LOG_FILE)) == trained_log  # the record of the run that trained
    prov = json.loads(store.file(PROVENANCE_FILE).read_text())
    assert prov["timings"]["train_s"] >= summary["train_runtime"]
    assert prov["resumed"] == {"from_phase": "generate", "from_step": 6}
    assert prov["global_steps"] == 6  # and not one step more
    if lora:  # the case; the same numbers as a run never stopped
        clean = run_point(run, tmp_path / "clean", progress=False)
        assert (clean.path / METRICS_FILE).read_bytes() == (resumed.path / METRICS_FILE).read_bytes()


# --- bad input fails before a model loads --------------------------------------------------------

@pytest.fixture
def no_model_loads(monkeypatch):
    import harness.models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(harness.models, "load_model", refuse)


def test_a_metric_typo_fails_before_any_model_loads(task_file, tmp_path, no_model_loads):
    with pytest.raises(HarnessError, match="unknown metric 'rouge9'"):
        run_point(point(task_file, overrides=["metrics=[rouge1, rouge9]"]), tmp_path, progress=False)
    assert not list(tmp_path.iterdir())  # failed before taking the lock: no folder, no lock file


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_max_steps_must_be_positive(task_file, tmp_path, steps, capsys, no_model_loads):
    code = main(["run", "--task", str(task_file), "--results-dir", str(tmp_path), "--max-steps", steps])
    assert code == 2 and "--max-steps must be >= 1 (or -1: no step limit)" in capsys.readouterr().err
    with pytest.raises(HarnessError, match="training.max_steps"):
        run_point(point(task_file, overrides=[f"training.max_steps={steps}"]), tmp_path, progress=False)


def test_a_warmup_that_leaves_no_step_at_the_full_rate_is_warned_about(task_file, tmp_path, capsys):
    """transformers rounds warmup_ratio up to whole steps and its first warmup step trains at rate 0:
    with --max-steps 1 the only step changes no weight. pdl-bench warns (and changes no schedule,
    so no existing point's numbers change); --help says so."""
    warmup = ["training.warmup_ratio=0.05"]
    run_point(point(task_file, overrides=[*warmup, "training.max_steps=1"]), tmp_path, progress=False)
    err = capsys.readouterr().err
    assert ("warning: training.warmup_ratio 0.05 of 1 step is 1 step of warmup: no step trains at the full learning "
            "rate, and the first (here the only one) at rate 0") in err
    run_point(point(task_file, overrides=warmup), tmp_path, progress=False)  # 6 steps: 1 of warmup, as tasks run
    assert "warmup" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "no step at the full rate" in " ".join(capsys.readouterr().out.split())


def test_duplicate_example_ids_are_refused_naming_the_id_and_file(task_file, tmp_path, no_model_loads):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):
        text = (task_file.parent / "data" / f"{split}.jsonl").read_text()
        if split == "test":
            rows = [json.loads(line) for line in text.splitlines()]
            rows[3]["id"] = rows[1]["id"]
            text = "".join(json.dumps(r) + "\n" for r in rows)
        (data / f"{split}.jsonl").write_text(text)
    with pytest.raises(HarnessError, match=r"duplicate example id 'test-49'.*test\.jsonl"):
        run_point(point(task_file, data_dir=str(data)), tmp_path / "results", progress=False)


# --- which model a run uses ------------------------------------------------------------------------

def test_a_hub_task_defaults_to_its_documented_model_and_set_model_is_honoured(tmp_path):
    xsum = resolve(RunConfig(task="xsum"), tmp_path)
    assert xsum.model_ref == "HuggingFaceTB/SmolLM2-360M-Instruct" and "task's `model`" in xsum.model_origin
    assert xsum.model_ref == xsum.task.model  # what `pdl-bench tasks` and docs/tasks.md show
    chosen = resolve(RunConfig(task="xsum", overrides=["model=smollm2-135m"]), tmp_path)
    assert chosen.model_ref == "smollm2-135m" and chosen.model_origin == "--set model=..."
    flag = resolve(RunConfig(task="xsum", model="my/model"), tmp_path)
    assert flag.model_ref == "my/model" and flag.model_origin == "--model"
    bible = resolve(RunConfig(task="bible"), tmp_path)
    assert bible.model_ref == bible.task.model == "smollm2-135m"  # the embedded demo runs offline


# --- two processes, one point -------------------------------------------------------------------------

# A `pdl-bench run` that stalls before training (holding the point's lock), so another can meet it.
STALLED_RUN = """
import sys, time
import harness.runner.training as training
real = training.prepare_training
def stalled(**kwargs):
    time.sleep(120)
    return real(**kwargs)
training.prepare_training = stalled
from harness.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_two_runs_of_one_point_at_once_one_runs_the_other_names_it_and_a_killed_one_blocks_nothing(
        task_file, tmp_path):
    """(A sweep recording any failure and going on: tests/test_sweep_launch.py.)"""
    args = ["run", "--task", str(task_file), "--results-dir", str(tmp_path), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_JOB_ID": "77", "SLURM_ARRAY_JOB_ID": "76",
           "SLURM_ARRAY_TASK_ID": "1"}
    first = subprocess.Popen([sys.executable, "-c", STALLED_RUN, *args], env=env, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = resolve(point(task_file), tmp_path).store
    try:
        deadline = time.time() + 120
        while not (PointLock(store).is_held_elsewhere() and store.file("config.json").is_file()):
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.2)
        code, _, err = finish(cli(args))
        assert code == 2
        assert f"is being run by another process (pid {first.pid} on " in err and ", SLURM job 76_1, since " in err
    finally:
        first.kill()  # SIGKILL: no cleanup runs
        first.wait()
    from harness.report.collect import unfinished_state

    assert unfinished_state(store.path).startswith("interrupted: ")
    assert f"last run by pid {first.pid} on " in unfinished_state(store.path)
    code, out, err = finish(cli(args))
    assert code == 0, err
    assert f"{store.path}: done" in out and (store.path / METRICS_FILE).is_file()

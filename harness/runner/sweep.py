"""Sweeps on this machine: the grid of points, then every unfinished point in this process, or one
`pdl-bench run` process at a time per GPU slot (--gpus). SLURM submission is harness/runner/slurm.py;
both take their points and commands from harness/runner/launch.py."""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.runner.config import RunConfig
from harness.runner.launch import SweepPoint, point_command
from harness.stopping import raise_if_stopped
from harness.store import PointStore, PointTaken, failure_record, point_state


def loss_has_alpha(loss: str) -> bool:
    from harness.losses import LOSSES

    return "alpha" in LOSSES.get(loss).config_cls.model_fields


def grid(base: RunConfig, losses: list[str], alphas: list[float], seeds: list[int],
         axes: list[tuple[str, list[str]]] = ()) -> list[tuple[RunConfig, dict[str, Any]]]:
    """Every point of losses x alphas x seeds x each --grid axis, with the settings that set it
    apart. Losses without an alpha run once per seed; alpha losses once per (alpha, seed). A --grid
    axis (task key, values as text) adds `key=value` to the point's overrides, exactly as --set."""
    bad = [a for a in alphas if a < 0]
    if bad:
        raise HarnessError(f"alpha must be >= 0, got {bad}", "alpha = 0 is plain CE; use values like 0,0.5,1")
    keys = [key for key, _ in axes]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise HarnessError(f"--grid {repeated[0]} is given twice", f"list every value once: --grid {repeated[0]}=V1,V2")
    if base.model is not None and "model" in keys:
        raise HarnessError("--grid model=... and --model both choose the model",
                           "drop --model, or drop model from --grid")
    points = []
    for combination in itertools.product(*(values for _, values in axes)):
        chosen = dict(zip(keys, combination))
        overrides = [*base.overrides, *(f"{key}={value}" for key, value in chosen.items())]
        for seed in seeds:
            for loss in losses:
                options_list: list[dict[str, Any]] = (
                    [{**base.loss_options, "alpha": a} for a in alphas] if loss_has_alpha(loss) else [base.loss_options]
                )
                for options in options_list:
                    run = base.model_copy(update={"loss": loss, "loss_options": options, "seed": seed,
                                                  "overrides": overrides})
                    settings = {"loss": loss, **({"alpha": options["alpha"]} if "alpha" in options else {}),
                                "seed": seed, **chosen}
                    points.append((run, settings))
    return points


@dataclass(frozen=True)
class Outcome:
    """How one point of a launch ended: done, skipped (complete), failed, taken (another process
    runs it) or interrupted; detail is one line (the error, the holder, the log)."""

    label: str
    state: str
    detail: str = ""
    path: str = ""


def run_sweep(points: list[SweepPoint], results_dir: Path, *, force: bool, progress: bool) -> list[Outcome]:
    """Run the points in this process, in order. Any failure of a point (a bad input, an
    out-of-memory error, a corrupt file) is recorded in its error.json and the sweep goes on with
    the next point; only an interrupt (Ctrl-C, SIGTERM) stops it. Under torchrun, an error that is
    not the harness's own may have hit one rank only, so it ends the job (torchrun stops every
    rank) rather than leave the other ranks waiting in a collective."""
    from harness.runner import point as point_module
    from harness.runner.dist import process_state
    from harness.runner.failure import record_point_failure
    from harness.runner.memory import give_back_memory

    distributed = process_state().num_processes > 1
    outcomes = []
    for index, point in enumerate(points, 1):
        raise_if_stopped()  # a stop signal swallowed during the last point stops the sweep before the next
        failed = False
        try:
            result = point_module.run_point(point.run, results_dir, force=force or point.rerun, progress=progress)
            outcome = Outcome(point.label, "skipped (complete)" if result.skipped else "done", path=str(result.path))
        except PointTaken as err:
            outcome = Outcome(point.label, "taken", err.message, str(point.path))
        except Exception as err:
            if distributed and not isinstance(err, HarnessError):
                raise  # may have hit one rank only: going on would leave the others in a collective
            record_point_failure(point.run, results_dir, err, force=force or point.rerun)
            outcome, failed = Outcome(point.label, "failed", failure_record(err).first_line(), str(point.path)), True
        if failed:
            give_back_memory()  # again outside the except block, whose traceback held the point's model
        outcomes.append(outcome)
        print(f"[{index}/{len(points)}] {outcome.label}: {outcome.state}"
              + (f": {outcome.detail}" if outcome.detail else ""), flush=True)
    return outcomes


def gpu_slots(gpus: str, gpus_per_point: int) -> list[list[str]]:
    """--gpus 0,1,2,3 with --gpus-per-point 2 -> [["0", "1"], ["2", "3"]]: the devices each point
    process gets (a GPU left over is not used)."""
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if gpus_per_point < 1 or len(ids) < gpus_per_point:
        raise HarnessError(f"--gpus lists {len(ids)} GPU(s); each point needs --gpus-per-point {gpus_per_point}",
                           "list at least as many GPUs as each point uses (and at least 1 per point)")
    return [ids[start:start + gpus_per_point] for start in range(0, len(ids) - gpus_per_point + 1, gpus_per_point)]


def run_on_gpus(points: list[SweepPoint], results_dir: Path, *, force: bool, slots: list[list[str]]) -> list[Outcome]:
    """Run each point as its own `python -m harness run ...` process (the command a SLURM array
    task runs) on one slot of GPUs (CUDA_VISIBLE_DEVICES, see gpu_slots), one point per slot at a
    time, the next point going to the first free slot. Stopping the parent (Ctrl-C, SIGTERM)
    stops the children too, so none keeps running a point."""
    gpus_per_point = len(slots[0])
    work: queue.Queue[int] = queue.Queue()
    for index in range(len(points)):
        work.put(index)
    running: set[subprocess.Popen] = set()
    codes: dict[int, int] = {}
    lock = threading.Lock()

    def serve(slot: list[str]) -> None:  # one thread per slot: its next point as soon as it is free
        while True:
            try:
                index = work.get_nowait()
            except queue.Empty:
                return
            command = point_command(points[index].run, results_dir, force=force, gpus=gpus_per_point)
            with lock:
                child = subprocess.Popen(command, env={**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(slot)})
                running.add(child)
            codes[index] = child.wait()
            with lock:
                running.discard(child)

    print(f"{len(points)} point(s) over {len(slots)} slot(s) of {gpus_per_point} GPU(s): "
          + " ".join(",".join(slot) for slot in slots), flush=True)
    threads = [threading.Thread(target=serve, args=(slot,), daemon=True) for slot in slots]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)  # a timed join keeps Ctrl-C / SIGTERM deliverable
                raise_if_stopped()  # ...and one whose exception was swallowed
    except KeyboardInterrupt:
        while not work.empty():  # start nothing more
            work.get_nowait()
        with lock:
            children = list(running)
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        raise
    return [outcome_of(p, codes.get(i)) for i, p in enumerate(points)]


def outcome_of(point: SweepPoint, exit_code: int | None, ended: str = "") -> Outcome:
    """The outcome of a point that ran in another process (a worker, a SLURM task), read from the
    results tree: its folder's state decides, the exit code only says that something went wrong."""
    state = point_state(PointStore(point.path))
    if state.kind == "done":
        return Outcome(point.label, "done", path=str(point.path))
    if state.kind in ("failed", "unreadable", "running"):
        return Outcome(point.label, "taken" if state.kind == "running" else "failed", state.detail, str(point.path))
    why = ended or (f"exit code {exit_code}" if exit_code is not None else "never ran")
    return Outcome(point.label, "interrupted", f"{why}; no metrics.json and no error.json (rerun to resume)",
                   str(point.path))


def print_summary(outcomes: list[Outcome]) -> None:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        kind = outcome.state.split(" (")[0]  # "skipped (complete)" counts as skipped
        counts[kind] = counts.get(kind, 0) + 1
    print("sweep: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())), flush=True)
    for outcome in outcomes:
        if outcome.state in ("failed", "interrupted", "taken"):
            print(f"  {outcome.state.upper()} {outcome.label}: {outcome.detail}", flush=True)


def exit_code(outcomes: list[Outcome]) -> int:
    """1 when a point failed or was cut short; a point another process runs is not a failure."""
    return 1 if any(o.state in ("failed", "interrupted") for o in outcomes) else 0

"""Memory of a point: the peak of each phase, and memory given back when a point ends.

CPU peaks are the kernel's resident-set high-water mark (VmHWM), reset at the start of each phase
by writing 5 to /proc/self/clear_refs (Linux), so each phase reports its own peak. Where that
cannot be reset, each phase reports the process peak so far, and the record says so. On CUDA the
peak is torch.cuda.max_memory_allocated, reset per phase.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import re
import resource
import sys
import time
from pathlib import Path
from typing import Iterator

from harness.stopping import raise_if_stopped

GIB = 1024 ** 3
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_cpu_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _cpu_peak_bytes() -> int:
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak if sys.platform == "darwin" else peak * 1024


def _read_record(path: Path | None) -> dict:
    """What earlier runs of a point measured (Phases' record file); none, or an unreadable one
    (a kill cannot leave it half-written, but a disk can), counts as nothing measured."""
    if path is None or not path.is_file():
        return {}
    from harness.errors import HarnessError
    from harness.io import read_json

    try:
        record = read_json(path)
    except HarnessError:
        return {}
    return record if isinstance(record, dict) else {}


def _cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda if torch.cuda.is_available() else None


class Phases:
    """The phases of a point (`with phases.phase("train"): ...`): each one's wall time and its peak
    CPU RSS (and CUDA memory) in GiB, so provenance says which phase sets a point's peak.

    With a `record` file (the main process's, in the point's checkpoints folder) the measurements
    are saved there as each phase finishes (and at each `mark`), so a run that resumes the point
    reads what the runs before it measured (`earlier`) and keeps the phases they finished. Each
    save keeps what earlier runs recorded under what this run measured, so a run killed before it
    got as far as they did (e.g. right after loading) leaves their phases, marks and notes in place."""

    def __init__(self, record: Path | None = None):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.cuda: dict[str, float] = {}
        self.resettable = True
        self.record_file = record
        self.earlier = _read_record(record)
        self.marks: dict[str, dict[str, float]] = dict(self.earlier.get("marks", {}))  # phase -> {step: seconds}
        self.notes: dict[str, object] = dict(self.earlier.get("notes", {}))
        self._started: dict[str, float] = {}
        self._offsets: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        raise_if_stopped()  # a stop signal swallowed in the phase before ends the run here
        self.resettable = _reset_cpu_peak() and self.resettable
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        start = self._started[name] = time.perf_counter()
        finished = False
        try:
            yield
            raise_if_stopped()
            finished = True
        finally:
            self.seconds[f"{name}_s"] = self._offsets.get(name, 0.0) + time.perf_counter() - start
            self.cpu[name] = round(_cpu_peak_bytes() / GIB, 3)
            if cuda is not None:
                self.cuda[name] = round(cuda.max_memory_allocated() / GIB, 3)
            self._started.pop(name)
            if finished:  # an interrupted phase is run again, whole, by the resumed run
                self._save()

    def elapsed(self, name: str) -> float:
        """Seconds the running phase `name` has taken so far (with what earlier runs spent on it)."""
        return self._offsets.get(name, 0.0) + time.perf_counter() - self._started[name]

    def mark(self, name: str, step: int) -> None:
        """The running phase `name` has reached `step` (a checkpoint): a run resumed from there
        continues its time (`resume`)."""
        self.marks.setdefault(name, {})[str(step)] = round(self.elapsed(name), 4)
        self._save()

    def resume(self, name: str, step: int) -> None:
        """The running phase `name` continues from `step`, which earlier runs reached: their time
        to get there counts toward this phase (nothing is added when they left no mark there)."""
        reached = self.earlier.get("marks", {}).get(name, {})
        self.marks[name] = {s: t for s, t in reached.items() if int(s) <= step}
        self._offsets[name] = float(reached.get(str(step), 0.0))

    def finished_earlier(self) -> list[str]:
        """The phases an earlier run of this point finished, in the order it ran them."""
        return [key[: -len("_s")] for key in self.earlier.get("seconds", {})]

    def stopped_in(self) -> str:
        """The phase the run before this one stopped in: the first of this run's phases (after
        loading, which every run does) that no earlier run finished; "write" if they finished all."""
        done = {"load", *self.finished_earlier()}
        return next((key[: -len("_s")] for key in self.seconds if key[: -len("_s")] not in done), "write")

    def keep(self, name: str) -> None:
        """Phase `name` (just run again, trivially) is the one an earlier run did: its measurements."""
        self.seconds[f"{name}_s"] = self.earlier["seconds"][f"{name}_s"]
        for mine, theirs in ((self.cpu, self.earlier.get("cpu", {})), (self.cuda, self.earlier.get("cuda", {}))):
            if name in theirs:
                mine[name] = theirs[name]
        self._save()

    def note(self, key: str, value) -> None:
        """A fact a resumed run needs (e.g. the training summary), saved with the measurements."""
        self.notes[key] = value
        self._save()

    def _save(self) -> None:
        if self.record_file is None or not self.record_file.parent.is_dir():
            return  # nothing to resume from before the first checkpoint: nothing is saved
        from harness.io import write_json_atomic

        measured = {key: {**self.earlier.get(key, {}), **mine}
                    for key, mine in (("seconds", self.seconds), ("cpu", self.cpu), ("cuda", self.cuda))}
        write_json_atomic(self.record_file, {**measured, "marks": self.marks, "notes": self.notes})

    def record(self) -> dict:
        """Provenance's `peak_memory`."""
        return {
            "cpu_rss_gib": self.cpu,
            "cuda_allocated_gib": self.cuda or None,
            "cpu_method": ("per phase (VmHWM reset through /proc/self/clear_refs)" if self.resettable
                           else "process peak so far at the end of each phase (no per-phase reset here)"),
        }


def give_back_memory() -> None:
    """After a point: collect the model, optimizer and Trainer (they hold reference cycles), empty
    the CUDA cache and return freed heap to the OS, so the next point of a bench or sweep in this
    process starts from what the first one found."""
    gc.collect()
    cuda = _cuda()
    if cuda is not None:
        cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only; elsewhere freed memory stays mapped

"""Build-once cache for the builtin models: convert into a temp dir, verify, mark, rename into place.

Converting SmolLM2 from GGUF takes ~30 s, so it happens once per machine. A folder counts as cached
only if its completion marker matches the files on disk (sizes, sha256 of the weights) and the source
it was built from; anything else is rebuilt, and the user is told why. Builders hold a file lock and
publish with an atomic rename, so concurrent runs never see or produce a half-written model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import HarnessError
from harness.io import share_like_new_files

MARKER = "pdl-bench-cache.json"
MARKER_FORMAT = 1
LOCK_WAIT_S = 30 * 60
RECORDED_VERSIONS = ("torch", "transformers", "safetensors", "tokenizers", "gguf", "accelerate")

Log = Callable[[str], None]


def say(message: str) -> None:
    """Progress lines go to stderr so they never mix with a command's real output."""
    print(f"pdl-bench: {message}", file=sys.stderr, flush=True)


def model_cache_dir() -> Path:
    """$PDL_BENCH_CACHE (or ~/.cache/pdl-bench), /models under it. Not created here."""
    root = os.environ.get("PDL_BENCH_CACHE") or "~/.cache/pdl-bench"
    return Path(root).expanduser() / "models"


@dataclass(frozen=True)
class BuiltinModel:
    """A model that works offline because a pip package ships its weights; converted once into the cache."""

    alias: str
    kind: str                                   # "causal" | "seq2seq"
    params: str                                 # nominal size, for listings
    description: str
    package: str                                # the distribution that ships the source weights
    build_note: str                             # told to the user before a build starts
    locate_source: Callable[[], Path]           # raises HarnessError (with the pip command) if missing
    build: Callable[[Path, Path, Log], dict]    # (source, out_dir, log) -> verification facts
    weights_file: str = "model.safetensors"
    hub_id: str | None = None                   # the public model it was converted from, if one holds it


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def source_fingerprint(source: Path) -> dict:
    """Size and sha256 of the source file (or of every file in a source folder, combined)."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    size = 0
    for path in files:
        digest.update(f"{path.relative_to(source) if path != source else path.name}\0".encode())
        digest.update(file_sha256(path).encode())
        size += path.stat().st_size
    return {"path": str(source), "size": size, "sha256": digest.hexdigest()}


def _versions(extra_package: str) -> dict[str, str]:
    from harness.provenance import package_versions

    return package_versions((*RECORDED_VERSIONS, extra_package))


def entry_dir(model: BuiltinModel, root: Path | None = None) -> Path:
    return (root or model_cache_dir()) / model.alias


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cache_problem(model: BuiltinModel, folder: Path, source: dict | None) -> str | None:
    """Why `folder` is not a usable cache of `model` (None: it is). `source` None skips the source check."""
    if not folder.is_dir():
        return "not yet converted"
    marker = read_marker(folder)
    if marker is None:
        return "incomplete (no readable completion marker)"
    if marker.get("format") != MARKER_FORMAT or marker.get("alias") != model.alias:
        return "written by another cache format"
    if source is not None:
        built_from = marker.get("source", {})
        if (built_from.get("size"), built_from.get("sha256")) != (source["size"], source["sha256"]):
            return f"built from a different copy of the {model.package} package"
    for name, size in marker.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            return f"missing {name}"
        if path.stat().st_size != size:
            return f"{name} has the wrong size"
    weights = folder / model.weights_file
    if model.weights_file not in marker.get("files", {}) or not weights.is_file():
        return f"missing {model.weights_file}"
    if file_sha256(weights) != marker.get("weights_sha256"):
        return f"{model.weights_file} fails its checksum"
    return None


def _source_if_installed(model: BuiltinModel) -> dict | None:
    try:
        return source_fingerprint(model.locate_source())
    except HarnessError:
        return None


def cache_status(model: BuiltinModel, root: Path | None = None) -> str | None:
    """None when a verified copy is cached; otherwise why not, e.g. "not yet converted"."""
    return cache_problem(model, entry_dir(model, root), _source_if_installed(model))


def _write_marker(model: BuiltinModel, folder: Path, source: dict, verification: dict, seconds: float) -> None:
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER
    }
    marker = {
        "format": MARKER_FORMAT,
        "alias": model.alias,
        "kind": model.kind,
        "files": files,
        "weights_sha256": file_sha256(folder / model.weights_file),
        "source": source,
        "versions": _versions(model.package),
        "verification": verification,
        "build_seconds": round(seconds, 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _publish(built: Path, target: Path) -> None:
    """Swap `built` into `target`; an old copy is first renamed aside, so `target` is never half-written."""
    if target.exists():
        trash = target.with_name(f".trash-{target.name}-{uuid.uuid4().hex[:8]}")
        os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(built, target)


def _acquire(lock, model: BuiltinModel, log: Log) -> None:
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
        return
    except Timeout:
        log(f"waiting for another process that is preparing {model.alias} ...")
    try:
        lock.acquire(timeout=LOCK_WAIT_S)
    except Timeout as err:
        raise HarnessError(
            f"gave up after {LOCK_WAIT_S // 60} min waiting for the lock {lock.lock_file}",
            "if no other pdl-bench process is running, delete that lock file and retry",
        ) from err


def _build_and_publish(model: BuiltinModel, target: Path, source: dict, log: Log) -> float:
    """Build into a temp folder next to `target`, mark it complete, rename it into place. Hold the lock."""
    for stale in target.parent.glob(f".building-{model.alias}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed build
    log(model.build_note)
    building = Path(tempfile.mkdtemp(prefix=f".building-{model.alias}-", dir=target.parent))
    try:
        start = time.perf_counter()
        verification = model.build(Path(source["path"]), building, log)
        seconds = time.perf_counter() - start
        _write_marker(model, building, source, verification, seconds)
        share_like_new_files(building)  # safetensors writes its weights 0600
        os.chmod(building, 0o755)  # mkdtemp makes it private; the cache may be shared
        _publish(building, target)
        return seconds
    except BaseException as err:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(err, OSError):
            raise HarnessError(f"building {model.alias} in {target.parent} failed: {err}",
                               "check free disk space, or set PDL_BENCH_CACHE to another folder") from err
        raise


def ensure_cached(model: BuiltinModel, *, root: Path | None = None, force: bool = False,
                  log: Log = say) -> Path:
    """The verified cache folder of `model`, building it first if it is missing, stale or broken."""
    from filelock import FileLock

    target = entry_dir(model, root)
    source = _source_if_installed(model)
    if not force and cache_problem(model, target, source) is None:
        return target
    if source is None:
        source = source_fingerprint(model.locate_source())  # raises the HarnessError naming the package
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HarnessError(f"cannot create the model cache {target.parent}: {err}",
                           "set PDL_BENCH_CACHE to a writable folder") from err
    lock = FileLock(str(target.parent / f".{model.alias}.lock"))
    _acquire(lock, model, log)
    try:
        problem = cache_problem(model, target, source)
        if problem is None and not force:
            return target  # another process built it while we waited
        if problem not in (None, "not yet converted"):
            log(f"cached {model.alias} at {target} is {problem}; rebuilding")
        seconds = _build_and_publish(model, target, source, log)
        log(f"{model.alias} ready at {target} (built and verified in {seconds:.1f} s)")
        return target
    finally:
        lock.release()

"""What a test needs from the machine, started by the project's own scripts (a SLURM cluster:
tests/slurm_cluster.py; Debian's chromium: tests/test_report.py).

When it cannot be had the test skips with the script's own reason, except under CI (CI=true), where
everything it needs can be installed: there it fails, so a broken script cannot pass as a skip.
Where it cannot be installed at all (not root), the fixture skips before running the script, CI or not.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def cannot_have(what: str, reason: str, *, installable: bool = True) -> NoReturn:
    """Skip with the reason; under CI=true fail with it, unless `what` cannot be installed here."""
    message = f"{what} could not start: {reason}"
    if installable and under_ci():
        pytest.fail(f"{message} (CI=true, where it must start: failing, not skipping)", pytrace=False)
    pytest.skip(message)


def error_line(stderr: str, stdout: str, prefix: str) -> str:
    """The script's one clear error line ("<prefix>: ..." on stderr), else the last line it wrote."""
    for out in (stderr, stdout):
        ours = [ln.strip() for ln in out.splitlines() if ln.startswith(f"{prefix}:")]
        if ours:
            return ours[-1]
    lines = [ln.strip() for ln in (stdout + "\n" + stderr).splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def run_script(what: str, script: str, *args: str, timeout: int,
               installable: bool = True) -> subprocess.CompletedProcess:
    """`bash scripts/<script> args...` from the repository root; cannot_have(what) with its error
    line when it fails or takes over `timeout` seconds."""
    try:
        proc = subprocess.run(["bash", str(REPO / "scripts" / script), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        cannot_have(what, f"{' '.join([script, *args])} took over {timeout}s", installable=installable)
    if proc.returncode != 0:
        cannot_have(what, error_line(proc.stderr, proc.stdout, Path(script).stem), installable=installable)
    return proc

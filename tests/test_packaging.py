"""A normal (non-editable) install must ship the task YAMLs, and finding no tasks must be an error,
not an empty table: the repository's tasks/ becomes harness/builtin_tasks/ inside the wheel."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness import cli
from harness.errors import HarnessError
from harness.task import default_tasks_dir, list_tasks, load_task

REPO = Path(__file__).resolve().parents[1]
TASK_NAMES = sorted(p.stem for p in (REPO / "tasks").glob("*.yaml"))


def test_pyproject_lists_every_harness_package():
    """pyproject.toml lists packages by hand (for the tasks mapping): a missing one would vanish from the wheel."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "harness").rglob("__init__.py")}
    assert listed == on_disk | {"harness.builtin_tasks"}


def test_checkout_reads_the_repository_tasks(monkeypatch):
    monkeypatch.delenv("PDL_BENCH_TASKS_DIR", raising=False)
    assert default_tasks_dir() == REPO / "tasks"


def test_no_task_files_is_a_clear_error(tmp_path, monkeypatch, capsys):
    with pytest.raises(HarnessError, match="no task files"):
        list_tasks(tmp_path)
    with pytest.raises(HarnessError, match=r"no such folder"):
        load_task("bible", tmp_path / "missing")
    assert cli.main(["tasks", "--tasks-dir", str(tmp_path)]) == 2
    monkeypatch.setenv("PDL_BENCH_TASKS_DIR", str(tmp_path))
    assert cli.main(["bench", "--task", "bible"]) == 2
    err = capsys.readouterr().err
    assert f"pdl-bench bench: error: no task files (*.yaml) in {tmp_path}" in err
    assert "Traceback" not in err and "PDL_BENCH_TASKS_DIR" in err


def _build_wheel(out: Path) -> Path:
    """Build from a copy of the sources so the build leaves no build/ or egg-info in the repository."""
    src = out / "src"
    for name in ("harness", "tasks"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    # Offline: reuse this environment's setuptools when it has one (the declared build backend).
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(out / "dist"), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    [wheel] = (out / "dist").glob("pdl_bench-*.whl")
    return wheel


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A new venv holding only the wheel; its dependencies come from this environment through a .pth."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = [p for p in sys.path if Path(p).name == "site-packages"]
    (Path(purelib) / "pdl_bench_test_deps.pth").write_text("".join(p + "\n" for p in deps))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, text=True, timeout=300)
    return root / "bin"


@pytest.mark.slow
def test_installed_wheel_ships_and_runs_the_tasks(tmp_path, tiny_causal_dir):
    wheel = _build_wheel(tmp_path / "build")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n for n in names if n.startswith("harness/builtin_tasks/")) == [
        f"harness/builtin_tasks/{name}.yaml" for name in TASK_NAMES]

    bin_dir = _fresh_venv(tmp_path / "venv", wheel)
    outside = tmp_path / "elsewhere"  # not the repository: nothing may come from the checkout
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PDL_BENCH_TASKS_DIR", "PYTHONPATH")}

    def run(*args: str) -> str:
        done = subprocess.run([*args], cwd=outside, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = run(str(bin_dir / "python"), "-c", "import harness; print(harness.__file__)")
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")
    listing = run(str(bin_dir / "pdl-bench"), "tasks")
    rows = {line.split()[0] for line in listing.splitlines()[1:]}
    assert rows == set(TASK_NAMES) and {"bible", "chitchat", "aclsum", "xsum"} <= rows

    run(str(bin_dir / "pdl-bench"), "run", "--task", "bible", "--model", str(tiny_causal_dir), "--limit", "8",
        "--max-steps", "2", "--no-progress", "--results-dir", str(outside / "results"))
    assert len(list((outside / "results" / "bible").glob("*/*/metrics.json"))) == 1

"""The package's import layers hold: lint-imports passes on the contracts in pyproject.toml
([tool.importlinter]), and the graph it checks includes imports made inside functions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def lint_imports(cwd: Path) -> tuple[int, str]:
    """lint-imports on the pyproject.toml in `cwd` (no cache folder left behind), and its output."""
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} is missing: pip install -e '.[dev]'"
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    return result.returncode, ANSI.sub("", result.stdout + result.stderr)


def test_layers_and_no_cycles():
    code, out = lint_imports(ROOT)
    assert code == 0 and "0 broken" in out, out


def test_every_module_is_in_a_layer():
    """A module left out of the layers would be checked by nothing: name each one in a layer."""
    import pkgutil

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
        import tomli as tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = next(c["layers"] for c in config["contracts"] if c["type"] == "layers")
    in_layers = {name.strip().strip("()") for layer in layers for name in re.split(r"[|:]", layer)}
    modules = {f"harness.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "harness")])} - {"harness.builtin_tasks"}
    assert modules - in_layers == set(), "add these to a layer in pyproject.toml [tool.importlinter]"


def _source_line(module: str, line: int) -> str:
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return path.read_text(encoding="utf-8").splitlines()[line - 1]


def _lazy_import() -> tuple[str, str, int]:
    """An import edge of harness made only inside a function (every statement of it indented)."""
    import grimp

    graph = grimp.build_graph("harness")
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if importer.startswith(imported + ".") or imported.startswith(importer + "."):
                continue
            details = graph.get_import_details(importer=importer, imported=imported)
            if details and all(_source_line(importer, d["line_number"])[:1].isspace() for d in details):
                return importer, imported, details[0]["line_number"]
    raise AssertionError("no function-level import found in harness")


def test_imports_inside_functions_are_checked(tmp_path):
    importer, imported, line = _lazy_import()
    (tmp_path / "pyproject.toml").write_text(f"""
[tool.importlinter]
root_package = "harness"

[[tool.importlinter.contracts]]
name = "forbid one function-level import"
type = "forbidden"
source_modules = ["{importer}"]
forbidden_modules = ["{imported}"]
""")
    code, out = lint_imports(tmp_path)
    assert code != 0 and f"{importer} -> {imported} (l.{line})" in out, out

"""Losses and metrics from installed distributions (entry points `pdl_bench.losses`,
`pdl_bench.metrics`): the worked example examples/pdl-bench-itf is pip-installed into a folder of
its own, which the pdl-bench processes below get on their PYTHONPATH (an environment with the
project and the plugin, without building a whole new venv); broken plugins are hand-made
distributions (a dist-info folder with entry_points.txt) beside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.results import METRICS_FILE, PointConfig, read_config, read_provenance
from tiny import build_style_task

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "pdl-bench-itf"
PIN = "pdl-bench-itf==0.1.0"


def fake_distribution(site: Path, name: str, group: str, entry: str, module: str, source: str) -> None:
    """A minimal installed distribution: its module and a dist-info with one entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry}\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example installed with pip (as a user would), plus three broken plugins."""
    site, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("example") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source)  # setuptools builds in the source folder: not in the repository's
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(site), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    fake_distribution(site, "pdl-bench-broken", "pdl_bench.losses", "broken = broken_plugin:SPEC", "broken_plugin",
                      "raise ImportError('needs a package that is not installed')\n")
    fake_distribution(site, "pdl-bench-dup", "pdl_bench.losses", "ce = dup_plugin:SPEC", "dup_plugin",
                      "from harness.losses import LOSSES\nSPEC = LOSSES.get('ce')\n")
    fake_distribution(site, "pdl-bench-bad", "pdl_bench.metrics", "bad = bad_plugin:NOT_A_METRIC", "bad_plugin",
                      "NOT_A_METRIC = {'name': 'bad'}\n")
    return site


def cli(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=600)


def test_losses_lists_the_plugin_and_each_broken_plugin_gets_one_line(site):
    done = cli(site, "losses")
    assert done.returncode == 0, done.stderr
    assert "itf  (pdl-bench-itf 0.1.0; needs token frequencies)" in done.stdout
    assert "ce  (builtin; no frequencies needed)" in done.stdout and "pdl  (builtin;" in done.stdout
    skipped = [line for line in done.stderr.splitlines() if line.startswith("pdl-bench: skipping plugin")]
    assert len(skipped) == 2  # the losses group's broken ones; the metric plugin loads only with metrics
    assert any("pdl-bench-broken 0.1 entry point pdl_bench.losses:broken (broken_plugin:SPEC): failed to import: "
               "ImportError: needs a package that is not installed" in line for line in skipped)
    assert any("pdl-bench-dup 0.1 entry point pdl_bench.losses:ce" in line and "exists already (builtin)" in line
               for line in skipped)
    listed = json.loads(cli(site, "losses", "--format", "json").stdout)
    assert {loss["name"]: loss["origin"] for loss in listed}["ce"] == "builtin"


def test_metrics_command_names_the_broken_metric_plugin_and_lists_the_builtins(site):
    done = cli(site, "metrics", "distinct-2")
    assert done.returncode == 0 and "distinct-2  (builtin; corpus; higher is better)" in done.stdout
    [line] = [ln for ln in done.stderr.splitlines() if "pdl_bench.metrics:bad" in ln]
    assert "pdl-bench-bad 0.1" in line and "is a dict, not a harness.metrics.base.Metric" in line


def test_help_loads_no_plugin(site):
    done = cli(site, "--help")
    assert done.returncode == 0 and "skipping plugin" not in done.stderr


@pytest.mark.slow
def test_a_plugin_loss_runs_a_point_and_a_sweep_in_point_processes(site, tmp_path, tiny_causal_dir):
    task = build_style_task(tmp_path / "task", tiny_causal_dir)
    results = tmp_path / "results"
    done = cli(site, "run", "--task", str(task), "--loss", "itf", "--alpha", "0.4", "--results-dir", str(results),
               "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    [point] = list(results.glob("tiny-bible/*/itf-a0.4-s0-*"))
    assert (point / METRICS_FILE).is_file()
    assert read_config(point).loss_plugin == PIN
    assert read_provenance(point).model_extra["plugins"] == {"loss": PIN, "metrics": {}}
    # --gpus runs every point as its own `pdl-bench run` process: each finds the plugin itself
    swept = cli(site, "sweep", "--task", str(task), "--losses", "ce,itf", "--alphas", "0.4", "--gpus", "0",
                "--results-dir", str(results), "--no-progress")
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert "sweep: 1 done, 1 skipped" in swept.stdout or "1 skipped" in swept.stdout
    table = cli(site, "table", "--results-dir", str(results), "--n-boot", "50", "--metrics", "distinct-2")
    assert table.returncode == 0, table.stderr[-2000:]
    assert "| distinct-2 ↑ | itf(alpha=0.4) |" in table.stdout and "[" in table.stdout.split("itf(alpha=0.4) |")[1]


def test_the_plugin_version_is_part_of_a_points_identity_and_a_builtin_has_none():
    config = dict(task={"name": "t"}, model="m", loss="itf", loss_options={"alpha": 0.4}, seed=0)
    old, new = (PointConfig(**config, loss_plugin=f"pdl-bench-itf=={v}") for v in ("0.1.0", "0.2.0"))
    assert old.digest() != new.digest() and old.group_key() == new.group_key()
    builtin = PointConfig(**{**config, "loss": "pdl"})
    assert "loss_plugin" not in builtin.identity()  # so no builtin point is renamed


def test_a_builtin_goes_through_the_same_check_as_a_plugin():
    from harness.losses import LOSSES
    from harness.metrics.base import make_metric

    with pytest.raises(ValueError, match="not a harness.losses.LossSpec"):
        LOSSES.register("not-a-loss", {"name": "not-a-loss"})
    with pytest.raises(ValueError, match="corpus metrics need evaluate="):
        make_metric("half-made", "corpus", True, "no evaluate", compute=lambda batch: None)
    assert "not-a-loss" not in LOSSES

"""The CLI shell, the registry and the hub fast-failure."""

import re
import time
from pathlib import Path

import pytest

from harness import cli, commands, hub
from harness.errors import HarnessError
from harness.registry import Registry


def test_registry_did_you_mean():
    reg = Registry("loss")
    reg.register("pdl", 1)
    reg.register("ce", 2)
    assert reg.get("pdl") == 1
    with pytest.raises(HarnessError, match="did you mean 'pdl'"):
        reg.get("pld")


def test_registry_rejects_duplicates():
    reg = Registry("metric")
    reg.register("x", 1)
    with pytest.raises(ValueError):
        reg.register("x", 2)


def test_top_level_help_lists_commands(capsys):
    """Every module in harness/commands/ is listed under COMMAND, once, with its one-line help."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    section = out.split("\n  COMMAND\n", 1)[1].split("\n\n")[0]  # the block under "positional arguments"
    listed = re.findall(r"^ {4}(\S+)", section, re.M)  # an entry is indented 4; its wrapped help, more
    modules = sorted(p.stem.replace("_", "-") for p in Path(commands.__file__).parent.glob("*.py")
                     if not p.stem.startswith("_"))
    assert len(modules) > 10
    assert listed == modules
    def bare(text: str) -> str:  # argparse wraps to the terminal's width, also after a hyphen
        return re.sub(r"\s+", "", text)

    for name, module in cli.command_modules():
        assert bare(name + module.HELP) in bare(section), name


def test_every_command_has_help(capsys):
    for name, _ in cli.command_modules():
        with pytest.raises(SystemExit) as exit_info:
            cli.main([name, "--help"])
        assert exit_info.value.code == 0, name
        assert capsys.readouterr().out.strip(), name


def test_offline_hub_fails_fast_with_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    start = time.monotonic()
    with pytest.raises(HarnessError) as err:
        hub.require_hub("EdinburghNLP/xsum", "dataset", "pass --data-dir with local files")
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert "EdinburghNLP/xsum" in text and "HF_HUB_OFFLINE" in text and "--data-dir" in text
    hub.hub_reachable.cache_clear()


def test_unreachable_endpoint_fails_fast(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://no-such-host.invalid")
    hub.hub_reachable.cache_clear()
    start = time.monotonic()
    with pytest.raises(HarnessError, match="cannot be reached"):
        hub.require_hub("gpt2", "model", "use a local path")
    assert time.monotonic() - start < 10
    hub.hub_reachable.cache_clear()


def test_run_prints_an_undefined_metric_as_na_with_its_reason():
    """A length-robust metric is NaN (null) where the outputs leave it undefined; `run` says so."""
    from harness.commands.run import metric_line

    assert metric_line({"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}) == "    0.5000  [0.4000, 0.6000]"
    assert metric_line({"value": 0.5, "ci_low": None, "ci_high": None}) == "    0.5000  [no interval]"
    assert "n/a" in metric_line({"value": None, "ci_low": None, "ci_high": None, "details": {}})
    assert metric_line({"value": None, "ci_low": None, "ci_high": None,
                        "details": {"not_measured": "no flags"}}).endswith("(no flags)")

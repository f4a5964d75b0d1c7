"""Option help is written once: the options of run/bench/sweep that set a config field take their
--help text and their default from that field (harness/commands/_common.py, add_option)."""

from __future__ import annotations

import argparse
import re
from typing import Literal, get_args

import pytest

from harness import cli
from harness.commands._common import run_config
from harness.commands.sweep import task_alphas
from harness.runner.config import RunConfig
from harness.task import TaskConfig, load_task

POINT_COMMANDS = ("run", "bench", "sweep")


def subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def mapped_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if getattr(a, "config_field", None) is not None]


def task_field(key: str):
    """The pydantic field behind a dotted task key, e.g. training.max_steps."""
    model, *path, name = [TaskConfig, *key.split(".")]
    for part in path:
        model = model.model_fields[part].annotation
    return model.model_fields[name]


def expected_help(action: argparse.Action, field) -> str:
    description = field.description
    default = None if field.is_required() else field.get_default(call_default_factory=True)
    if action.task_key:
        return f"{description} (sets the task's {action.task_key}; default: the task's value)"
    if isinstance(action, argparse._AppendAction):
        return f"{description} (repeatable)"
    if default is None or default is False or default == [] or default == {}:
        return description  # unset / off: the description says what that means
    return f"{description} (default: {default})"


@pytest.mark.parametrize("command", POINT_COMMANDS)
def test_option_help_and_default_come_from_the_config_field(command, capsys):
    parser = subparser(command)
    actions = mapped_actions(parser)
    assert {a.option_strings[0] for a in actions} >= {"--task", "--model", "--data-dir", "--max-steps", "--set",
                                                      "--loss-option", "--trust-remote-code", "--plain", "--fast",
                                                      "--compile"}
    for action in actions:
        flag, field = action.option_strings[0], action.config_field
        assert field.description, flag
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if action.task_key:  # overrides a task key: unset keeps the task's value
            assert task_field(action.task_key) is field, flag
            assert action.default is None, flag
        elif isinstance(action, argparse._StoreConstAction) and not isinstance(action, argparse._StoreTrueAction):
            assert action.const in get_args(field.annotation), flag  # --plain/--fast: a value of the field
            assert action.default == default, flag
            continue  # their help names the value; the field's description is the group's
        elif isinstance(action, argparse._AppendAction):
            assert action.default == [] and not default, flag
        else:
            assert action.default == default and type(action.default) is type(default), flag
        if getattr(field.annotation, "__origin__", None) is Literal:
            assert action.choices == list(get_args(field.annotation)), flag
        assert action.help.replace("%%", "%") == expected_help(action, field), flag

    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for action in actions:
        assert action.option_strings[0] in text
        assert " ".join(action.config_field.description.split()) in text, action.option_strings[0]


def test_every_run_config_field_has_a_run_option():
    fields = {name for name, f in RunConfig.model_fields.items()
              if any(a.config_field is f for a in mapped_actions(subparser("run")))}
    assert fields == set(RunConfig.model_fields)


@pytest.mark.parametrize("command", POINT_COMMANDS)
def test_no_options_give_the_config_defaults(command):
    args = cli.build_parser().parse_args([command])
    assert run_config(args) == RunConfig()
    if command != "sweep":
        assert args.seed == RunConfig().seed
    if command == "run":
        assert run_config(args, args.loss, None, args.seed) == RunConfig()


def test_plain_and_fast_set_the_fast_field():
    parse = cli.build_parser().parse_args
    assert run_config(parse(["run", "--plain"])).fast == "off"
    assert run_config(parse(["run", "--fast"])).fast == "on"
    with pytest.raises(SystemExit):
        parse(["run", "--plain", "--fast"])


def test_help_states_defaults():
    text = " ".join(subparser("run").format_help().split())
    for fragment in ("(default: bible)", "(default: ce)", "(default: 0)", "(default: auto)", "(default: results/)",
                     "default: the task's value"):
        assert fragment in text
    assert re.search(r"--seeds N,N,\.\.\. .*\(default: 0\)", " ".join(subparser("sweep").format_help().split()))


def test_sweep_alphas_default_to_the_task_grid():
    assert task_alphas(RunConfig(task="bible")) == load_task("bible").alphas
    assert task_alphas(RunConfig(task="bible", overrides=["alphas=[0.5, 2]"])) == [0.5, 2.0]

"""Arguments shared by `run`, `bench` and `sweep`, and their translation into a RunConfig.

Option help is written once. An option that sets a config field is declared with `add_option(...,
field=...)`: its help is that field's description (RunConfig in harness/runner/config.py, the task
models in harness/task.py), followed by "(default: ...)" rendered from the field's own default, and
its argparse default is that same field default, so neither the text nor the default can drift.
Options that override a task key (--max-steps) default to None, meaning "keep the task's value".
Pure CLI conveniences (--results-dir, --force, ...) keep their one help string here.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from harness.errors import HarnessError
from harness.keyvalue import parse_key_value
from harness.results import DEFAULT_RESULTS_DIR
from harness.runner.config import RunConfig
from harness.task import TrainingConfig

RUN_FIELDS = RunConfig.model_fields
DEFAULT_TASK = RUN_FIELDS["task"].default
DEFAULT_LOSSES = f"{RUN_FIELDS['loss'].default},pdl"  # bench arms / sweep losses: the CE baseline first
ALPHA_HELP = ("alpha of the loss, for losses that have one (see `pdl-bench losses`): a shortcut for "
              "--loss-option alpha=A (default: the loss's own)")


def field_default(field: FieldInfo) -> Any:
    """The value a config gets when the option is not given (default_factory called)."""
    return None if field.is_required() else field.get_default(call_default_factory=True)


def field_help(field: FieldInfo, *, repeatable: bool = False, task_key: str | None = None) -> str:
    """The --help text of an option that sets `field`: its description, then where the default
    comes from. Unescaped (argparse's %-formatting is handled by add_option)."""
    if not field.description:
        raise ValueError(f"config field {field!r} has no description to use as option help")
    if task_key is not None:
        return f"{field.description} (sets the task's {task_key}; default: the task's value)"
    if repeatable:
        return f"{field.description} (repeatable)"
    default = field_default(field)
    if default is None or default is False or default in ([], {}):
        return field.description  # an unset option / off flag: the description says what that means
    return f"{field.description} (default: {default})"


def add_option(parser, *flags: str, field: FieldInfo, task_key: str | None = None, **kwargs) -> argparse.Action:
    """parser.add_argument with the help, default and (for a Literal) choices taken from a config
    field. task_key: the option overrides that task key, so its default is None (the task's value)."""
    repeatable = kwargs.get("action") == "append"
    kwargs["help"] = field_help(field, repeatable=repeatable, task_key=task_key).replace("%", "%%")
    if repeatable:
        kwargs["default"] = []
    elif task_key is not None:
        kwargs["default"] = None
    else:
        kwargs["default"] = field_default(field)
    if get_origin(field.annotation) is Literal and "choices" not in kwargs and kwargs.get("action") is None:
        kwargs["choices"] = list(get_args(field.annotation))
    action = parser.add_argument(*flags, **kwargs)
    action.config_field, action.task_key = field, task_key  # read by the tests (option help == field)
    return action


def add_point_arguments(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--task", field=RUN_FIELDS["task"], metavar="NAME|YAML")
    add_option(parser, "--model", field=RUN_FIELDS["model"], metavar="MODEL")
    add_option(parser, "--data-dir", field=RUN_FIELDS["data_dir"], metavar="DIR")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="cap every split at N examples, for quick runs (sets the task's limits.train, "
                             "limits.validation and limits.test: the first N after a seeded shuffle, the same "
                             "for every arm; default: the task's limits)")
    add_option(parser, "--max-steps", field=TrainingConfig.model_fields["max_steps"],
               task_key="training.max_steps", type=int, metavar="N")
    parser.add_argument("--lora", action="store_true",
                        help="train LoRA adapters (peft) on a frozen base model instead of every weight: a "
                             "shortcut for --set training.peft.method=lora; r, alpha, dropout and "
                             "target_modules are training.peft.* keys (docs/tasks.md)")
    add_option(parser, "--keep", field=TrainingConfig.model_fields["keep"], task_key="training.keep")
    add_option(parser, "--set", field=RUN_FIELDS["overrides"], dest="overrides", action="append",
               metavar="KEY=VALUE")
    add_option(parser, "--loss-option", field=RUN_FIELDS["loss_options"], dest="loss_option", action="append",
               metavar="KEY=VALUE")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, metavar="DIR",
                        help=f"where results go (default: {DEFAULT_RESULTS_DIR}/)")
    parser.add_argument("--force", action="store_true",
                        help="rerun finished points (old folders are moved aside, not deleted)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_option(parser, "--trust-remote-code", field=RUN_FIELDS["trust_remote_code"], action="store_true")
    add_speed_arguments(parser)


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """--plain/--fast set RunConfig.fast to off/on; the field's description, shown once as the
    group's description, says what each value does."""
    fast = RUN_FIELDS["fast"]
    # The subcommands' formatter keeps descriptions as written, so the paragraph is wrapped here.
    group = parser.add_argument_group("speed", textwrap.fill(field_help(fast), width=76))
    flags = group.add_mutually_exclusive_group()
    for flag, value in (("--plain", "off"), ("--fast", "on")):
        action = flags.add_argument(flag, dest="fast", action="store_const", const=value,
                                    default=field_default(fast), help=f"use the `{value}` paths above")
        action.config_field, action.task_key = fast, None
    add_option(group, "--compile", field=RUN_FIELDS["compile"])


def add_seed_argument(parser: argparse.ArgumentParser) -> None:
    add_option(parser, "--seed", field=RUN_FIELDS["seed"], type=int, metavar="N")


def add_alpha_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alpha", type=float, metavar="A", help=ALPHA_HELP)


def parse_key_values(pairs: list[str], what: str) -> dict[str, Any]:
    """KEY=VALUE pairs with YAML-typed values, parsed exactly like --set (harness.keyvalue)."""
    return dict(parse_key_value(pair, what, "alpha=0.5") for pair in pairs)


def parse_number_list(text: str, kind: type, what: str) -> list:
    try:
        return [kind(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise HarnessError(f"{what} must be a comma-separated list of numbers, got {text!r}",
                           f"e.g. {what} 0,0.5,1") from None


def run_config(args: argparse.Namespace, loss: str | None = None, loss_options: dict | None = None,
               seed: int | None = None) -> RunConfig:
    """The RunConfig of the parsed options; loss and seed left None take RunConfig's defaults."""
    # Shortcuts first, so an explicit --set of the same key wins.
    overrides = ["training.peft.method=lora"] if args.lora else []
    overrides += [f"training.keep={args.keep}"] if args.keep else []
    overrides += list(args.overrides)
    if args.limit is not None:
        if args.limit < 1:
            raise HarnessError(f"--limit must be >= 1, got {args.limit}", "pass a positive number of examples")
        overrides += [f"limits.{split}={args.limit}" for split in ("train", "validation", "test")]
    if args.max_steps is not None:
        if args.max_steps < 1 and args.max_steps != -1:  # the rule of training.max_steps, which --help shows
            raise HarnessError(f"--max-steps must be >= 1 (or -1: no step limit), got {args.max_steps}",
                               "pass a positive number of optimizer steps, or drop it to train the task's epochs")
        overrides.append(f"training.max_steps={args.max_steps}")
    options = {**parse_key_values(args.loss_option, "--loss-option"), **(loss_options or {})}
    given = {name: value for name, value in (("loss", loss), ("seed", seed)) if value is not None}
    return RunConfig(
        task=args.task, model=args.model, loss_options=options, data_dir=args.data_dir, overrides=overrides,
        trust_remote_code=args.trust_remote_code, fast=args.fast, compile=args.compile,
        push_to_hub=getattr(args, "push_to_hub", None), **given,  # `run` only: one point, one repository
    )

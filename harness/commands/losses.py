"""`pdl-bench losses`: list the training losses, their options and whether they need frequencies."""

from __future__ import annotations

import argparse
import json

HELP = "list the training losses and their options"
DESCRIPTION = """\
List every registered training loss: where it comes from (builtin, or the installed plugin
distribution and its version: any package that declares a `pdl_bench.losses` entry point), what
it computes, each option (name, type, default, description) and whether it needs a
token-frequency table counted from the training data. docs/extending.md shows how to ship a loss
as a plugin.

Options are set per arm in the experiment config, e.g. `loss: pdl` with
`loss_options: {alpha: 0.5, normalization: batch_weight_sum}`; unknown options are rejected.

examples:
  pdl-bench losses
  pdl-bench losses --format json
  pdl-bench losses pdl pdl-official
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="LOSS", help="only these losses (default: all)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def _type_name(annotation) -> str:
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if args:
        return " | ".join(_type_name(a) for a in args)
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def describe(spec, origin: str = "builtin") -> dict:
    """A loss as plain data: name, origin, description, needs_frequencies, options."""
    options = [
        {"name": name, "type": _type_name(field.annotation), "default": field.default,
         "description": field.description or ""}
        for name, field in spec.config_cls.model_fields.items()
    ]
    return {"name": spec.name, "origin": origin, "description": spec.description,
            "needs_frequencies": spec.needs_frequencies, "options": options}


def run(args) -> int:
    from harness.losses import LOSSES

    names = args.names or LOSSES.names()
    losses = [describe(LOSSES.get(name), str(LOSSES.origin(name))) for name in names]
    if args.format == "json":
        print(json.dumps(losses, indent=2))
        return 0
    for loss in losses:
        needs = "needs token frequencies" if loss["needs_frequencies"] else "no frequencies needed"
        print(f"{loss['name']}  ({loss['origin']}; {needs})\n  {loss['description']}")
        for opt in loss["options"]:
            print(f"    {opt['name']}: {opt['type']} = {opt['default']!r}\n        {opt['description']}")
        if not loss["options"]:
            print("    (no options)")
        print()
    return 0

"""`pdl-bench` command line: one subcommand per module in harness/commands/.

Each command module defines HELP (one line), DESCRIPTION (for --help), add_arguments(parser)
and run(args) -> int. Heavy imports (torch, transformers) happen inside run(), so --help is fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from harness import __version__, commands
from harness.errors import HarnessError
from harness.stopping import Terminated, stop_signals


def command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"harness.commands.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdl-bench",
        description="Benchmark Power-Law Decay Loss (PDL) against cross-entropy and peer losses: "
        "finetune paired models, generate, score, and tabulate the differences with confidence intervals.",
    )
    parser.add_argument("--version", action="version", version=f"pdl-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in command_modules():
        cmd = sub.add_parser(
            name,
            help=module.HELP.replace("%", "%%"),  # argparse formats help strings with %
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: `sweep` records it to finish the sweep
    try:
        with stop_signals():
            return int(args.handler(args) or 0)
    except HarnessError as err:
        print(f"pdl-bench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"pdl-bench {args.command}: {what}; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130


if __name__ == "__main__":
    raise SystemExit(main())

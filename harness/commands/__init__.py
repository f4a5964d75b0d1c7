"""Subcommands of `pdl-bench`; every public module here is one command (see harness/cli.py)."""

"""KEY=VALUE command-line items (`--set`, `--loss-option`): one parser, so both flags accept and
reject exactly the same values."""

from __future__ import annotations

from typing import Any

import yaml

from harness.errors import HarnessError


def parse_key_value(item: str, flag: str, example: str) -> tuple[str, Any]:
    """(key, value), the value typed as YAML (numbers, booleans, null, lists, else a string); an
    empty value is None. A value that is not valid YAML fails rather than silently becoming text."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise HarnessError(f"{flag} {item!r} is not key=value", f"write it like {flag} {example}")
    if not raw.strip():
        return key, None
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise HarnessError(f"{flag} {item!r}: the value is not valid YAML ({problem})",
                           "close the bracket or quote, or quote a text value: "
                           f"""{flag} '{key}="..."'""") from None

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


def format_key_value(key: str, value: Any) -> str:
    """The `key=value` item that parse_key_value reads back as exactly (key, value): the value
    written as one line of YAML (so 1e-05 stays a float, "1e-05" stays a string)."""
    if value is None:
        return f"{key}="
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return f"{key}={text.removesuffix('...').strip()}"


def parse_grid_item(item: str, flag: str = "--grid") -> tuple[str, list[str]]:
    """`KEY=V1,V2,...` -> (key, ["V1", "V2", ...]): the values stay text, each to be read as one
    `KEY=V` item (like --set). Commas inside brackets or quotes do not split: `k=[1,2],[3]`."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise HarnessError(f"{flag} {item!r} is not KEY=V1,V2,...",
                           f"write it like {flag} training.learning_rate=1e-5,3e-5")
    values, depth, quote, current = [], 0, "", ""
    for char in raw:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += char
    values.append(current.strip())
    if any(not v for v in values) or len(set(values)) != len(values):
        raise HarnessError(f"{flag} {item!r}: every value must be given once, and none may be empty",
                           f"write it like {flag} {key}=V1,V2")
    return key, values

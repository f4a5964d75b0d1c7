"""The one way a number is written in a table: bench, `score`, `table` and `report` all print through here.

Significant digits (not fixed decimals), because metric scales differ by orders of magnitude (ROUGE
in 0-100, distinct-n in 0-1, tiny deltas); whole numbers from 10**digits up, so a vocabulary size
never turns into an exponent. A missing value (None, NaN, infinity) prints as `missing`.
"""

from __future__ import annotations

import math
from typing import Any


def is_missing(value: Any) -> bool:
    """None, NaN or infinity: nothing to print."""
    return value is None or not math.isfinite(float(value))


def format_value(value: Any, digits: int = 4, *, missing: str = "") -> str:
    """`digits` significant digits; whole numbers once the value has more integer digits than that."""
    if is_missing(value):
        return missing
    value = float(value)
    text = f"{value:.{digits}g}"
    return f"{value:.0f}" if "e+" in text else text  # 12345 or 9999.7 (-> 1e+04): whole numbers


def format_delta(value: Any, digits: int = 4, *, missing: str = "") -> str:
    """A difference: like format_value, with an explicit sign (+0 for no difference)."""
    if is_missing(value):
        return missing
    text = format_value(value, digits)
    return text if text.startswith("-") else f"+{text}"


def format_interval(low: Any, high: Any, digits: int = 4, *, signed: bool = True, missing: str = "") -> str:
    """[low, high]; signed for an interval of a difference. Missing when either end is."""
    if is_missing(low) or is_missing(high):
        return missing
    write = format_delta if signed else format_value
    return f"[{write(low, digits)}, {write(high, digits)}]"


def format_p(p: Any, *, missing: str = "") -> str:
    """Three significant digits, '<0.001' below that (a bootstrap p with 1,000 resamples bottoms out at
    1/1001, which would otherwise print as a falsely precise 0.000999)."""
    if is_missing(p):
        return missing
    return "<0.001" if p < 0.001 else f"{p:.3g}"

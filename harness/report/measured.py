"""The rows a table shows beside the main decoding's metrics, named once here: each further
decoding's metrics (`sampled/distinct-2`: the metric on generations-sampled.jsonl) and the
likelihood of the test references by training frequency (`test-ce`, `nll-most-frequent`,
`nll-rarest`, `top1-rarest`). A point written before result format 3 did not measure them: its
value is NOT_MEASURED, which tables print as such, never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.render.cells import NOT_MEASURED

DECODING_SEPARATOR = "/"


@dataclass(frozen=True)
class LikelihoodRow:
    quantity: str  # harness.metrics.likelihood.QUANTITIES
    bucket: str  # "all" (every reference token), "most frequent" (bucket 0), "rarest" (the last mass bucket)
    higher_is_better: bool


LIKELIHOOD_ROWS = {
    "test-ce": LikelihoodRow("nll", "all", False),
    "nll-most-frequent": LikelihoodRow("nll", "most frequent", False),
    "nll-rarest": LikelihoodRow("nll", "rarest", False),
    "top1-rarest": LikelihoodRow("accuracy", "rarest", True),
}


def legend(names: list[str], n_buckets: int = 10) -> str | None:
    """The table footnote that says what the further rows are (None when a table has none)."""
    parts = []
    if any(name in LIKELIHOOD_ROWS for name in names):
        share = f"{100 / n_buckets:g}%"
        parts.append("test-ce: teacher-forced CE of the test references; nll-most-frequent / nll-rarest / "
                     f"top1-rarest: mean NLL and top-1 accuracy on reference tokens in the most frequent / "
                     f"rarest {share} of training target mass (docs/reporting.md)")
    decodings = sorted({d for d in (split_decoding(n)[0] for n in names) if d is not None})
    if decodings:
        parts.append(", ".join(f"{d}/<metric>" for d in decodings) + ": the metric on that decoding of the test "
                     "prompts (the task's `decodings`; sampled = nucleus p 0.9, temperature 1, by default)")
    if not parts:
        return None
    return "; ".join(parts) + f". {NOT_MEASURED}: the point was written before result format 3."


def decoding_metric(decoding: str, metric: str) -> str:
    return f"{decoding}{DECODING_SEPARATOR}{metric}"


def split_decoding(name: str) -> tuple[str | None, str]:
    """(decoding, metric) of a row name; decoding None for the main decoding's metrics."""
    decoding, separator, metric = name.partition(DECODING_SEPARATOR)
    return (decoding, metric) if separator else (None, name)


def bucket_index(row: LikelihoodRow, n_buckets: int) -> int | None:
    """The bucket's column (None: every token pooled)."""
    return {"all": None, "most frequent": 0, "rarest": n_buckets - 1}[row.bucket]


def measured_names(metrics_records: list[dict[str, Any]]) -> set[str]:
    """The further rows any of these metrics.json records (as dicts) has."""
    names: set[str] = set()
    for record in metrics_records:
        for decoding, result in (record.get("decodings") or {}).items():
            names |= {decoding_metric(decoding, metric) for metric in result.get("metrics", {})}
        if record.get("token_likelihood"):
            names |= set(LIKELIHOOD_ROWS)
    return names


def is_further_row(name: str) -> bool:
    return name in LIKELIHOOD_ROWS or split_decoding(name)[0] is not None


def measured_value(record: dict[str, Any], name: str) -> tuple[float | str | None, int | None, bool | None]:
    """(value, n, higher_is_better) of a further row in one point's metrics.json: NOT_MEASURED for a
    point of an earlier format, None where the point measured it but has no value."""
    if name in LIKELIHOOD_ROWS:
        row, likelihood = LIKELIHOOD_ROWS[name], record.get("token_likelihood")
        if likelihood is None:
            return NOT_MEASURED, None, row.higher_is_better
        index = bucket_index(row, likelihood["n_buckets"])
        value = likelihood["test_ce"] if index is None else likelihood["buckets"][index][row.quantity]
        return value, record.get("n_test"), row.higher_is_better
    decoding, metric = split_decoding(name)
    decodings = record.get("decodings")
    if decodings is None:
        from harness.metrics import METRICS

        return NOT_MEASURED, None, METRICS.get(metric).higher_is_better if metric in METRICS else None
    result = (decodings.get(decoding) or {}).get("metrics", {}).get(metric) or {}
    return result.get("value"), result.get("n"), result.get("higher_is_better")

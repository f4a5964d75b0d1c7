"""The rows a table shows beside the main decoding's metrics, read from a point's metrics.json:
each further decoding's metrics (`sampled/distinct-2`: the metric on generations-sampled.jsonl;
named by harness.results.decoding_metric) and the likelihood of the test references by training
frequency (harness.metrics.likelihood.LIKELIHOOD_ROWS). A point written before result format 3
did not measure them: its value is NOT_MEASURED, which tables print as such, never as zero.
"""

from __future__ import annotations

from typing import Any

from harness.metrics.likelihood import LIKELIHOOD_ROWS, bucket_index
from harness.results import NOT_MEASURED, decoding_metric, split_decoding



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
    if record.get("decodings") is None:
        from harness.metrics import METRICS

        return NOT_MEASURED, None, METRICS.get(metric).higher_is_better if metric in METRICS else None
    result = metric_record(record, name) or {}
    return result.get("value"), result.get("n"), result.get("higher_is_better")


def metric_record(record: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A text metric's stored result in one point's metrics.json (value, interval, details): the
    main decoding's for `distinct-2`, a further decoding's for `sampled/distinct-2`; None where the
    point has none."""
    decoding, metric = split_decoding(name)
    scored = record if decoding is None else ((record.get("decodings") or {}).get(decoding) or {})
    return (scored.get("metrics") or {}).get(metric)

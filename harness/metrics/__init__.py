"""Metrics of generated text (BLEU, chrF, ROUGE, diversity, rare-token profile, self-BLEU) with bootstrap intervals.

    from harness.metrics import score, compare, MetricContext
    results = score(predictions, references, n_boot=1000, seed=0)
    results["distinct-2"].value, results["distinct-2"].ci_low, results["distinct-2"].ci_high

Importing the package registers every metric in METRICS; docs/metrics.md defines each one.
"""

from harness.metrics.base import METRICS, Batch, Metric, MetricContext, token_ids_fn
from harness.metrics import (  # noqa: F401  (register metrics)
    bleu, diversity, length, length_robust, rare_tokens, rouge, self_bleu, semantic,
)
from harness.metrics.rare_tokens import rare_token_profile
from harness.metrics.suite import (
    DEFAULT_METRICS, LENGTH_METRICS, LENGTH_ROBUST_METRICS, RARE_TOKEN_METRICS, MetricResult, PairedResult, compare,
    needing_finished, score, validate_inputs,
)

__all__ = [
    "METRICS", "Batch", "Metric", "MetricContext", "DEFAULT_METRICS", "LENGTH_METRICS", "LENGTH_ROBUST_METRICS",
    "RARE_TOKEN_METRICS", "MetricResult", "PairedResult", "compare", "needing_finished", "score", "rare_token_profile", "token_ids_fn", "validate_inputs",
]

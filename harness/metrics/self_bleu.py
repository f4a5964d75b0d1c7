"""Self-BLEU (Zhu et al. 2018): how much each output resembles the other outputs; lower = more diverse.

Each output is scored with sacrebleu's sentence BLEU (effective order, default 13a tokenizer) against
all other outputs as references, and the scores are averaged. Cost grows with n^2, so it is opt-in
(not in DEFAULT_METRICS) and refuses more than `MetricContext.self_bleu_max_outputs` outputs.
The bootstrap resamples the per-output scores; each score stays conditioned on the full output set.
"""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError
from harness.metrics.base import Batch, register


def self_bleu_per_output(outputs: list[str], max_outputs: int = 500) -> np.ndarray:
    """Sentence BLEU (0-100) of every output against all the others."""
    from sacrebleu.metrics import BLEU

    if len(outputs) > max_outputs:
        raise HarnessError(f"self-bleu on {len(outputs)} outputs is too slow (limit {max_outputs}; cost grows as n^2)",
                           "score a sample of the outputs, or raise MetricContext.self_bleu_max_outputs")
    if len(outputs) < 2:
        raise HarnessError("self-bleu needs at least 2 outputs", "score more examples or drop self-bleu")
    bleu = BLEU(effective_order=True)
    return np.array([bleu.sentence_score(hyp, outputs[:i] + outputs[i + 1:]).score
                     for i, hyp in enumerate(outputs)])


@register("self-bleu", "example", False,
          "Self-BLEU: mean sentence BLEU (sacrebleu, 0-100) of each output against all other outputs "
          "(opt-in, O(n^2), bounded).")
def _self_bleu(batch: Batch) -> np.ndarray:
    return self_bleu_per_output(batch.predictions, batch.context.self_bleu_max_outputs)

"""ITF loss (Nakamura et al. 2018, "Another Diversity-Promoting Objective Function for Neural
Dialogue Generation"): token cross-entropy weighted by the inverse token frequency,
w(t) = 1 / freq(t)^lambda, with freq counted over the training targets. The nearest prior art of
PDL, whose weight only adds an eps: 1 / (freq(t) + eps)^alpha.

pdl-bench finds it through the `pdl_bench.losses` entry point in pyproject.toml: install this
package next to pdl-bench and `pdl-bench run --loss itf` works, in every process of a sweep.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.losses import LossContext, LossSpec, TokenLoss
from harness.losses.base import gather_weights, token_count, weight_table

__version__ = "0.1.0"


class ITFConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Named `alpha`, so --alpha / sweep --alphas set it and tables label the arm itf(alpha=...).
    alpha: float = Field(0.4, ge=0, le=10, description=(
        "lambda of Nakamura et al. 2018 in w(t) = 1/freq(t)^lambda; 0 is plain CE"))


def itf_weights(counts: np.ndarray, special_ids: tuple[int, ...], size: int, alpha: float) -> np.ndarray:
    """1/count^alpha for the counted tokens, rescaled to mean 1 over the training target tokens (so
    the loss keeps CE's scale); weight 1 for special and never-counted tokens (1/0 has no value)."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.ones(size, dtype=np.float64)
    counted = counts > 0
    counted[[i for i in special_ids if i < counts.size]] = False
    if counted.any():
        raw = counts[counted] ** -alpha
        weights[: counts.size][counted] = raw / ((counts[counted] * raw).sum() / counts[counted].sum())
    return weights


class ITFLoss(TokenLoss):
    """sum_t w(y_t) * nll_t / num_items_in_batch: a per-token weighted CE, so pdl-bench's chunked
    fast path applies to it as to pdl."""

    name = "itf"

    def __init__(self, config: ITFConfig, context: LossContext):
        super().__init__(config, context)
        self.token_weights = itf_weights(context.frequencies.counts, context.special_ids_list,
                                         context.vocab_size, config.alpha)
        self._tables: dict = {}

    def target_weights(self, targets, num_items_in_batch=None):
        weights = gather_weights(weight_table(self.token_weights, targets.device, self._tables), targets)
        return weights, token_count(targets, num_items_in_batch)


ITF = LossSpec(
    name="itf",
    description="ITF loss (Nakamura et al. 2018): CE weighted by 1/freq(t)^lambda over training-target "
                "counts, mean weight 1; special and unseen tokens weight 1.",
    config_cls=ITFConfig,
    needs_frequencies=True,
    build=ITFLoss,
)

"""Plain token cross-entropy: the control arm every other loss is compared against."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from harness.losses.base import (
    LOSSES, LossContext, LossSpec, TokenLoss, target_mask, token_count,
)


class CEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrossEntropyLoss(TokenLoss):
    """mean over target tokens of -log p(y_t): sum / num_items_in_batch (accumulation invariant)."""

    name = "ce"

    def target_weights(self, targets, num_items_in_batch=None):
        return target_mask(targets).float(), token_count(targets, num_items_in_batch)


def build_ce(config: CEConfig, context: LossContext) -> CrossEntropyLoss:
    return CrossEntropyLoss(config, context)


LOSSES.register("ce", LossSpec(
    name="ce",
    description="Token cross-entropy (maximum likelihood): the control arm.",
    config_cls=CEConfig,
    needs_frequencies=False,
    build=build_ce,
))

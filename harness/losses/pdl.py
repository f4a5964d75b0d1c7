"""Power-Law Decay Loss (Shao et al., arXiv 2505.16900): token CE weighted by w(t) = 1/(freq(t)+eps)^alpha.

`pdl` is the method with the official code's defects fixed (safe weights for special and unseen
tokens, a normalisation that survives gradient accumulation, the right shift for seq2seq);
`pdl-official` reproduces the official `trainer.py` arithmetic. the README (section "Losses") explains each choice.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.errors import HarnessError
from harness.losses.base import (
    LOSSES, LossContext, LossSpec, TokenLoss, gather_weights, token_count, weight_table,
)


class PDLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    alpha: float = Field(1.0, ge=0, le=10, description=(
        "decay exponent alpha in w(t) = 1/(freq(t)+eps)^alpha; 0 is plain CE (paper: 0.25-1.5; "
        "1.0 as the official code)"))
    eps: float = Field(1e-7, gt=0, description=(
        "eps in w(t); only matters for tokens with freq 0 (freq_unit=count) or tiny relative "
        "frequencies (freq_unit=relative)"))
    freq_source: Literal["targets", "all_text"] = Field("targets", description=(
        "text the frequencies are counted over: training targets (paper's intent) or prompt + "
        "target text (official code); the table given must match"))
    freq_unit: Literal["count", "relative"] = Field("count", description=(
        "freq(t) as raw counts (official code) or counts / total"))
    normalization: Literal["corpus_mean", "batch_weight_sum"] = Field("corpus_mean", description=(
        "corpus_mean: weights rescaled to mean 1 over the counted tokens, loss = sum(w*l) / "
        "num_items_in_batch (accumulation and batch-composition invariant); batch_weight_sum: "
        "sum(w*l) / sum(w) per micro-batch (paper/official)"))
    special_weight: Literal["neutral", "formula"] = Field("neutral", description=(
        "special and added tokens (EOS, chat markers, ids >= tokenizer.vocab_size): neutral = "
        "weight 1 (as CE, so stopping is not reweighted); formula = weighted like any token"))
    unseen_weight: Literal["neutral", "max_seen", "formula"] = Field("neutral", description=(
        "tokens never counted: neutral = weight 1; max_seen = the largest weight of a counted "
        "token; formula = eps^-alpha before normalisation (official: 1e7 for the defaults)"))
    min_weight: float | None = Field(None, gt=0, description=(
        "clip weights from below after normalisation (neutral tokens stay 1)"))
    max_weight: float | None = Field(None, gt=0, description=(
        "clip weights from above after normalisation (neutral tokens stay 1)"))

    @model_validator(mode="after")
    def _clip_order(self):
        if self.min_weight is not None and self.max_weight is not None and self.min_weight > self.max_weight:
            raise ValueError(f"min_weight {self.min_weight} is above max_weight {self.max_weight}")
        return self


class PDLOfficialConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    alpha: float = Field(1.0, ge=0, le=10, description="pdl_alpha of the official code")
    eps: float = Field(1e-7, gt=0, description="pdl_epsilon of the official code")
    freq_source: Literal["all_text"] = Field("all_text", description=(
        "fixed: the official code counts the whole text column (prompt + target)"))


# The official trainer.py arithmetic as `pdl` options: tests/test_losses.py checks that `pdl` with
# them gives pdl-official's weights (up to one constant), loss and gradients; the ablation
# (results/reference/ablation.yaml) flips the choices where they differ from pdl's defaults.
OFFICIAL_OPTIONS = {"alpha": 1.0, "eps": 1e-7, "freq_source": "all_text", "freq_unit": "count",
                    "normalization": "batch_weight_sum", "unseen_weight": "formula", "special_weight": "formula"}


def official_choices() -> dict[str, tuple[str, str]]:
    """{option: (official value, pdl default)} for each option where the official arithmetic and
    pdl's defaults differ, in PDLConfig's order: the choices the ablation varies one at a time."""
    default = PDLConfig().model_dump()
    return {name: (OFFICIAL_OPTIONS[name], value) for name, value in default.items()
            if name in OFFICIAL_OPTIONS and OFFICIAL_OPTIONS[name] != value}


def _raw_weights(counts: np.ndarray, alpha: float, eps: float, unit: str) -> np.ndarray:
    freq = counts.astype(np.float64)
    if unit == "relative" and freq.sum() > 0:
        freq = freq / freq.sum()
    return 1.0 / (freq + eps) ** alpha


def pdl_weights(config: PDLConfig, context: LossContext) -> np.ndarray:
    """Per-token weights [vocab_size] (float64) for `pdl`, normalised so that the counted tokens'
    mean weight is 1 (the scale is irrelevant under batch_weight_sum but fixes what 1 means)."""
    counts = np.asarray(context.frequencies.counts)
    n = counts.size
    raw = _raw_weights(counts, config.alpha, config.eps, config.freq_unit)
    neutral = np.zeros(n, dtype=bool)
    if config.special_weight == "neutral":
        neutral[[i for i in context.special_ids_list if i < n]] = True
        neutral[context.base_vocab_size:] = True
    seen = (counts > 0) & ~neutral
    unseen = (counts == 0) & ~neutral

    rest = counts.sum() - counts[neutral].sum()  # integer sums: exact, so alpha=0 gives scale 1.0
    scale = float((counts[seen] * raw[seen]).sum() / rest) if rest > 0 else 1.0
    weights = np.ones(context.vocab_size, dtype=np.float64)  # ids past the tokenizer: never targets
    weights[:n][seen] = raw[seen] / scale
    formula_ids = seen.copy()
    if config.unseen_weight == "formula":
        weights[:n][unseen] = raw[unseen] / scale
        formula_ids |= unseen
    elif config.unseen_weight == "max_seen":
        weights[:n][unseen] = weights[:n][seen].max() if seen.any() else 1.0
        formula_ids |= unseen
    if config.min_weight is not None or config.max_weight is not None:
        weights[:n][formula_ids] = np.clip(weights[:n][formula_ids], config.min_weight, config.max_weight)
    if not np.all(np.isfinite(weights)) or weights.max() > np.finfo(np.float32).max:
        raise HarnessError(
            f"PDL weights overflow for alpha={config.alpha}, eps={config.eps}",
            "lower alpha, raise eps, or set max_weight",
        )
    return weights


def official_weights(config: PDLOfficialConfig, context: LossContext) -> np.ndarray:
    """The official table: 1/(count+eps)^alpha for ids < tokenizer.vocab_size, never normalised;
    never-counted tokens (EOS, chat markers) get eps^-alpha. Ids past it are unused (see the loss)."""
    weights = np.ones(context.vocab_size, dtype=np.float64)
    base = min(context.base_vocab_size, context.frequencies.size)
    weights[:base] = _raw_weights(context.frequencies.counts[:base], config.alpha, config.eps, "count")
    return weights


class PowerLawDecayLoss(TokenLoss):
    """sum_t w(y_t) * nll_t, divided by num_items_in_batch (corpus_mean) or by sum_t w(y_t)."""

    name = "pdl"

    def __init__(self, config, context, weights: np.ndarray, *, per_batch: bool, shift=None, id_limit=None):
        super().__init__(config, context, shift=shift)
        self.token_weights = torch.as_tensor(weights, dtype=torch.float32)
        self.per_batch = per_batch
        self.scaled_for_grad_accumulation = not per_batch
        self._id_limit = id_limit  # official table only covers ids < tokenizer.vocab_size
        self._tables: dict = {}

    def target_weights(self, targets, num_items_in_batch=None):
        if self._id_limit is not None and bool((targets >= self._id_limit).any()):
            bad = int(targets.max())
            raise HarnessError(
                f"label id {bad} is past tokenizer.vocab_size={self._id_limit}: the official PDL "
                "code indexes its weight table out of range here (added special tokens)",
                "use the 'pdl' loss, which weights added tokens safely",
            )
        weights = gather_weights(weight_table(self.token_weights, targets.device, self._tables), targets)
        if self.per_batch:
            return weights, weights.sum().clamp_min(torch.finfo(torch.float32).tiny)
        return weights, token_count(targets, num_items_in_batch)


def build_pdl(config: PDLConfig, context: LossContext) -> PowerLawDecayLoss:
    return PowerLawDecayLoss(
        config, context, pdl_weights(config, context), per_batch=config.normalization == "batch_weight_sum"
    )


def build_pdl_official(config: PDLOfficialConfig, context: LossContext) -> PowerLawDecayLoss:
    if context.is_encoder_decoder:
        warnings.warn(
            "pdl-official shifts labels as for a causal LM even on an encoder-decoder model (as the "
            "official code does): each decoder position is trained on the token after its target; "
            "use 'pdl' for a correct seq2seq loss",
            stacklevel=2,
        )
    limit = context.base_vocab_size if context.tokenizer_size > context.base_vocab_size else None
    loss = PowerLawDecayLoss(
        config, context, official_weights(config, context), per_batch=True, shift=True, id_limit=limit
    )
    loss.name = "pdl-official"
    return loss


LOSSES.register("pdl", LossSpec(
    name="pdl",
    description="Power-Law Decay Loss, w(t) = 1/(freq(t)+eps)^alpha, with safe defaults: "
    "targets-only frequencies, corpus-mean normalisation, neutral weight for special/unseen tokens.",
    config_cls=PDLConfig,
    needs_frequencies=True,
    build=build_pdl,
))
LOSSES.register("pdl-official", LossSpec(
    name="pdl-official",
    description="PDL exactly as the official trainer.py computes it: raw counts over all text, "
    "eps 1e-7, sum(w*l)/sum(w) per micro-batch, 1e7 weight on never-counted tokens, causal shift.",
    config_cls=PDLOfficialConfig,
    needs_frequencies=True,
    build=build_pdl_official,
))

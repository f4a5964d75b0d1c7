"""Peer losses PDL is compared against: FACE, token-level unlikelihood, focal loss, label smoothing.

All divide a sum over target tokens by num_items_in_batch (or the micro-batch's token count), like
`ce`, so they are invariant to gradient accumulation, and each reduces exactly to CE at its zero.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from harness.losses.base import (
    LOSSES, LossContext, LossSpec, TokenLoss, gather_weights, log_probs, mean_over_tokens, target_mask,
    token_count, token_nll, weight_table,
)


def _strict(**kwargs) -> ConfigDict:
    return ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, **kwargs)


# ---- FACE (Jiang et al. 2019) ---------------------------------------------------------------


class FACEConfig(BaseModel):
    model_config = _strict()
    freq_source: Literal["targets", "all_text"] = Field("targets", description=(
        "text the static frequencies are counted over (FACE counts model outputs online; the "
        "training targets are the static stand-in)"))


class FACEOnlineConfig(BaseModel):
    model_config = _strict()


def face_weights(counts: np.ndarray, special_ids, size: int) -> np.ndarray:
    """w_i = 1 - RF_i / max RF, rescaled to mean 1 over the vocabulary (FACE 'pre' weighting).
    Special tokens (EOS included) are never counted, so they get the largest raw weight, 1."""
    counts = np.asarray(counts, dtype=np.float64).copy()
    counts[[i for i in special_ids if i < counts.size]] = 0
    weights = np.ones(size, dtype=np.float64)
    if counts.max() > 0:
        rf = counts / counts.sum()
        raw = 1.0 - rf / rf.max()
        weights[: counts.size] = raw / raw.mean()
    return weights


class FACELoss(TokenLoss):
    """sum_t w(y_t) * nll_t / num_items_in_batch, with FACE weights from a static frequency table."""

    name = "face"

    def __init__(self, config, context, weights):
        super().__init__(config, context)
        self.token_weights = torch.as_tensor(weights, dtype=torch.float32)
        self._tables: dict = {}

    def target_weights(self, targets, num_items_in_batch=None):
        weights = gather_weights(weight_table(self.token_weights, targets.device, self._tables), targets)
        return weights, token_count(targets, num_items_in_batch)


def before_first_end(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, T] mask of the predictions FACE counts: those at target positions before the first
    predicted end token of their sequence (FACE's code cuts each output there and counts nothing
    after it). A sequence is a run of consecutive targets (a packed row holds several, split by
    -100 labels); its end token is its last target, as every target ends with the tokenizer's
    eos (harness.data.preprocess). The end prediction itself is not counted either."""
    valid = target_mask(targets)
    if not valid.any():
        return valid
    start = valid & ~F.pad(valid, (1, 0))[:, :-1]  # first target of each run
    end = valid & ~F.pad(valid, (0, 1))[:, 1:]  # last target of each run
    run = (start.flatten().cumsum(0) - 1).clamp_min(0).view_as(targets)  # run index per position
    hit = valid & (predicted == targets[end][run])  # predicted its run's end token
    hits = hit.flatten().cumsum(0)
    hits_before_run = (hits - hit.flatten().long())[start.flatten()]
    return valid & (hits.view_as(targets) == hits_before_run[run])


class FACEOnlineLoss(TokenLoss):
    """FACE with frequencies of the model's own argmax predictions at target positions, up to the
    first predicted end token of each sequence, updated before each training call (grad enabled;
    evaluation calls leave the counts alone)."""

    name = "face-online"

    def __init__(self, config, context):
        super().__init__(config, context)
        self.counts = torch.zeros(context.tokenizer_size, dtype=torch.float64)

    @property
    def token_weights(self) -> torch.Tensor:
        weights = face_weights(self.counts.numpy(), self.context.special_ids_list, self.context.vocab_size)
        return torch.as_tensor(weights, dtype=torch.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The running output counts: saved in every checkpoint so a resumed run continues them."""
        return {"counts": self.counts.numpy().copy()}

    def load_state_dict(self, state) -> None:
        self.counts = torch.as_tensor(np.asarray(state["counts"]), dtype=torch.float64).clone()

    def compute(self, logits, targets, num_items_in_batch):
        if torch.is_grad_enabled():
            with torch.no_grad():
                predicted = logits.argmax(-1)
                predicted = predicted[before_first_end(predicted, targets)]
                predicted = predicted[predicted < self.counts.numel()]
                new = torch.bincount(predicted, minlength=self.counts.numel()).double()
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(new)  # every rank keeps the same, global counts
                self.counts += new.cpu()
        weights = gather_weights(self.token_weights.to(logits.device), targets)
        return (weights * token_nll(logits, targets)).sum() / token_count(targets, num_items_in_batch)


# ---- Token-level unlikelihood (Welleck et al. 2020) -------------------------------------------


class UnlikelihoodConfig(BaseModel):
    model_config = _strict()
    alpha_ul: float = Field(1.0, ge=0, description=(
        "weight of the unlikelihood term; 0 is plain CE (Welleck et al. use 1.0)"))


def previous_token_candidates(targets: torch.Tensor) -> torch.Tensor:
    """[B, T, T] mask: cand[b, t, s] says target s is a negative candidate at step t, i.e. s < t,
    s is the first occurrence of its token among the row's targets, and it differs from y_t."""
    valid = target_mask(targets)
    length = targets.shape[1]
    same = targets[:, :, None] == targets[:, None, :]
    earlier = torch.ones(length, length, dtype=torch.bool, device=targets.device).tril(-1)
    repeated = (same & earlier & valid[:, None, :]).any(-1)
    first = valid & ~repeated
    return earlier & first[:, None, :] & ~same & valid[:, :, None]


class UnlikelihoodLoss(TokenLoss):
    """(sum_t nll_t + alpha_ul * sum_t sum_{c in C_t} -log(1 - p(c))) / num_items_in_batch, with
    C_t the earlier target tokens of the same sequence (the prompt is not a candidate)."""

    name = "unlikelihood"

    def compute(self, logits, targets, num_items_in_batch):
        if self.config.alpha_ul == 0:
            return mean_over_tokens(token_nll(logits, targets), targets, num_items_in_batch)
        logp = log_probs(logits)
        safe = targets.clamp_min(0)
        nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1) * target_mask(targets)
        candidates = previous_token_candidates(targets)
        cand_logp = logp.gather(-1, safe[:, None, :].expand(-1, targets.shape[1], -1))
        one_minus_p = (1.0 - cand_logp.exp()).clamp_min(1e-5)
        unlikely = (-torch.log(one_minus_p) * candidates).sum(-1)
        per_token = nll + self.config.alpha_ul * unlikely
        return mean_over_tokens(per_token, targets, num_items_in_batch)


# ---- Focal loss and label smoothing -------------------------------------------------------------


class FocalConfig(BaseModel):
    model_config = _strict()
    gamma: float = Field(1.0, ge=0, description="focusing exponent: -(1-p)^gamma log p; 0 is plain CE")


def focal_factor(nll: torch.Tensor, gamma: float) -> torch.Tensor:
    """(1 - p)^gamma from nll = -log p. Where float32 p == 1 the factor is 0 with gradient 0 (the
    true limit, as nll ~ 1 - p): a plain pow would have an infinite slope there for gamma < 1,
    and 0 * inf is a NaN gradient. expm1 keeps 1 - p accurate as p -> 1."""
    one_minus_p = -torch.expm1(-nll)
    positive = one_minus_p > 0
    safe = torch.where(positive, one_minus_p, torch.ones_like(one_minus_p))
    return torch.where(positive, safe.pow(gamma), torch.zeros_like(one_minus_p))


class FocalLoss(TokenLoss):
    name = "focal"

    def compute(self, logits, targets, num_items_in_batch):
        nll = token_nll(logits, targets)
        if self.config.gamma > 0:  # skipping the factor at 0 keeps gradients exact where p == 1
            nll = focal_factor(nll, self.config.gamma) * nll
        return mean_over_tokens(nll, targets, num_items_in_batch)


class LabelSmoothingConfig(BaseModel):
    model_config = _strict()
    epsilon: float = Field(0.1, ge=0, lt=1, description=(
        "smoothing mass spread uniformly over the vocabulary (torch cross_entropy label_smoothing)"))


class LabelSmoothingLoss(TokenLoss):
    name = "label-smoothing"

    def compute(self, logits, targets, num_items_in_batch):
        per_token = token_nll(logits, targets, label_smoothing=self.config.epsilon)
        return mean_over_tokens(per_token, targets, num_items_in_batch)


def _register(name, description, config_cls, needs_frequencies, build):
    LOSSES.register(name, LossSpec(name, description, config_cls, needs_frequencies, build))


def _build_face(config: FACEConfig, context: LossContext) -> FACELoss:
    counts = context.frequencies.counts
    return FACELoss(config, context, face_weights(counts, context.special_ids_list, context.vocab_size))


_register("face", "FACE (Jiang et al. 2019), static: w = 1 - RF/max RF over training-target "
          "frequencies (special tokens uncounted), rescaled to mean 1 over the vocabulary.",
          FACEConfig, True, _build_face)
_register("face-online", "FACE (Jiang et al. 2019), online: RF counted from the model's argmax "
          "predictions during training, each cut at its first predicted end token, as in the paper's code.",
          FACEOnlineConfig, False, lambda config, context: FACEOnlineLoss(config, context))
_register("unlikelihood", "Token-level unlikelihood (Welleck et al. 2020): CE plus alpha_ul * "
          "-log(1-p) for earlier target tokens of the sequence.",
          UnlikelihoodConfig, False, lambda config, context: UnlikelihoodLoss(config, context))
_register("focal", "Focal loss (Lin et al. 2017) on tokens: -(1-p)^gamma log p.",
          FocalConfig, False, lambda config, context: FocalLoss(config, context))
_register("label-smoothing", "Cross-entropy with uniform label smoothing (Szegedy et al. 2016).",
          LabelSmoothingConfig, False, lambda config, context: LabelSmoothingLoss(config, context))

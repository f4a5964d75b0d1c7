"""What every token loss shares: the registry, the build context, label alignment, the per-token
negative log-likelihood and the reduction. The per-token work lives in `token_nll` / `log_probs`
alone, so a chunked or fused implementation can replace it in one place.

Gradient accumulation, the Trainer's way (transformers >= 4.46, `Trainer(compute_loss_func=...)`):
the Trainer pops `labels`, counts `num_items_in_batch` = labels != -100 over *all* micro-batches of
one optimizer step (and devices), passes it to every micro-batch call and then does NOT divide the
loss by the accumulation steps. A loss that returns sum(per-token) / num_items_in_batch therefore
gives the same gradient as one big batch. With num_items_in_batch=None (evaluation, plain calls) we
divide by the micro-batch's own token count. Losses that normalise per micro-batch instead
(`scaled_for_grad_accumulation = False`) need `trainer.loss_is_scaled_for_ga = False`.

The causal shift and the count: logits[:, :-1] predict labels[:, 1:]. Trainer >= 5 counts
num_items_in_batch over labels[..., 1:] for causal LMs; older versions count all labels. The two
agree when labels[:, 0] == -100, which holds in pdl-bench because the prompt is always masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from harness.errors import HarnessError
from harness.frequency import TokenFrequencies
from harness.labels import IGNORE_INDEX
from harness.registry import Registry



@dataclass(frozen=True)
class LossContext:
    """What a loss needs to know about the tokenizer, the model and the data to build itself."""

    vocab_size: int  # model output dim (== len(tokenizer), or more for padded embeddings)
    base_vocab_size: int  # tokenizer.vocab_size (excludes tokens added after training)
    special_ids: frozenset[int]  # all_special_ids + added tokens
    is_encoder_decoder: bool
    frequencies: TokenFrequencies | None = None
    tokenizer_size: int | None = None  # len(tokenizer); defaults to vocab_size
    tokenizer_fingerprint: str | None = None  # None: skip the frequency-table fingerprint check
    special_ids_list: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self):
        if self.tokenizer_size is None:
            object.__setattr__(self, "tokenizer_size", self.vocab_size)
        if self.vocab_size < self.tokenizer_size:
            raise HarnessError(
                f"the model predicts {self.vocab_size} tokens but the tokenizer has {self.tokenizer_size}",
                "call model.resize_token_embeddings(len(tokenizer)) before training",
            )
        object.__setattr__(self, "special_ids", frozenset(int(i) for i in self.special_ids))
        object.__setattr__(self, "special_ids_list", tuple(sorted(self.special_ids)))


def loss_context(tokenizer, *, is_encoder_decoder: bool, frequencies=None, model_vocab_size=None) -> LossContext:
    from harness.frequency import tokenizer_fingerprint

    size = len(tokenizer)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    specials = {int(i) for i in tokenizer.all_special_ids} | {int(i) for i in added}
    return LossContext(
        vocab_size=int(model_vocab_size) if model_vocab_size is not None else size,
        base_vocab_size=int(tokenizer.vocab_size),
        special_ids=frozenset(specials),
        is_encoder_decoder=bool(is_encoder_decoder),
        frequencies=frequencies,
        tokenizer_size=size,
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
    )


class TokenLoss:
    """A loss usable as `Trainer(compute_loss_func=loss)`: loss(outputs, labels, num_items_in_batch)."""

    name: str = ""
    scaled_for_grad_accumulation: bool = True  # normalises by num_items_in_batch when given

    def __init__(self, config: BaseModel, context: LossContext, *, shift: bool | None = None):
        self.config = config
        self.context = context
        self.shift = (not context.is_encoder_decoder) if shift is None else shift

    def __call__(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        logits, targets = align(outputs, labels, self.shift, self.context.vocab_size)
        return self.compute(logits, targets, num_items_in_batch)

    def compute(self, logits, targets, num_items_in_batch) -> torch.Tensor:
        """sum(w * nll) / divisor, from `target_weights`; losses of another form override this."""
        weighted = self.target_weights(targets, num_items_in_batch)
        if weighted is None:
            raise NotImplementedError(f"{type(self).__name__} must define compute or target_weights")
        weights, divisor = weighted
        return (weights * token_nll(logits, targets)).sum() / divisor

    def target_weights(self, targets, num_items_in_batch=None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(w [targets.shape] float32, divisor) when this loss is sum(w * nll) / divisor, so a chunked
        implementation (harness.losses.chunked) can reuse the exact arithmetic; None otherwise."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.config!r})"


@dataclass(frozen=True)
class LossSpec:
    name: str
    description: str
    config_cls: type[BaseModel]
    needs_frequencies: bool
    build: Callable[[BaseModel, LossContext], TokenLoss]


def loss_spec_problem(name: str, spec: object) -> str | None:
    """Why `spec` is not a valid loss entry named `name` (None when it is): what a plugin's
    `pdl_bench.losses` entry point must name; its options are then validated like a builtin's."""
    if not isinstance(spec, LossSpec):
        return f"is a {type(spec).__name__}, not a harness.losses.LossSpec"
    if spec.name != name:
        return f"is named {spec.name!r}, not {name!r} as its entry point"
    if not (isinstance(spec.config_cls, type) and issubclass(spec.config_cls, BaseModel)) or not callable(spec.build):
        return "needs a pydantic options class (config_cls) and a build(options, context) callable"
    if spec.config_cls.model_config.get("extra") != "forbid":
        return "its options class must forbid unknown keys (model_config = ConfigDict(extra='forbid')), " \
               "so a misspelt option fails"
    try:
        spec.config_cls()
    except Exception as err:  # noqa: BLE001 - whatever the class raises, the plugin is unusable
        return f"its options class has no valid defaults ({type(err).__name__}: {err})"
    return None


LOSSES: Registry[LossSpec] = Registry("loss", plugin_group="pdl_bench.losses", check=loss_spec_problem)


def align(outputs, labels, shift: bool, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, T, V] and the targets [B, T] they predict (causal: shifted by one)."""
    if labels is None:
        raise HarnessError(
            "the loss was called without labels",
            "keep a 'labels' column in the dataset (the Trainer pops it and passes it to the loss)",
        )
    if torch.is_tensor(outputs):
        logits = outputs
    elif isinstance(outputs, (tuple, list)):  # return_dict=False: logits come first when no loss
        logits = outputs[0]
    else:
        logits = outputs["logits"]
    if logits.shape[-1] != vocab_size:
        raise HarnessError(
            f"logits have {logits.shape[-1]} classes but the loss was built for {vocab_size}",
            "build the loss with loss_context(..., model_vocab_size=model.config.vocab_size)",
        )
    if logits.shape[:-1] != labels.shape:
        raise HarnessError(
            f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}",
            "pass the model output and the labels of the same batch",
        )
    labels = labels.to(logits.device)
    if shift:
        return logits[:, :-1, :], labels[:, 1:]
    return logits, labels


def token_nll(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-token -log p(target) [B, T] in float32 (0 where target == -100), whatever the logits dtype."""
    flat = logits.reshape(-1, logits.shape[-1]).float()
    nll = F.cross_entropy(
        flat, targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none", label_smoothing=label_smoothing
    )
    return nll.view(targets.shape)


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Full float32 log-probabilities [B, T, V], for losses that look beyond the target token."""
    return torch.log_softmax(logits.float(), dim=-1)


def target_mask(targets: torch.Tensor) -> torch.Tensor:
    return targets.ne(IGNORE_INDEX)


def token_count(targets: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """The divisor: num_items_in_batch when the Trainer gives it, else this micro-batch's targets."""
    if num_items_in_batch is None:
        return target_mask(targets).sum().clamp_min(1).float()
    if torch.is_tensor(num_items_in_batch):
        return num_items_in_batch.to(device=targets.device, dtype=torch.float32).clamp_min(1)
    return torch.tensor(max(float(num_items_in_batch), 1.0), device=targets.device)


def mean_over_tokens(per_token: torch.Tensor, targets: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """sum(per-token loss over targets) / token_count: invariant to gradient accumulation."""
    per_token = per_token * target_mask(targets)
    return per_token.sum() / token_count(targets, num_items_in_batch)


def weight_table(weights, device: torch.device, cache: dict) -> torch.Tensor:
    """A float32 copy of a per-token weight table on `device`, made once per device."""
    if device not in cache:
        cache[device] = torch.as_tensor(weights, dtype=torch.float32).to(device)
    return cache[device]


def gather_weights(table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Weight of each target token [B, T], 0 at ignored positions."""
    return table[targets.clamp_min(0)] * target_mask(targets)

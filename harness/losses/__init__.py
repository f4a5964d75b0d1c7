"""Training losses by name: `build_loss("pdl", {"alpha": 0.5}, loss_context(tokenizer, ...))`.

Every loss is a callable `loss(outputs, labels, num_items_in_batch=None) -> scalar`, usable as
`transformers.Trainer(compute_loss_func=loss)`, with `.name`, `.config` (validated options) and
`.scaled_for_grad_accumulation` (False: set `trainer.loss_is_scaled_for_ga = False`).
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from harness.errors import HarnessError
from harness.losses.base import LOSSES, LossContext, LossSpec, TokenLoss, loss_context, token_nll
from harness.losses import ce as _ce, pdl as _pdl, peers as _peers  # noqa: F401  (register losses)


__all__ = [
    "LOSSES", "LossContext", "LossSpec", "TokenLoss", "build_loss", "frequency_source",
    "loss_context", "token_nll", "validate_options",
]


def validate_options(name: str, options: dict | None) -> BaseModel:
    """The loss's options as its validated pydantic config; one HarnessError for any bad option."""
    spec = LOSSES.get(name)
    options = dict(options or {})
    valid = ", ".join(spec.config_cls.model_fields) or "(none)"
    try:
        return spec.config_cls(**options)
    except ValidationError as err:
        unknown = [str(e["loc"][0]) for e in err.errors() if e["type"] == "extra_forbidden"]
        if unknown:
            raise HarnessError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for loss {name!r}",
                f"valid options: {valid} (see `pdl-bench losses`)",
            ) from None
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise HarnessError(f"invalid option for loss {name!r}: {problems}", f"valid options: {valid}") from None
    except TypeError as err:
        raise HarnessError(f"invalid options for loss {name!r}: {err}", f"valid options: {valid}") from None


def frequency_source(name: str, options: dict | None) -> str | None:
    """What the runner must count before building this loss: "targets", "all_text" or None."""
    spec = LOSSES.get(name)
    if not spec.needs_frequencies:
        return None
    return getattr(validate_options(name, options), "freq_source", "targets")


def _check_frequencies(name: str, config: BaseModel, context: LossContext) -> None:
    freqs = context.frequencies
    if freqs is None:
        raise HarnessError(
            f"loss {name!r} needs token frequencies but none were given",
            "count them with harness.frequency.frequencies_from_token_ids and pass them to loss_context",
        )
    if freqs.size != context.tokenizer_size or (
        context.tokenizer_fingerprint is not None and freqs.tokenizer_fingerprint != context.tokenizer_fingerprint
    ):
        raise HarnessError(
            f"the token-frequency table for loss {name!r} was counted with another tokenizer "
            f"({freqs.size} ids, fingerprint {freqs.tokenizer_fingerprint[:12]}) than the model's "
            f"({context.tokenizer_size} ids, fingerprint {(context.tokenizer_fingerprint or '?')[:12]})",
            "recount the frequencies with the model's tokenizer (delete the stale cache file)",
        )
    wanted = getattr(config, "freq_source", None)
    if wanted is not None and freqs.source != wanted:
        raise HarnessError(
            f"loss {name!r} wants frequencies over {wanted!r} but the table was counted over {freqs.source!r}",
            f"count over {wanted!r}, or set the option freq_source={freqs.source!r}",
        )
    if freqs.total == 0:
        raise HarnessError(f"the token-frequency table for loss {name!r} is empty", "count a non-empty dataset")


def build_loss(name: str, options: dict | None, context: LossContext) -> TokenLoss:
    """Validate `options` for loss `name` and build it for `context` (tokenizer, model, frequencies)."""
    spec = LOSSES.get(name)
    config = validate_options(name, options)
    if spec.needs_frequencies:
        _check_frequencies(name, config, context)
    loss = spec.build(config, context)
    loss.name = name
    return loss


def applied_weights(loss: TokenLoss, target_ids, eos_id: int | None, decode=None) -> dict | None:
    """The per-token weights `loss` gives the token ids that occur as training targets, taken when
    training starts: the smallest, the largest (and its token), and the end-of-sequence token's,
    so a page can show the mechanism next to the effect (the official PDL code's 1e7 on a
    never-counted EOS). None for a loss that is not a per-token weighted cross-entropy
    (unlikelihood); an online loss (face-online) gives its weights before the first update."""
    import torch

    ids = torch.as_tensor(sorted({int(i) for i in target_ids}), dtype=torch.long)
    if ids.numel() == 0:
        return None
    weighted = loss.target_weights(ids[None, :])
    if weighted is None:
        table = getattr(loss, "token_weights", None)
        if table is None:
            return None
        weights = torch.as_tensor(table, dtype=torch.float32)[ids]
    else:
        weights = weighted[0][0].float()
    top = int(ids[int(weights.argmax())])
    eos_index = (ids == eos_id).nonzero() if eos_id is not None else ids.new_empty((0, 1))
    return {
        "over": "token ids that occur as training targets, before the first update",
        "n_token_ids": int(ids.numel()),
        "min": float(weights.min()),
        "max": float(weights.max()),
        "max_token_id": top,
        "max_token": decode(top) if decode is not None else None,
        "eos": float(weights[int(eos_index[0, 0])]) if eos_index.numel() else None,
    }

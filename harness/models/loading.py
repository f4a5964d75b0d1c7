"""Turn what the user typed (builtin alias, local folder, hub id) into a model and a tokenizer that agree.

Generation and loss code rely on pad/eos ids being set and identical in the tokenizer, the model
config and the generation config; `load_model` makes them so, once, here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.hub import require_hub
from harness.models.builtin import BUILTIN_MODELS
from harness.models.cache import ensure_cached

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


def _offline_alternatives() -> str:
    return (f"offline, use a builtin model ({', '.join(BUILTIN_MODELS)}) or a local folder saved with "
            "save_pretrained (config.json + weights + tokenizer)")


@dataclass(frozen=True)
class ModelSpec:
    ref: str      # what the user typed: builtin alias, local path, or hub id
    kind: str     # "causal" | "seq2seq"
    source: str   # "builtin" | "local" | "hub"


def _looks_local(ref: str, path: Path) -> bool:
    if ref.startswith(("./", "../", "/", "~", ".\\")) or ref in (".", "..") or ref.endswith("/"):
        return True
    return path.exists() or (len(path.parts) > 1 and Path(path.parts[0]).exists())


def _config(location: str, ref: str, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise HarnessError(f"model {ref!r} needs its own Python code to load",
                               "pass --trust-remote-code only if you trust that code") from err
        raise HarnessError(f"cannot read the config of model {ref!r}: {err}") from err
    except OSError as err:
        raise HarnessError(f"cannot read the config of model {ref!r}: {err}") from err


def _kind(config) -> str:
    return "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"


def resolve_model(ref: str, *, trust_remote_code: bool = False) -> ModelSpec:
    """Say what `ref` is and which kind of model it holds; fail fast (offline too) on anything unusable."""
    ref = str(ref)
    if ref in BUILTIN_MODELS:
        return ModelSpec(ref, BUILTIN_MODELS[ref].kind, "builtin")
    path = Path(ref).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return ModelSpec(ref, _kind(_config(str(path), ref, trust_remote_code)), "local")
    if _looks_local(ref, path):
        what = "has no config.json" if path.is_dir() else "is not a folder" if path.exists() else "does not exist"
        raise HarnessError(f"model path {ref!r} {what}",
                           "give a folder saved with save_pretrained (config.json + weights + tokenizer), "
                           f"or a builtin model: {', '.join(BUILTIN_MODELS)}")
    if HUB_ID.fullmatch(ref):
        require_hub(ref, "model", _offline_alternatives())
        return ModelSpec(ref, _kind(_config(ref, ref, trust_remote_code)), "hub")
    close = difflib.get_close_matches(ref, list(BUILTIN_MODELS), n=1, cutoff=0.5)
    raise HarnessError(
        f"unknown model {ref!r}: not a builtin model, a local folder, or a hub id (org/name)",
        f"did you mean {close[0]!r}?" if close else
        f"builtin models: {', '.join(BUILTIN_MODELS)}; "
        "hub models need their full id, e.g. HuggingFaceTB/SmolLM2-135M",
    )


def base_reference(ref: str) -> dict[str, str]:
    """How a kept adapter names its base model. `model`: what pdl-bench loads it by on any machine
    (a builtin alias, converted into that machine's cache; a hub id; a local folder's absolute
    path, which only its machine has). `public_id`: what anyone else loads it by (adapter_config's
    base_model_name_or_path, the hub's model card): a builtin's hub id (the model it was converted
    from; its alias when no hub model holds it), the hub id, or the folder's path."""
    ref = str(ref)
    if ref in BUILTIN_MODELS:
        return {"model": ref, "public_id": BUILTIN_MODELS[ref].hub_id or ref}
    path = Path(ref).expanduser()
    if _looks_local(ref, path):
        return {"model": str(path.resolve()), "public_id": str(path.resolve())}
    return {"model": ref, "public_id": ref}


def _location(spec: ModelSpec) -> str:
    if spec.source == "builtin":
        return str(ensure_cached(BUILTIN_MODELS[spec.ref]))
    return str(Path(spec.ref).expanduser()) if spec.source == "local" else spec.ref


def _ensure_eos_and_pad(tokenizer, config_eos=None) -> None:
    """Give the tokenizer an eos (sep, or the config's) and a pad (eos) when it lacks them; never add tokens."""
    if tokenizer.eos_token is None:
        if tokenizer.sep_token is not None:
            tokenizer.eos_token = tokenizer.sep_token
        elif isinstance(config_eos, int):
            tokenizer.eos_token = tokenizer.convert_ids_to_tokens(config_eos)
        else:
            raise HarnessError("the model's tokenizer defines no end-of-sequence token",
                               "save the tokenizer with an eos_token set, then point --model at that folder")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _tokenizer_at(location: str, ref: str, trust_remote_code: bool, config_eos=None):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise HarnessError(f"cannot load the tokenizer of model {ref!r}: {err}",
                           "the model folder must also hold the tokenizer files (tokenizer.save_pretrained)") from err
    _ensure_eos_and_pad(tokenizer, config_eos)
    return tokenizer


def load_tokenizer(ref: str, *, trust_remote_code: bool = False):
    """The tokenizer of `ref` with eos and pad set. padding_side is left to the caller."""
    spec = resolve_model(ref, trust_remote_code=trust_remote_code)
    return _tokenizer_at(_location(spec), ref, trust_remote_code)


def _torch_dtype(dtype):
    """None means float32: the safe default for training on CPU. 'auto' keeps the checkpoint's dtype."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return getattr(torch, DTYPES[dtype.lower()])
    raise HarnessError(f"unknown dtype {dtype!r}", f"use one of: auto, {', '.join(DTYPES)}")


def _stop_ids(eos_id: int, current):
    """The tokenizer's eos first; keep any extra stop ids a chat model's config lists."""
    if isinstance(current, (list, tuple)) and len(current) > 1:
        return [eos_id, *(i for i in current if i != eos_id)]
    return eos_id


def _align_special_ids(model, tokenizer, kind: str) -> None:
    configs = [model.config] + ([model.generation_config] if model.generation_config is not None else [])
    start = None
    if kind == "seq2seq":
        start = next((c.decoder_start_token_id for c in configs
                      if getattr(c, "decoder_start_token_id", None) is not None), None)
        if start is None:
            start = next(i for i in (tokenizer.cls_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id)
                         if i is not None)
    for config in configs:
        config.pad_token_id = tokenizer.pad_token_id
        config.eos_token_id = _stop_ids(tokenizer.eos_token_id, getattr(config, "eos_token_id", None))
        if start is not None:
            config.decoder_start_token_id = start


def load_model(ref: str, *, trust_remote_code: bool = False, dtype=None, quantization_config=None):
    """(model, tokenizer, spec): causal -> AutoModelForCausalLM, seq2seq -> AutoModelForSeq2SeqLM;
    `quantization_config` loads the base quantized (QLoRA)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    spec = resolve_model(ref, trust_remote_code=trust_remote_code)
    location = _location(spec)
    auto = AutoModelForSeq2SeqLM if spec.kind == "seq2seq" else AutoModelForCausalLM
    try:
        extra = {"quantization_config": quantization_config} if quantization_config is not None else {}
        model = auto.from_pretrained(location, trust_remote_code=trust_remote_code, dtype=_torch_dtype(dtype),
                                     **extra)
    except (OSError, ValueError) as err:
        raise HarnessError(f"cannot load model {ref!r} as a {spec.kind} LM: {err}",
                           "pdl-bench needs a decoder-only or encoder-decoder LM with saved weights") from err
    tokenizer = _tokenizer_at(location, ref, trust_remote_code, getattr(model.config, "eos_token_id", None))
    _align_special_ids(model, tokenizer, spec.kind)
    return model, tokenizer, spec


def model_slug(ref: str) -> str:
    """A short, filesystem-safe name for results folders: the alias, or the last part of a path / hub id."""
    ref = str(ref)
    if ref in BUILTIN_MODELS:
        return ref
    path = Path(ref).expanduser()
    name = path.name or path.resolve().name
    if re.fullmatch(r"checkpoint-\d+", name) and path.parent.name:
        name = f"{path.parent.name}-{name}"  # many runs end in checkpoint-N: keep the run's name
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:64]
    return slug or "model"

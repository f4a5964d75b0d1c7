"""Parameter-efficient finetuning through peft: LoRA adapters on a frozen base, or QLoRA (the base
in 4 bits through bitsandbytes). peft builds and saves the adapters; this module only decides how
they are seeded, so paired arms start from the same adapter weights.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

from harness.errors import HarnessError

BASE_RECORD = "pdl-bench-base.json"  # in a kept adapter: harness.models.loading.base_reference of its base
ADAPTER_CONFIG = "adapter_config.json"


def check_adapter_support(settings) -> None:
    """Refuse QLoRA where it cannot run, before any data or model loads."""
    if settings is None or settings.method != "qlora":
        return
    import torch

    missing = [what for what, ok in (("a CUDA GPU", torch.cuda.is_available()),
                                     ("the bitsandbytes package", importlib.util.find_spec("bitsandbytes") is not None))
               if not ok]
    if missing:
        raise HarnessError(f"QLoRA loads the base model in 4 bits through bitsandbytes, which needs "
                           f"{' and '.join(missing)}; this machine lacks it",
                           "use --lora (training.peft.method=lora), which runs everywhere, or run on a "
                           "CUDA machine with `pip install bitsandbytes`")


def quantization_config(settings):
    """The from_pretrained quantization for QLoRA (4-bit NF4, double quantization, bf16 compute), else None."""
    if settings is None or settings.method != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def add_adapters(model, settings, *, seed: int, is_encoder_decoder: bool, gradient_checkpointing: bool):
    """The model wrapped by peft with fresh adapters. Their initial weights are drawn from a
    generator seeded with the point's seed alone (whatever the RNG did before), so every arm of a
    comparison starts from the same adapter; the base weights are frozen by peft."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    if settings.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.enable_input_require_grads()  # a frozen base's inputs need grads for checkpointed layers
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type=TaskType.SEQ_2_SEQ_LM if is_encoder_decoder else TaskType.CAUSAL_LM,
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        # peft (<= 0.21) asks transformers for a renamed attribute: a FutureWarning on every run
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        try:
            return get_peft_model(model, config)
        except ValueError as err:  # e.g. target modules that the model does not have
            raise HarnessError(f"peft could not add LoRA adapters: {err}",
                               "fix training.peft.target_modules (or use all-linear)") from err


def name_base_publicly(folder: Path, base: dict[str, str]) -> None:
    """peft names a saved adapter's base by the folder it was loaded from (for a builtin, this
    machine's model cache), in adapter_config.json and the model card: name it by its public id
    instead (`base`: harness.models.base_reference), and record pdl-bench's own reference
    (BASE_RECORD) for load_kept_model. Done once saved: with a hub id from the start, peft would
    look that id up on the hub at every checkpoint."""
    from harness.io import read_json, read_text, write_json_atomic, write_text_atomic

    config = read_json(folder / ADAPTER_CONFIG)
    local = config.get("base_model_name_or_path")
    config["base_model_name_or_path"] = base["public_id"]
    write_json_atomic(folder / ADAPTER_CONFIG, config)
    card = folder / "README.md"
    if local and card.is_file():
        write_text_atomic(card, read_text(card).replace(local, base["public_id"]))
    write_json_atomic(folder / BASE_RECORD, base)


def load_kept_model(folder, *, trust_remote_code: bool = False):
    """(model, tokenizer) of a model a point kept (<point>/model, <point>/adapter, or a copy of
    one, on any machine). A full model loads as it is. An adapter loads onto its base: the one
    pdl-bench trained it on (BASE_RECORD: a builtin is converted into this machine's cache), else
    the base its adapter_config.json names (an adapter from the hub)."""
    from peft import PeftModel

    from harness.io import read_json
    from harness.models.loading import load_model

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG).is_file():
        model, tokenizer, _ = load_model(str(folder), trust_remote_code=trust_remote_code)
        return model, tokenizer
    base = (read_json(folder / BASE_RECORD)["model"] if (folder / BASE_RECORD).is_file()
            else read_json(folder / ADAPTER_CONFIG)["base_model_name_or_path"])
    model, tokenizer, _ = load_model(base, trust_remote_code=trust_remote_code)
    return PeftModel.from_pretrained(model, str(folder)), tokenizer

"""Parameter-efficient finetuning through peft: LoRA adapters on a frozen base, or QLoRA (the base
in 4 bits through bitsandbytes). peft builds and saves the adapters; this module only decides how
they are seeded, so paired arms start from the same adapter weights.
"""

from __future__ import annotations

import importlib.util
import warnings

from harness.errors import HarnessError


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

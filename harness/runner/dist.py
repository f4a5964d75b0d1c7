"""The process's place in a `torchrun` / `accelerate launch` job (or a single process).

On machines without CUDA, accelerate only forms a multi-process (gloo) group when told it runs on
CPU; without that every rank would believe it is the only, main process and all would write results.
"""

from __future__ import annotations


def use_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def _on_or_auto_on_gpu(requested: str) -> bool:
    """An auto|on|off setting for a lever that pays off only where CUDA compiles it."""
    return requested == "on" or (requested == "auto" and not use_cpu())


def fast_training_enabled(requested: str) -> bool:
    """RunConfig.fast for training (packed rows + chunked loss): on unless 'off'. It pays off on
    CPU too: 1.59x on the default bible point with identical generations (docs/perf.md)."""
    return requested != "off"


def fast_generation_enabled(requested: str) -> bool:
    """RunConfig.fast for generation (static KV cache): 'auto' uses it on CUDA only, where
    transformers compiles it; uncompiled on CPU it gains little. 'on' forces it."""
    return _on_or_auto_on_gpu(requested)


def compile_enabled(requested: str, fast_training: bool) -> bool:
    """RunConfig.compile: torch.compile (through the Trainer's `torch_compile`) is part of the fast
    training path; 'auto' compiles on CUDA, where it pays off, 'on' also on CPU."""
    return fast_training and _on_or_auto_on_gpu(requested)


def process_state():
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())

"""The process's place in a `torchrun` / `accelerate launch` job (or a single process).

On machines without CUDA, accelerate only forms a multi-process (gloo) group when told it runs on
CPU; without that every rank would believe it is the only, main process and all would write results.
"""

from __future__ import annotations


def use_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def process_state():
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())

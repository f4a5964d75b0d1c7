"""The run plan: which path a point takes, decided once (harness/runner/plan.py)."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.losses import build_loss
from harness.runner.plan import plan_run


@pytest.fixture(scope="module")
def causal(tiny_causal_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_causal_dir)


@pytest.fixture(scope="module")
def seq2seq(tiny_seq2seq_dir):
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq_dir)


def loss(name: str):
    from harness.losses.base import LossContext

    return build_loss(name, {}, LossContext(vocab_size=8, base_vocab_size=8, special_ids=frozenset(),
                                            is_encoder_decoder=False))


def plan(model, *, fast="auto", compile="auto", cuda=False, is_encoder_decoder=False, loss_name="ce"):
    return plan_run(fast=fast, compile=compile, model=model, is_encoder_decoder=is_encoder_decoder,
                    loss=loss(loss_name), cuda=cuda, bf16_supported=cuda)


def test_defaults_on_cpu_and_on_cuda(causal):
    cpu = plan(causal)
    assert (cpu.packed_rows, cpu.chunked_loss, cpu.compile, cpu.static_cache_generation, cpu.precision) == (
        True, True, False, False, "fp32")
    assert cpu.training_path == "fast (packed rows, chunked loss)"
    assert cpu.generation_path == "plain (dynamic KV cache)"
    gpu = plan(causal, cuda=True)
    assert (gpu.compile, gpu.static_cache_generation, gpu.precision) == (True, True, "bf16")
    assert gpu.training_path == "fast (packed rows, chunked loss, torch.compile)"


def test_plain_and_forced_paths(causal):
    plain = plan(causal, fast="off")
    assert not plain.packed_rows and not plain.compile and plain.training_path.startswith("plain")
    forced = plan(causal, fast="on", compile="on")
    assert forced.static_cache_generation and forced.compile
    with pytest.raises(HarnessError, match="--plain"):
        plan(causal, fast="off", compile="on")


def test_losses_without_the_per_token_form_keep_full_logits(causal):
    unchunked = plan(causal, loss_name="unlikelihood")
    assert unchunked.packed_rows and not unchunked.chunked_loss
    assert unchunked.training_path == "fast (packed rows, full logits)"


def test_encoder_decoder_models_take_the_plain_path(seq2seq):
    assert not plan(seq2seq, is_encoder_decoder=True).packed_rows
    with pytest.raises(HarnessError, match="cannot take"):
        plan(seq2seq, is_encoder_decoder=True, compile="on")


def test_auto_compiles_on_cuda_only_for_long_runs(causal):
    """Compiling costs minutes on a GPU (docs/perf.md): `auto` leaves a short point eager, and
    `on` compiles whatever the budget."""
    from harness.runner.plan import COMPILE_MIN_STEPS

    def compiled(steps, compile="auto"):
        return plan_run(fast="auto", compile=compile, model=causal, is_encoder_decoder=False, loss=loss("ce"),
                        cuda=True, bf16_supported=True, steps=steps).compile

    assert not compiled(40) and not compiled(COMPILE_MIN_STEPS - 1)
    assert compiled(COMPILE_MIN_STEPS) and compiled(None) and compiled(40, compile="on")


@pytest.mark.parametrize("n, accumulation, epochs, max_steps, drop_last", [
    (320, 1, 1.0, -1, False), (321, 1, 1.0, -1, False), (320, 3, 1.0, -1, False), (320, 7, 2.5, -1, False),
    (321, 1, 1.0, -1, True), (320, 1, 1.0, 7, False), (5, 4, 0.3, -1, False),
])
def test_planned_optimizer_steps_equal_the_trainers_own_count(tmp_path, n, accumulation, epochs, max_steps, drop_last):
    """The count the compile rule reads is the one transformers' Trainer arrives at."""
    from types import SimpleNamespace

    import torch
    from torch.utils.data import DataLoader
    from transformers import Trainer, TrainingArguments

    from harness.runner.plan import planned_optimizer_steps

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True,
                             gradient_accumulation_steps=accumulation, num_train_epochs=epochs,
                             max_steps=max_steps, dataloader_drop_last=drop_last, report_to=[])
    trainer = Trainer(model=torch.nn.Linear(1, 1), args=args)
    loader = DataLoader(list(range(n)), batch_size=8, drop_last=drop_last)
    trainers = trainer.set_initial_training_values(args, loader)[-1]
    budget = SimpleNamespace(max_steps=max_steps, per_device_train_batch_size=8, num_train_epochs=epochs,
                             gradient_accumulation_steps=accumulation,
                             trainer_options={"dataloader_drop_last": True} if drop_last else {})
    assert planned_optimizer_steps(n, budget) == trainers


def test_planned_optimizer_steps_split_the_batches_over_processes():
    from types import SimpleNamespace

    from harness.runner.plan import planned_optimizer_steps

    budget = SimpleNamespace(max_steps=-1, per_device_train_batch_size=8, gradient_accumulation_steps=1,
                             num_train_epochs=1.0, trainer_options={})
    assert planned_optimizer_steps(320, budget) == 40  # the bible task's CPU budget
    assert planned_optimizer_steps(320, budget, world_size=4) == 10

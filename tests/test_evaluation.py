"""Evaluation without full logits: the chunked validation CE equals the full-logits one, the models
it cannot serve fall back to the plain path, and generation computes the LM head at one position."""

from __future__ import annotations

import pytest

# (prompt, target) lengths: very different, so batches are padded; prompt labels are -100
EXAMPLES = [(3, 2), (5, 9), (2, 1), (4, 6)]


def _dataset(examples=EXAMPLES, *, seq2seq: bool = False):
    import datasets

    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for n_prompt, n_target in examples:
        ids = list(range(10, 10 + n_prompt + n_target))
        if seq2seq:  # encoder input = the prompt, labels = the target
            source, labels = ids[:n_prompt], ids[n_prompt:]
        else:
            source, labels = ids, [-100] * n_prompt + ids[n_prompt:]
        rows["input_ids"].append(source)
        rows["attention_mask"].append([1] * len(source))
        rows["labels"].append(labels)
    return datasets.Dataset.from_dict(rows)


def _reference_ce(model) -> float:
    """Token-level CE from each example alone (no padding), full logits."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for ids, labels in zip(*(_dataset()[c] for c in ("input_ids", "labels"))):
            logits = model(torch.tensor([ids])).logits[0, :-1]
            targets = torch.tensor(labels[1:])
            keep = targets != -100
            total += float(torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum"))
            count += int(keep.sum())
    return total / count


@pytest.fixture(scope="module")
def causal(tiny_causal_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_causal_dir), AutoTokenizer.from_pretrained(tiny_causal_dir)


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_chunked_validation_ce_equals_full_logits(causal, batch_size, padding_side):
    from harness.runner.evaluation import CHUNKED_PATH, FULL_LOGITS_PATH, validation_ce

    model, tokenizer = causal
    tokenizer.padding_side = padding_side
    kwargs = dict(is_encoder_decoder=False, batch_size=batch_size)
    plain = validation_ce(model, tokenizer, _dataset(), chunked=False, **kwargs)
    fast = validation_ce(model, tokenizer, _dataset(), chunked=True, **kwargs)
    assert (plain.path, fast.path) == (FULL_LOGITS_PATH, CHUNKED_PATH)
    assert fast.ce == pytest.approx(plain.ce, rel=1e-6)
    if padding_side == "right":  # left padding shifts positions, so only right padding equals unpadded
        assert plain.ce == pytest.approx(_reference_ce(model), rel=1e-5)


def test_validation_ce_is_token_level_whatever_the_batch_size(causal):
    from harness.runner.evaluation import validation_ce

    model, tokenizer = causal
    tokenizer.padding_side = "right"
    expected = _reference_ce(model)
    for chunked in (False, True):
        for batch_size in (1, 3, 4):
            value = validation_ce(model, tokenizer, _dataset(), is_encoder_decoder=False,
                                  batch_size=batch_size, chunked=chunked).ce
            assert value == pytest.approx(expected, rel=1e-5)


def test_encoder_decoder_falls_back_to_full_logits(tiny_seq2seq_dir):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from harness.runner.evaluation import FULL_LOGITS_PATH, validation_ce

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_seq2seq_dir)
    kwargs = dict(is_encoder_decoder=True, batch_size=3)
    asked = validation_ce(model, tokenizer, _dataset(seq2seq=True), chunked=True, **kwargs)
    plain = validation_ce(model, tokenizer, _dataset(seq2seq=True), chunked=False, **kwargs)
    assert asked == plain and asked.path == FULL_LOGITS_PATH


def test_biased_head_falls_back_to_full_logits(tiny_causal_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.runner.evaluation import FULL_LOGITS_PATH, validation_ce
    from harness.runner.plan import chunkable_head

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_dir)
    assert chunkable_head(model, is_encoder_decoder=False)
    head = model.get_output_embeddings()
    model.set_output_embeddings(torch.nn.Linear(head.in_features, head.out_features, bias=True))
    assert not chunkable_head(model, is_encoder_decoder=False)
    result = validation_ce(model, tokenizer, _dataset(), is_encoder_decoder=False, batch_size=3, chunked=True)
    assert result.path == FULL_LOGITS_PATH


@pytest.mark.parametrize("fast", [False, True])
def test_generation_computes_the_head_at_the_last_position_only(causal, fast):
    """transformers' generate passes logits_to_keep=1 to models that take it (Llama, Qwen2, ...), so
    even the prefill over the whole prompt sends one position per row through the LM head."""
    from harness.runner.generation import generate
    from harness.task import GenerationConfig

    model, tokenizer = causal
    body, head = [], []
    hooks = [model.model.norm.register_forward_hook(lambda m, args, out: body.append(out.shape[1])),
             model.get_output_embeddings().register_forward_pre_hook(lambda m, args: head.append(args[0].shape))]
    prompts = [list(range(10, 10 + n)) for n in (7, 12, 3)]
    try:
        generate(model, tokenizer, prompts, GenerationConfig(max_new_tokens=4), is_encoder_decoder=False,
                 batch_size=3, progress=False, fast=fast)
    finally:
        for hook in hooks:
            hook.remove()
    assert body[0] >= 12  # the prefill ran the body over the whole (padded) prompt ...
    assert len(head) == len(body) >= 2
    assert all(shape[:2] == (3, 1) for shape in head)  # ... but the head over one position per row

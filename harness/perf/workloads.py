"""What is measured: model shapes (random init from configs, nothing downloaded), XSum-like
example lengths, and the sizes per device (tiny/small for CPU and CI, full for a GPU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODEL_SHAPES = {
    # name: (config class, kwargs); the full shapes match the public configs of the two models.
    "smollm2-135m": ("LlamaConfig", dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                                         num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                                         tie_word_embeddings=True, rope_theta=100000.0)),
    "qwen2-0.5b": ("Qwen2Config", dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                                       num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                                       tie_word_embeddings=True, rope_theta=1000000.0)),
    "tiny-llama": ("LlamaConfig", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                       num_key_value_heads=2, intermediate_size=128, vocab_size=1024,
                                       tie_word_embeddings=True)),
    "small-llama": ("LlamaConfig", dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=704, vocab_size=8192,
                                        tie_word_embeddings=True)),
}


@dataclass(frozen=True)
class Size:
    models: tuple[str, ...]
    train_batch: int  # examples per optimizer step
    max_source: int  # prompt tokens are capped here (XSum: documents truncated)
    train_steps: int  # timed steps after warm-up
    gen_batch: int
    gen_prompts: int
    new_tokens: int
    loss_tokens: int  # tokens for the loss memory probe (hidden size LOSS_HIDDEN)
    loss_vocabs: tuple[int, ...]  # the training loss (forward + backward) on loss_tokens tokens, per vocab
    validation_vocabs: tuple[int, ...] = ()  # the validation CE pass on loss_tokens tokens, per vocab


LOSS_HIDDEN = 896  # Qwen2-0.5B's hidden size: the loss probe is its LM head


SIZES = {
    "tiny": Size(("tiny-llama",), 8, 96, 3, 8, 16, 8, 512, (8192,), (8192,)),
    # small's loss probes are the SmolLM2 and Qwen2 vocabularies on 2,048 tokens (Qwen2: 1.2 GB of
    # fp32 logits), CPU-sized
    "small": Size(("small-llama",), 16, 256, 4, 16, 32, 16, 2048, (49152, 151936), (49152, 151936)),
    # full times 30 steps: at 10 (1.5 s on an H200) two timings of one loss and path differed by up
    # to 7%, too coarse for a PDL-vs-CE overhead of a few percent (results/perf/h200-20261204-*-abba.json)
    "full": Size(("smollm2-135m", "qwen2-0.5b"), 16, 512, 30, 64, 256, 64, 8192, (49152, 151936), (49152, 151936)),
}


def build_model(shape: str, *, attn: str = "sdpa", seed: int = 0):
    """A random-init causal LM of the named shape (fp32 weights, deterministic from `seed`)."""
    import torch
    import transformers

    cls_name, kwargs = MODEL_SHAPES[shape]
    config = getattr(transformers, cls_name)(**kwargs, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attn)


def xsum_like_examples(n: int, vocab: int, max_source: int, seed: int = 0) -> list[dict]:
    """Tokenized training examples with XSum-like lengths: a prompt (document, lognormal around
    ~430 tokens for SmolLM2's tokenizer, truncated at max_source) + a ~25-token summary + EOS,
    scaled down with max_source for small sizes. Labels mask the prompt, as the runner does."""
    rng = np.random.default_rng(seed)
    scale = max_source / 512
    out = []
    for _ in range(n):
        prompt = int(np.clip(rng.lognormal(np.log(430 * scale), 0.55), 8, max_source)) + 12
        target = int(np.clip(rng.normal(25 * max(scale, 0.25), 7 * max(scale, 0.25)), 3, 64)) + 1
        ids = rng.integers(3, vocab, prompt + target).tolist()
        ids[-1] = 1  # eos
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


def losses_for(examples: list[dict], vocab: int) -> dict:
    """ce and pdl (alpha 1, frequencies of these examples' targets) for a vocabulary of `vocab`."""
    from harness.frequency import TokenFrequencies
    from harness.losses import LossContext, build_loss

    targets = [t for e in examples for t in e["labels"] if t != -100]
    counts = np.bincount(targets, minlength=vocab).astype(np.int64)
    freqs = TokenFrequencies(counts, "targets", "perf", "perf")
    context = LossContext(vocab_size=vocab, base_vocab_size=vocab, special_ids=frozenset({0, 1, 2}),
                          is_encoder_decoder=False, frequencies=freqs, tokenizer_fingerprint="perf")
    return {"ce": build_loss("ce", None, context), "pdl": build_loss("pdl", {"alpha": 1.0}, context)}


def prompts_of(examples: list[dict]) -> list[list[int]]:
    return [[t for t, lab in zip(e["input_ids"], e["labels"]) if lab == -100] for e in examples]

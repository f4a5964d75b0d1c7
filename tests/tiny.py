"""Tiny offline building blocks for tests: a BPE tokenizer trained on a local public-domain corpus
(tests/data/corpus.txt: WEB and KJV verses) and random-init causal / seq2seq models sized for seconds."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "corpus.txt"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(out_dir: Path, vocab_size: int = 600):
    """A byte-level BPE tokenizer shaped like SmolLM2's (eos = pad-less <|im_end|>, chat template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train([str(CORPUS)], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
        pad_token="<pad>", unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def build_causal_lm(out_dir: Path, tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return model


def build_seq2seq_lm(out_dir: Path, tokenizer, seed: int = 0):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=None,
    )
    model = BartForConditionalGeneration(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return model


STYLE_METRICS = ["rouge1", "distinct-2", "ngram-entropy-1", "rare-token-recall"]


def _write_split(folder: Path, name: str, pairs: list[tuple[str, str]], offset: int) -> None:
    import json

    rows = [{"id": f"{name}-{offset + i}", "source": s, "target": t} for i, (s, t) in enumerate(pairs)]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_style_task(root: Path, model_dir: Path, *, sizes: tuple[int, int, int] = (40, 8, 12),
                     training: dict | None = None) -> Path:
    """A KJV -> WEB style-transfer task over local jsonl files (the corpus alternates WEB and KJV
    lines), split train/validation/test by `sizes` pairs; returns the task YAML's path."""
    import yaml

    lines = CORPUS.read_text().splitlines()
    pairs = [(lines[i + 1], lines[i]) for i in range(0, 2 * sum(sizes), 2)]  # (KJV, WEB)
    if len(pairs) < sum(sizes) or not pairs[-1][0]:
        raise ValueError(f"the corpus holds {len(lines) // 2} pairs, fewer than {sum(sizes)}")
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    n_train, n_val, _ = sizes
    _write_split(data, "train", pairs[:n_train], 0)
    _write_split(data, "validation", pairs[n_train:n_train + n_val], n_train)
    _write_split(data, "test", pairs[n_train + n_val:], n_train + n_val)
    task = {
        "name": "tiny-bible",
        "kind": "style_transfer",
        "source": {"type": "local", "path": str(data), "format": "jsonl"},
        "prompt": {"template": "Modernise: {source}", "chat_template": True},
        "max_source_tokens": 48,
        "max_target_tokens": 32,
        "metrics": STYLE_METRICS,
        "generation": {"max_new_tokens": 8},
        "model": str(model_dir),
        "training": training or {
            "learning_rate": 1e-3, "max_steps": 6, "per_device_train_batch_size": 4,
            "per_device_eval_batch_size": 8, "logging_steps": 1, "save_steps": 2, "eval_steps": 3,
        },
    }
    path = root / "tiny-bible.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def train_losses(point_dir: Path) -> list[float]:
    """The training losses a finished point logged (train_log.jsonl rows that carry one)."""
    from harness.io import read_jsonl
    from harness.results import TRAIN_LOG_FILE

    return [row["loss"] for row in read_jsonl(Path(point_dir) / TRAIN_LOG_FILE) if "loss" in row]


def modes_of(folder: Path) -> dict[str, int]:
    """Every file's permission bits under `folder`, by relative path."""
    import stat

    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in sorted(folder.rglob("*"))
            if p.is_file()}

"""The data pipeline: embedded corpora, local files, limits, prompts, and label masking."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.data.bible import clean_verse
from harness.data.dialogue import dialogue_pairs, format_context
from harness.data.embedded import build_embedded, group_of, split_of_group
from harness.data.preprocess import (
    IGNORE_INDEX, all_text_token_ids, build_prompt, load_splits, target_token_ids, tokenize_for_generation,
    tokenize_for_training,
)
from harness.errors import HarnessError
from harness.task import SPLITS, apply_overrides, load_task

XSUM_LOCAL = Path(__file__).parent / "data" / "xsum_local"
NO_LIMITS = ["limits.train=null", "limits.validation=null", "limits.test=null"]


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Embedded corpora are cached once per test module, away from the user's real cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PDL_BENCH_CACHE", str(tmp_path_factory.mktemp("pdl-cache")))
        yield


def full_splits(name: str):
    task = apply_overrides(load_task(name), NO_LIMITS)
    return task, load_splits(task)


def check_embedded_corpus(name: str):
    task, data = full_splits(name)
    assert {s: len(data[s]) for s in SPLITS} == task.expected_sizes
    groups = {}
    for split in SPLITS:
        ds = data[split]
        assert ds.column_names == ["id", "source", "target"]
        assert all(s.strip() for s in ds["source"][:]) and all(t.strip() for t in ds["target"][:])
        groups[split] = {group_of(i) for i in ds["id"][:]}
    all_ids = [i for s in SPLITS for i in data[s]["id"][:]]
    assert len(all_ids) == len(set(all_ids))
    assert not groups["train"] & groups["validation"]
    assert not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    return data


@pytest.mark.slow
def test_bible_corpus():
    data = check_embedded_corpus("bible")
    columns = {c: [x for s in SPLITS for x in data[s][c][:]] for c in ("id", "source", "target")}
    rows = {i: (src, tgt) for i, src, tgt in zip(columns["id"], columns["source"], columns["target"])}
    # Genesis 1:2 carries the KJV italics marker "[was]" in pythonbible's text.
    assert rows["GENESIS.1/2"][0].startswith("And the earth was without form, and void; and darkness was upon")
    assert rows["GENESIS.1/1"][1] == "In the beginning God created the heavens and the earth."
    assert not any("[" in s for s in columns["source"]) and not any("`" in t for t in columns["target"])


@pytest.mark.slow
def test_chitchat_corpus():
    data = check_embedded_corpus("chitchat")
    first = data["train"][0]
    assert first["source"].startswith("A: ") and "\n" not in first["target"]


def test_aclsum_corpus():
    data = check_embedded_corpus("aclsum")
    aspects = [i.rsplit("/", 1)[1] for i in data["test"]["id"][:]]
    assert aspects.count("challenge") == aspects.count("approach") == aspects.count("outcome") == 100
    assert all(s.startswith(f"Aspect: {a}\n") for s, a in zip(data["test"]["source"][:], aspects))


def test_embedded_build_is_deterministic():
    first, second = build_embedded("aclsum", {}), build_embedded("aclsum", {})
    for split in SPLITS:
        assert first[split].to_dict() == second[split].to_dict()


def test_split_of_group_is_a_stable_hash():
    assert {split_of_group(f"BOOK.{c}", 5, 5) for c in range(1, 200)} == {"train", "validation", "test"}
    assert [split_of_group("GENESIS.1", 5, 5) for _ in range(3)] == ["train"] * 3
    assert split_of_group("x", 0, 100) == "test"


def test_clean_verse():
    assert clean_verse("darkness [was] upon  God`s\u2019 face ") == "darkness was upon God's' face"


def test_dialogue_pairs_hand_computed():
    turns = ["hi", "hello  there", "", "how are you?", "fine"]
    assert list(dialogue_pairs(turns, 2)) == [
        (1, "A: hi", "hello there"),
        (3, "A: hello there", "how are you?"),  # the empty turn 2 is dropped from the context
        (4, "A: how are you?", "fine"),
    ]
    assert format_context(["x", "y", "z"]) == "A: x\nB: y\nA: z"


def test_xsum_from_local_files():
    task = load_task("xsum")
    data = load_splits(task, data_dir=XSUM_LOCAL)
    assert {s: len(data[s]) for s in SPLITS} == {"train": 9, "validation": 4, "test": 4}  # one empty document dropped
    assert "t6" not in data["train"]["id"][:]
    assert data["test"]["id"][:] == ["101", "102", "103", "104"]  # integer ids become strings
    assert data["validation"][0]["source"].startswith("The ferry service resumed")
    assert data["validation"][0]["target"] == "Ferries are running again after harbour repairs."


def test_limits_are_deterministic_nested_and_ordered():
    task = load_task("xsum")
    small = load_splits(task, data_dir=XSUM_LOCAL, limit=3, splits=("train",))["train"]["id"][:]
    again = load_splits(task, data_dir=XSUM_LOCAL, limit=3, splits=("train",))["train"]["id"][:]
    bigger = load_splits(task, data_dir=XSUM_LOCAL, limit=6, splits=("train",))["train"]["id"][:]
    everything = load_splits(task, data_dir=XSUM_LOCAL, splits=("train",))["train"]["id"][:]
    assert small == again and len(small) == 3 and set(small) <= set(bigger)
    assert small == [i for i in everything if i in small]  # original order kept
    capped = apply_overrides(task, ["limits.test=2"])
    assert len(load_splits(capped, data_dir=XSUM_LOCAL, splits=("test",))["test"]) == 2
    reseeded = apply_overrides(task, ["limits.seed=1"])
    assert load_splits(reseeded, data_dir=XSUM_LOCAL, limit=3, splits=("train",))["train"]["id"][:] != small


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_missing_field_names_field_and_columns(tmp_path):
    for split in SPLITS:
        _write_jsonl(tmp_path / f"{split}.jsonl", [{"article": "a", "summary": "b", "id": "1"}])
    with pytest.raises(HarnessError, match="no column 'document' \\(columns: article, summary, id\\)"):
        load_splits(load_task("xsum"), data_dir=tmp_path)


def test_empty_split_after_filtering(tmp_path):
    for split in SPLITS:
        _write_jsonl(tmp_path / f"{split}.jsonl", [{"document": "a", "summary": "" if split == "test" else "b", "id": "1"}])
    with pytest.raises(HarnessError, match="split 'test' of task 'xsum' is empty after filtering"):
        load_splits(load_task("xsum"), data_dir=tmp_path)


def test_missing_split_file_lists_expected_names(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", [{"document": "a", "summary": "b", "id": "1"}])
    with pytest.raises(HarnessError, match="no validation file") as err:
        load_splits(load_task("xsum"), data_dir=tmp_path)
    assert "document, summary, id" in str(err.value)


def test_missing_local_path(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        load_splits(load_task("xsum"), data_dir=tmp_path / "nowhere")
    with pytest.raises(HarnessError, match="no data directory was given") as err:
        load_splits(load_task("gyafc"))
    assert "tune/formal.ref0" in str(err.value)


def test_offline_hub_fails_fast_naming_dataset_and_local_option():
    start = time.monotonic()
    with pytest.raises(HarnessError) as err:
        load_splits(load_task("samsum"))
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert "knkarthick/samsum" in text and "--data-dir" in text and "dialogue, summary, id" in text


def test_embedded_task_rejects_data_dir(tmp_path):
    with pytest.raises(HarnessError, match="reads no --data-dir"):
        load_splits(load_task("aclsum"), data_dir=tmp_path)


def test_line_aligned_local_task(tmp_path):
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        (tmp_path / f"{name}.modern.nltktok").write_text(f"you are {split} .\nwhere is he ?\n\n")
        (tmp_path / f"{name}.original.nltktok").write_text(f"thou art {split} .\nwhere is he ?\nempty source\n")
    data = load_splits(load_task("shakespeare"), data_dir=tmp_path)
    assert data["validation"]["source"][:] == ["you are validation .", "where is he ?"]
    assert data["validation"]["target"][:] == ["thou art validation .", "where is he ?"]
    assert data["test"]["id"][:] == ["test-0", "test-1"]
    (tmp_path / "test.original.nltktok").write_text("one line\n")
    with pytest.raises(HarnessError, match="line-aligned"):
        load_splits(load_task("shakespeare"), data_dir=tmp_path)


def test_local_csv_task_with_its_own_path(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.csv").write_text("text,label\nsome words,other words\n")
    task = load_task("xsum").model_dump()
    task.update(name="mine", source={"type": "local", "path": str(tmp_path), "format": "csv"},
                fields={"input": "text", "target": "label", "id": None})
    from harness.task import parse_task

    data = load_splits(parse_task(task, "test"))
    assert data["validation"][0] == {"id": "validation-0", "source": "some words", "target": "other words"}


def test_dialogue_task_from_local_files(tmp_path):
    dialogs = [["Hi .", "Hello !", "How are you ?", "Fine ."], ["Lunch ?", "Sure ."]]
    for split in SPLITS:
        _write_jsonl(tmp_path / f"{split}.jsonl", [{"dialog": d, "act": [1] * len(d)} for d in dialogs])
    task = apply_overrides(load_task("dailydialog"), ["dialogue.context_turns=2"])
    data = load_splits(task, data_dir=tmp_path)
    assert data["test"]["id"][:] == ["test-0/1", "test-0/2", "test-0/3", "test-1/1"]
    assert data["test"]["source"][2] == "B: Hello !\nA: How are you ?"
    assert data["test"]["target"][:] == ["Hello !", "How are you ?", "Fine .", "Sure ."]


# ---------------------------------------------------------------- prompts and tokenization


@pytest.fixture(scope="module")
def xsum_train():
    task = apply_overrides(load_task("xsum"), ["max_source_tokens=12", "max_target_tokens=8"])
    return task, load_splits(task, data_dir=XSUM_LOCAL, splits=("train",))["train"]


def test_causal_labels_cover_exactly_target_and_eos(xsum_train, tiny_tokenizer):
    task, train = xsum_train
    tok = tiny_tokenizer
    tokenized = tokenize_for_training(task, train, tok, is_encoder_decoder=False)
    prompts = tokenize_for_generation(task, train, tok, is_encoder_decoder=False)
    assert tokenized.column_names == ["id", "input_ids", "attention_mask", "labels"]
    assert prompts["id"][:] == tokenized["id"][:] == train["id"][:]
    assert prompts["reference"][:] == train["target"][:]
    for row, prompt, target in zip(tokenized, prompts, train["target"][:]):
        n = len(prompt["input_ids"])
        expected_target = tok(target, add_special_tokens=False)["input_ids"][:8] + [tok.eos_token_id]
        assert row["input_ids"][:n] == prompt["input_ids"]  # generation prompt is a strict prefix
        assert row["input_ids"][n:] == expected_target
        assert row["labels"] == [IGNORE_INDEX] * n + expected_target
        assert len(row["attention_mask"]) == len(row["input_ids"])
    assert target_token_ids(tokenized) == [
        tok(t, add_special_tokens=False)["input_ids"][:8] + [tok.eos_token_id] for t in train["target"][:]
    ]


def test_causal_prompt_uses_chat_template_and_truncates_source(xsum_train, tiny_tokenizer):
    task, train = xsum_train
    source = train[0]["source"]
    prompt = build_prompt(task, source, tiny_tokenizer, is_encoder_decoder=False)
    assert prompt.startswith("<|im_start|>user\nSummarize the article in one sentence.\n\n")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenize_for_generation(task, train.select([0]), tiny_tokenizer, is_encoder_decoder=False)[0]["input_ids"]
    text = tiny_tokenizer.decode(ids)
    kept = text.split("\n\n", 1)[1].split("<|im_end|>")[0]
    assert source.startswith(kept) and len(kept) < len(source)
    assert len(tiny_tokenizer(kept, add_special_tokens=False)["input_ids"]) <= 12


def test_left_truncation_keeps_the_end(tiny_tokenizer):
    task = apply_overrides(load_task("xsum"), ["max_source_tokens=5", "source_truncation=left", "prompt.chat_template=false"])
    source = "one two three four five six seven eight nine ten"
    ids = tokenize_for_generation(task, _one_row(source, "x"), tiny_tokenizer, is_encoder_decoder=False)[0]["input_ids"]
    text = tiny_tokenizer.decode(ids)
    assert text.endswith("nine ten\n") and "one two" not in text


def _one_row(source: str, target: str):
    from datasets import Dataset

    return Dataset.from_dict({"id": ["r0"], "source": [source], "target": [target]})


def test_plain_prompt_without_chat_template(tiny_tokenizer):
    task = apply_overrides(load_task("xsum"), ["prompt.chat_template=false", "prompt.system=Be brief."])
    prompt = build_prompt(task, "Rain fell.", tiny_tokenizer, is_encoder_decoder=False)
    assert prompt == "Be brief.\n\nSummarize the article in one sentence.\n\nRain fell.\n"


def test_seq2seq_inputs_and_labels(xsum_train, tiny_tokenizer):
    task, train = xsum_train
    tok = tiny_tokenizer
    assert build_prompt(task, "text", tok, is_encoder_decoder=True) == "summarize: text"
    tokenized = tokenize_for_training(task, train, tok, is_encoder_decoder=True)
    prompts = tokenize_for_generation(task, train, tok, is_encoder_decoder=True)
    for row, prompt, target in zip(tokenized, prompts, train["target"][:]):
        assert row["input_ids"] == prompt["input_ids"]
        assert tok.decode(row["input_ids"]).startswith("summarize: ")
        assert row["labels"] == tok(target, add_special_tokens=False)["input_ids"][:8] + [tok.eos_token_id]
        assert IGNORE_INDEX not in row["labels"]


def test_all_text_token_ids(xsum_train, tiny_tokenizer):
    _, train = xsum_train
    ids = all_text_token_ids(train, tiny_tokenizer)
    first = tiny_tokenizer(train[0]["source"], add_special_tokens=False)["input_ids"]
    assert ids[0] == first + tiny_tokenizer(train[0]["target"], add_special_tokens=False)["input_ids"]
    assert len(ids) == len(train)

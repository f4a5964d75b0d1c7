"""Model loading: kinds and special ids, path/hub-id errors, slugs, and the build-once verified cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import threading
import time
from pathlib import Path

import pytest

from tiny import modes_of
from harness import hub
from harness.errors import HarnessError
from harness.models import (
    BUILTIN_MODELS, BuiltinModel, builtin_model, cache_status, ensure_cached, entry_dir, load_model,
    load_tokenizer, model_cache_dir, model_slug, resolve_model,
)
from harness.models.cache import MARKER
from harness.packaged import distribution


def _assert_ids_agree(model, tokenizer):
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    for config in (model.config, model.generation_config):
        assert config.pad_token_id == tokenizer.pad_token_id
        assert config.eos_token_id == tokenizer.eos_token_id


# --- local folders -------------------------------------------------------------------------------

def test_local_causal_dir_loads_as_causal(tiny_causal_dir, tiny_tokenizer):
    model, tokenizer, spec = load_model(str(tiny_causal_dir))
    assert (spec.kind, spec.source, spec.ref) == ("causal", "local", str(tiny_causal_dir))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<pad>"
    assert tokenizer.pad_token_id == tiny_tokenizer.pad_token_id
    _assert_ids_agree(model, tokenizer)
    assert next(model.parameters()).dtype.is_floating_point and str(next(model.parameters()).dtype) == "torch.float32"


def test_local_seq2seq_dir_loads_as_seq2seq(tiny_seq2seq_dir, tiny_tokenizer):
    model, tokenizer, spec = load_model(str(tiny_seq2seq_dir))
    assert (spec.kind, spec.source) == ("seq2seq", "local")
    assert model.config.is_encoder_decoder
    _assert_ids_agree(model, tokenizer)
    # the fixture's config names bos as decoder start; it must survive alignment
    assert model.config.decoder_start_token_id == tiny_tokenizer.bos_token_id
    assert model.generation_config.decoder_start_token_id == tiny_tokenizer.bos_token_id


def test_missing_pad_becomes_eos(tiny_causal_dir, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "no-pad"
    shutil.copytree(tiny_causal_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder).pad_token is None  # the setup really removed it

    model, tokenizer, _ = load_model(str(folder))
    assert tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    _assert_ids_agree(model, tokenizer)
    assert load_tokenizer(str(folder)).pad_token == "<|im_end|>"


def test_dtype_argument(tiny_causal_dir):
    import torch

    model, _, _ = load_model(str(tiny_causal_dir), dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(HarnessError, match="unknown dtype"):
        load_model(str(tiny_causal_dir), dtype="float8")


@pytest.mark.parametrize("ref", ["./no/such/model", "/definitely/not/here", "~/no-such-model-dir-xyz"])
def test_missing_local_path_is_a_harness_error(ref):
    with pytest.raises(HarnessError, match="does not exist"):
        resolve_model(ref)


def test_folder_without_config_is_a_harness_error(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(HarnessError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(HarnessError, match="not a folder"):
        resolve_model(str(tmp_path / "weights.bin"))


def test_partly_existing_path_is_local_not_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(HarnessError, match="does not exist"):
        resolve_model("runs/final")


def test_unknown_bare_name_suggests_builtin():
    with pytest.raises(HarnessError) as err:
        resolve_model("smollm2")
    assert "smollm2-135m" in str(err.value)


def test_hub_id_offline_fails_fast_naming_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    start = time.monotonic()
    try:
        with pytest.raises(HarnessError) as err:
            load_model("HuggingFaceTB/SmolLM2-135M")
    finally:
        hub.hub_reachable.cache_clear()
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert "HuggingFaceTB/SmolLM2-135M" in text
    assert "smollm2-135m" in text and "bert2bert-minilm" in text and "local folder" in text


def test_builtin_resolves_without_building(monkeypatch, tmp_path):
    """Resolving names the kind from the registry alone: with an empty cache and every builder (and
    the cache's build entry point) raising, it still answers."""
    import dataclasses

    from harness.models import loading

    def build(*args, **kwargs):
        raise AssertionError("resolve_model built a model")

    monkeypatch.setenv("PDL_BENCH_CACHE", str(tmp_path / "empty-cache"))
    for alias, model in list(BUILTIN_MODELS.items()):
        monkeypatch.setitem(BUILTIN_MODELS, alias, dataclasses.replace(model, build=build, locate_source=build))
    monkeypatch.setattr(loading, "ensure_cached", build)
    assert resolve_model("smollm2-135m") == resolve_model("smollm2-135m")
    assert resolve_model("smollm2-135m").kind == "causal"
    assert resolve_model("bert2bert-minilm").kind == "seq2seq"
    assert resolve_model("bert2bert-minilm").source == "builtin"
    with pytest.raises(HarnessError, match="did you mean 'smollm2-135m'"):
        builtin_model("smolm2-135m")
    assert not (tmp_path / "empty-cache").exists()


@pytest.mark.parametrize("ref, slug", [
    ("smollm2-135m", "smollm2-135m"),
    ("./runs/My Model/", "my-model"),
    ("/abs/path/to/my_model", "my_model"),
    ("HuggingFaceTB/SmolLM2-135M", "smollm2-135m"),
    ("out/bible-pdl/checkpoint-500", "bible-pdl-checkpoint-500"),
    ("weird/@@@", "model"),
])
def test_model_slug(ref, slug):
    assert model_slug(ref) == slug


def test_model_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PDL_BENCH_CACHE", str(tmp_path / "c"))
    assert model_cache_dir() == tmp_path / "c" / "models"
    monkeypatch.delenv("PDL_BENCH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert model_cache_dir() == tmp_path / "home" / ".cache" / "pdl-bench" / "models"


def test_missing_package_names_the_pip_command():
    with pytest.raises(HarnessError) as err:
        distribution("no-such-dist-pdl", "no-such-dist-pdl==1.0")
    assert "pip install --no-deps no-such-dist-pdl==1.0" in str(err.value)


# --- the build-once cache, on a fake builtin built from the tiny causal model ---------------------

class FakeBuilder:
    """Copies the tiny causal model; counts builds; can wait for a condition or be made to fail."""

    def __init__(self, model_dir: Path, wait_until=None, fail: bool = False):
        self.model_dir, self.wait_until, self.fail, self.calls = model_dir, wait_until, fail, 0

    def __call__(self, source: Path, out: Path, log) -> dict:
        self.calls += 1
        deadline = time.monotonic() + 10
        while self.wait_until is not None and not self.wait_until() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.fail:
            (out / "model.safetensors").write_bytes(b"half")
            raise RuntimeError("builder crashed")
        for item in self.model_dir.iterdir():
            shutil.copy2(item, out / item.name)
        return {"source_bytes": source.stat().st_size}


@pytest.fixture
def fake(tmp_path, tiny_causal_dir, monkeypatch):
    source = tmp_path / "fake-source.bin"
    source.write_bytes(b"source v1")
    builder = FakeBuilder(tiny_causal_dir)
    model = BuiltinModel(
        alias="fake-tiny", kind="causal", params="tiny", description="test", package="pytest",
        build_note="building fake-tiny", locate_source=lambda: source, build=builder,
    )
    monkeypatch.setenv("PDL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(BUILTIN_MODELS, "fake-tiny", model)
    return model, builder, source


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cache_builds_once_and_writes_marker(fake):
    model, builder, source = fake
    assert cache_status(model) == "not yet converted"
    folder = ensure_cached(model, log=lambda m: None)
    assert folder == model_cache_dir() / "fake-tiny" and builder.calls == 1
    marker = json.loads((folder / MARKER).read_text())
    assert marker["weights_sha256"] == _sha(folder / "model.safetensors")
    assert marker["files"]["model.safetensors"] == (folder / "model.safetensors").stat().st_size
    assert MARKER not in marker["files"]
    assert marker["source"]["size"] == len(b"source v1")
    assert marker["verification"] == {"source_bytes": len(b"source v1")}
    assert "torch" in marker["versions"]
    assert cache_status(model) is None
    assert ensure_cached(model, log=lambda m: None) == folder and builder.calls == 1
    assert not list(folder.parent.glob(".building-*"))


def test_the_cache_is_shared_with_the_umask_s_permissions(fake, umask_022):
    model, _, _ = fake
    folder = ensure_cached(model, log=lambda m: None)
    assert (folder / "model.safetensors").is_file()  # written 0600 by safetensors, here copied as it is
    assert set(modes_of(folder).values()) == {0o644}, modes_of(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_load_model_through_fake_builtin(fake):
    model_entry, builder, _ = fake
    model, tokenizer, spec = load_model("fake-tiny")
    assert (spec.kind, spec.source) == ("causal", "builtin")
    _assert_ids_agree(model, tokenizer)
    assert builder.calls == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete_marker", "delete_tokenizer", "bad_marker"])
def test_broken_cache_is_detected_and_rebuilt(fake, damage):
    model, builder, _ = fake
    folder = ensure_cached(model, log=lambda m: None)
    weights = folder / "model.safetensors"
    if damage == "flip":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "delete_marker":
        (folder / MARKER).unlink()
    elif damage == "delete_tokenizer":
        (folder / "tokenizer.json").unlink()
    else:
        (folder / MARKER).write_text("{not json")
    assert cache_status(model) is not None
    messages = []
    ensure_cached(model, log=messages.append)
    assert builder.calls == 2
    assert any("rebuilding" in m for m in messages), messages
    assert cache_status(model) is None
    assert json.loads((folder / MARKER).read_text())["weights_sha256"] == _sha(weights)


def test_changed_source_triggers_rebuild(fake):
    model, builder, source = fake
    ensure_cached(model, log=lambda m: None)
    source.write_bytes(b"source v2!")
    assert "different copy" in cache_status(model)
    ensure_cached(model, log=lambda m: None)
    assert builder.calls == 2 and cache_status(model) is None


def test_valid_cache_is_used_when_source_package_is_gone(fake, tmp_path):
    model, builder, source = fake
    ensure_cached(model, log=lambda m: None)

    def missing():
        raise HarnessError("package gone", "pip install --no-deps fake==1")

    gone = BuiltinModel(**{**model.__dict__, "locate_source": missing})
    assert ensure_cached(gone, log=lambda m: None) == entry_dir(model) and builder.calls == 1
    shutil.rmtree(entry_dir(model))
    with pytest.raises(HarnessError, match="package gone"):
        ensure_cached(gone, log=lambda m: None)


def test_unwritable_cache_is_a_harness_error(fake, tmp_path, monkeypatch):
    model, _, _ = fake
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PDL_BENCH_CACHE", str(blocker))
    with pytest.raises(HarnessError, match="PDL_BENCH_CACHE"):
        ensure_cached(model, log=lambda m: None)


def test_failed_build_leaves_nothing_behind(fake, tiny_causal_dir):
    model, _, _ = fake
    failing = BuiltinModel(**{**model.__dict__, "build": FakeBuilder(tiny_causal_dir, fail=True)})
    with pytest.raises(RuntimeError, match="builder crashed"):
        ensure_cached(failing, log=lambda m: None)
    root = model_cache_dir()
    assert not (root / "fake-tiny").exists()
    assert not list(root.glob(".building-*"))


def test_force_rebuilds_a_valid_cache(fake):
    model, builder, _ = fake
    ensure_cached(model, log=lambda m: None)
    ensure_cached(model, force=True, log=lambda m: None)
    assert builder.calls == 2 and cache_status(model) is None


def test_concurrent_builders_build_once(fake, tiny_causal_dir):
    model, _, _ = fake
    results, errors, messages = [], [], []
    # the first builder holds the lock until both others have found it taken
    slow = FakeBuilder(tiny_causal_dir, wait_until=lambda: sum("waiting" in m for m in messages) == 2)
    slow_model = BuiltinModel(**{**model.__dict__, "build": slow})

    def worker():
        try:
            results.append(ensure_cached(slow_model, log=messages.append))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert slow.calls == 1
    assert len(set(results)) == 1 and cache_status(slow_model) is None
    assert sum("waiting for another process" in m for m in messages) == 2


# --- the real builtin models (slow: real conversions) --------------------------------------------

@pytest.mark.slow
def test_smollm2_converts_verifies_and_reloads(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    monkeypatch.setenv("PDL_BENCH_CACHE", str(tmp_path))
    start = time.perf_counter()
    folder = ensure_cached(BUILTIN_MODELS["smollm2-135m"])
    built_s = time.perf_counter() - start
    marker = json.loads((folder / MARKER).read_text())
    assert marker["verification"]["max_abs_logit_diff"] <= 1e-5
    assert marker["verification"]["tokenizer_ids_match"] is True
    assert marker["verification"]["n_params"] == 134_515_008
    assert marker["weights_sha256"] == _sha(folder / "model.safetensors")

    start = time.perf_counter()
    model, tokenizer, spec = load_model("smollm2-135m")
    load_s = time.perf_counter() - start
    print(f"smollm2-135m: built {built_s:.1f} s, reloaded {load_s:.1f} s")
    assert spec == resolve_model("smollm2-135m")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 49_152
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.chat_template and tokenizer.model_max_length == 8192
    _assert_ids_agree(model, tokenizer)


@pytest.mark.slow
def test_bert2bert_builds_deterministically_and_reloads(tmp_path, monkeypatch):
    model_entry = BUILTIN_MODELS["bert2bert-minilm"]
    first = ensure_cached(model_entry, root=tmp_path / "a" / "models")
    second = ensure_cached(model_entry, root=tmp_path / "b" / "models")
    marker = json.loads((first / MARKER).read_text())
    assert marker["verification"]["max_abs_logit_diff"] <= 1e-5
    assert marker["weights_sha256"] == json.loads((second / MARKER).read_text())["weights_sha256"]

    monkeypatch.setenv("PDL_BENCH_CACHE", str(tmp_path / "a"))
    model, tokenizer, spec = load_model("bert2bert-minilm")
    assert spec.kind == "seq2seq" and type(model).__name__ == "EncoderDecoderModel"
    assert tokenizer.eos_token == "[SEP]" and tokenizer.pad_token == "[PAD]"
    assert model.config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.generation_config.decoder_start_token_id == tokenizer.cls_token_id
    _assert_ids_agree(model, tokenizer)

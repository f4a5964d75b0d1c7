"""Fast paths compute what the plain paths compute: packed vs padded training, chunked vs full
loss, static vs dynamic KV-cache generation; and `pdl-bench perf` runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.frequency import TokenFrequencies
from harness.losses import LossContext, build_loss
from harness.losses.chunked import chunked_token_loss, supports_chunking
from harness.perf.generation import agreement, decode_all
from harness.perf.loss_memory import peak_ratio, probe_rss, probe_validation
from harness.perf.train import check_same
from harness.perf.workloads import build_model, prompts_of, xsum_like_examples
from harness.runner.packing import PackedCollator, pack_rows

VOCAB = 1024


def context(vocab=VOCAB, seed=0):
    counts = np.random.default_rng(seed).integers(0, 50, vocab).astype(np.int64)
    freqs = TokenFrequencies(counts, "targets", "t", "d")
    return LossContext(vocab_size=vocab, base_vocab_size=vocab, special_ids=frozenset({0, 1}),
                       is_encoder_decoder=False, frequencies=freqs, tokenizer_fingerprint="t")


LOSSES = [("ce", None), ("pdl", {"alpha": 1.0}), ("pdl", {"normalization": "batch_weight_sum"}), ("face", None)]


def test_pack_rows_is_first_fit_decreasing_within_capacity():
    rows = pack_rows([5, 3, 8, 2, 4], 8)
    assert rows == [[2], [0, 1], [4, 3]]
    assert sorted(i for r in rows for i in r) == [0, 1, 2, 3, 4]


def test_packed_collator_restarts_positions_and_masks_first_labels():
    feats = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    batch = PackedCollator(pad_token_id=0, pad_to_multiple_of=4, rows_of=1)(feats)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [8, 9, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100], [-100, 9, -100, -100]]


@pytest.mark.parametrize("name,options", LOSSES)
def test_chunked_loss_equals_full_loss_fp32(name, options):
    loss = build_loss(name, options, context())
    assert supports_chunking(loss)
    gen = torch.Generator().manual_seed(0)
    hidden0 = torch.randn(3, 17, 32, generator=gen, dtype=torch.float64).float()
    weight0 = torch.randn(VOCAB, 32, generator=gen) * 0.2
    labels = torch.randint(0, VOCAB, (3, 17), generator=gen)
    labels[:, :5] = -100
    labels[1, -3:] = -100
    grads = []
    for chunked in (False, True):
        hidden, weight = hidden0.clone().requires_grad_(True), weight0.clone().requires_grad_(True)
        if chunked:
            value = chunked_token_loss(loss, hidden, weight, labels, num_items_in_batch=30, chunk=7)
        else:
            value = loss({"logits": hidden @ weight.T}, labels, num_items_in_batch=30)
        value.backward()
        grads.append((value.detach(), hidden.grad, weight.grad))
    (v0, h0, w0), (v1, h1, w1) = grads
    assert torch.allclose(v0, v1, rtol=1e-6, atol=1e-7)
    assert torch.allclose(h0, h1, rtol=1e-5, atol=1e-7)
    assert torch.allclose(w0, w1, rtol=1e-5, atol=1e-7)


def test_chunked_loss_bf16_within_tolerance():
    """Under bf16 autocast (the GPU path): value and gradients of hidden states and head weight
    agree with the full-logits bf16 path and with fp32, within bf16 rounding."""
    loss = build_loss("pdl", {"alpha": 0.5}, context())
    gen = torch.Generator().manual_seed(1)
    hidden0 = torch.randn(1, 64, 32, generator=gen)
    weight0 = torch.randn(VOCAB, 32, generator=gen) * 0.2
    labels = torch.randint(0, VOCAB, (1, 64), generator=gen)

    def run(kind: str):
        hidden, weight = hidden0.clone().requires_grad_(True), weight0.clone().requires_grad_(True)
        if kind == "fp32":
            value = loss({"logits": hidden @ weight.T}, labels)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                value = (chunked_token_loss(loss, hidden, weight, labels, chunk=16) if kind == "chunked"
                         else loss({"logits": hidden @ weight.T}, labels))
        value.backward()
        return value.item(), hidden.grad, weight.grad

    exact, chunked, full_bf16 = run("fp32"), run("chunked"), run("full_bf16")
    assert abs(chunked[0] - exact[0]) < 2e-2 * exact[0]
    assert abs(chunked[0] - full_bf16[0]) < 1e-2 * exact[0]
    for grad in (1, 2):  # hidden, weight: float32 gradients, bf16 matmuls inside
        assert chunked[grad].dtype == torch.float32
        rel = lambda a, b: float((a - b).norm() / b.norm())
        assert rel(chunked[grad], exact[grad]) < 2e-2
        assert rel(chunked[grad], full_bf16[grad]) < 2e-2


def test_chunking_refuses_losses_beyond_the_target_token():
    loss = build_loss("focal", None, context())
    assert not supports_chunking(loss)
    with pytest.raises(Exception, match="cannot be chunked"):
        chunked_token_loss(loss, torch.zeros(1, 2, 4), torch.zeros(VOCAB, 4), torch.zeros(1, 2, dtype=torch.long))


@pytest.mark.parametrize("name,options", LOSSES[:2])
def test_packed_training_step_equals_padded(name, options):
    model = build_model("tiny-llama")
    with torch.no_grad():  # sharper attention than the 0.02 init, so a leaky mask would show
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(8)
    examples = xsum_like_examples(8, VOCAB, 200)
    assert len(PackedCollator(0)(examples)["input_ids"]) < len(examples)  # some rows hold two examples
    result = check_same(model, build_loss(name, options, context()), examples, torch.device("cpu"))
    assert result["same_params"]
    assert result["loss_abs_diff"] < 1e-5
    assert result["max_grad_rel_diff"] < 1e-4
    # the check is sharp: a packed batch whose examples see each other gives another loss
    batch = PackedCollator(0)(examples)
    leaky = model(input_ids=batch["input_ids"], use_cache=False)  # no position_ids: one long sequence
    loss = build_loss(name, options, context())
    assert abs(loss(leaky, batch["labels"]).item() - result["plain_loss"]) > 1e-4


def test_static_cache_generation_equals_dynamic():
    model = build_model("tiny-llama").eval()
    prompts = prompts_of(xsum_like_examples(6, VOCAB, 40, seed=3))
    with torch.no_grad():
        plain, _ = decode_all(model, prompts, 4, 6, torch.device("cpu"), fast=False)
        fast, _ = decode_all(model, prompts, 6, 6, torch.device("cpu"), fast=True)
    assert agreement(plain, fast) == {"token_agreement": 1.0, "identical_rows": 1.0}
    assert all(len(row) == 6 for row in fast)


linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc")
MIB = 2**20


RSS_PROBE = """
import json, torch
from harness.perf.measure import rss_peak
before = bytearray(256 * 2**20)  # touched pages raise the high-water mark before the block
del before
with rss_peak() as memory:
    inside = torch.ones(64 * 2**20 // 4)  # 64 MiB written, above glibc's mmap threshold: fresh pages
    del inside
print(json.dumps(memory))
"""


@linux_only
def test_rss_peak_counts_the_block_not_what_came_before():
    # A fresh process: in the pytest process earlier tests' freed memory makes RSS unpredictable.
    done = subprocess.run([sys.executable, "-c", RSS_PROBE], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    memory = json.loads(done.stdout.strip().splitlines()[-1])
    # RSS is counted in pages the process may partly hold already: a few percent of slack below
    assert 0.9 * 64 * MIB <= memory["peak_bytes"] < 160 * MIB


@linux_only
def test_loss_peak_rss_in_child_processes_chunked_below_plain():
    # 1024 tokens x vocab 32768: 128 MiB of fp32 logits, the plain path's largest tensors;
    # the chunked path holds one chunk of the 512 target positions (64 MiB)
    row = probe_rss("pdl", tokens=1024, hidden_size=64, vocab=32768)
    assert row["memory"] == "cpu-rss"
    assert row["loss_abs_diff"] < 1e-5 * row["plain_loss"]
    assert row["grad_hidden_rel_diff"] < 1e-5 and row["grad_weight_rel_diff"] < 1e-5
    assert row["plain_peak_bytes"] >= 2 * 128 * MIB  # logits and their log-softmax at least
    assert row["chunked_peak_bytes"] < row["plain_peak_bytes"]
    assert peak_ratio(row) == row["chunked_peak_bytes"] / row["plain_peak_bytes"]


@linux_only
def test_validation_peak_rss_in_child_processes_chunked_below_full_logits():
    # 1024 tokens x vocab 32768: the full-logits pass holds the logits and their log-softmax
    # (128 MiB each); the chunked one a single chunk of the 512 target positions (64 MiB)
    row = probe_validation(tokens=1024, hidden_size=64, vocab=32768, device=torch.device("cpu"))
    assert row["memory"] == "cpu-rss" and row["ce_rel_diff"] < 1e-6
    assert row["plain_peak_bytes"] >= 2 * 128 * MIB
    assert row["chunked_peak_bytes"] < 0.5 * row["plain_peak_bytes"]
    assert row["peak_ratio"] == peak_ratio(row)


@pytest.mark.slow
def test_perf_command_tiny_writes_json(tmp_path, capsys):
    out = tmp_path / "perf.json"
    assert main(["perf", "--size", "tiny", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["provenance"]["git"] and data["device"] == "cpu"
    assert data["complete"] and data["errors"] == []
    assert {r["path"] for r in data["training"]} == {"plain", "fast"}
    assert all(c["max_grad_rel_diff"] < 1e-4 for c in data["training_check"])
    first = {r["path"]: r["first_loss"] for r in data["training"] if r["loss"] == "pdl"}
    assert first["fast"] == pytest.approx(first["plain"], rel=1e-5)
    assert data["generation"][0]["token_agreement"] == 1.0
    assert data["generation"][0]["memory"] == "cpu-rss-in-process"
    assert all(data["generation"][0][f"{path}_peak_bytes"] >= 0 for path in ("plain", "fast"))
    assert {m["memory"] for m in data["loss_memory"]} == {"cpu-rss"}
    assert all(m["plain_peak_bytes"] > 0 and m["chunked_peak_bytes"] > 0 for m in data["loss_memory"])
    assert [(m["vocab"], m["memory"]) for m in data["validation_memory"]] == [(8192, "cpu-rss")]
    printed = capsys.readouterr().out
    assert "| tiny-llama | pdl | fast |" in printed and "| validation CE (no grad) | 512 x 8192 |" in printed
    assert "generation peak memory: CPU peak RSS above the RSS before the path" in printed


def test_perf_loss_memory_refuses_models(capsys):
    assert main(["perf", "--loss-memory", "--models", "tiny-llama"]) == 2
    assert "--models has no effect with --loss-memory" in capsys.readouterr().err


def test_perf_records_a_failed_measurement_and_keeps_the_rest(tmp_path, capsys, monkeypatch):
    """One measurement that raises (say, a compile failure on a GPU) is recorded and printed; the
    other measurements still run and are saved, and the command exits 1."""
    from harness.perf import train

    measure = train.measure_path

    def failing_fast(model, loss_fn, batches, device, path, warmup):
        if path == "fast":
            raise RuntimeError("planted failure")
        return measure(model, loss_fn, batches, device, path, warmup)

    monkeypatch.setattr(train, "measure_path", failing_fast)
    out = tmp_path / "perf.json"
    assert main(["perf", "--size", "tiny", "--quick", "--output", str(out)]) == 1
    data = json.loads(out.read_text())
    assert [e["what"] for e in data["errors"]] == ["tiny-llama ce fast (warm pass)", "tiny-llama ce fast", "tiny-llama pdl fast",
                                                   "tiny-llama pdl fast (repeat)", "tiny-llama ce fast (repeat)"]
    assert {r["path"] for r in data["training"]} == {"plain"}
    assert len(data["loss_memory"]) == 2
    printed = capsys.readouterr().out
    assert "FAILED training tiny-llama ce fast: RuntimeError: planted failure" in printed


def test_perf_saves_after_every_measurement(tmp_path, monkeypatch):
    """The JSON on disk grows with each measurement (a run cut short by a time limit keeps it)."""
    from harness.perf import report

    out = tmp_path / "perf.json"
    seen = []
    real = report.run_suite

    def spy(*args, on_update, **kwargs):
        def update(result, line):
            on_update(result, line)
            seen.append(len(json.loads(out.read_text())["training"]))
        return real(*args, on_update=update, **kwargs)

    monkeypatch.setattr(report, "run_suite", spy)
    assert main(["perf", "--size", "tiny", "--quick", "--output", str(out)]) == 0
    # 2 paths x (a warm pass + 2 losses x 2 timings)
    assert seen[-1] == 10 and seen == sorted(seen) and len(set(seen)) >= 10
    assert json.loads(out.read_text())["complete"]


def test_training_table_pairs_each_timing_with_its_own_repeat():
    """Each loss is timed twice per path (ce, pdl, pdl, ce, after a warm pass): the speed-up divides by the plain row of
    the same repeat, and PDL's overhead is the mean of the two paired timings."""
    from harness.perf.report import render

    def row(loss, path, repeat, tokens_per_s):
        return {"model": "m", "loss": loss, "path": path, "repeat": repeat, "tokens_per_s": tokens_per_s,
                "flops_per_token": 1.0, "peak_bytes": None, "warmup_s": 0.0, "warmup_steps": 1, "first_loss": 1.0}

    rows = [row("ce", "plain", 1, 100.0), row("pdl", "plain", 1, 100.0), row("pdl", "plain", 2, 100.0),
            row("ce", "plain", 2, 50.0), row("ce", "fast", 1, 200.0), row("pdl", "fast", 1, 100.0),
            row("pdl", "fast", 2, 100.0), row("ce", "fast", 2, 100.0)]
    result = {"device": "cpu", "device_name": None, "matmul_peak_flops": 1e3, "peak_dtype": "float32",
              "training": rows, "training_check": [], "loss_memory": [], "generation": []}
    text = render(result)
    assert "| m | ce | fast | 2 | 100 | 10.0% | n/a | 2.00x |" in text  # against ce plain of repeat 2 (50)
    assert "| m | ce | fast | 1 | 200 | 20.0% | n/a | 2.00x |" in text
    assert "PDL overhead over CE, m fast: +50.0% (mean of 2 timings: +100.0%, +0.0%)" in text
    # a path's warm pass (repeat 0, ce only) is shown but enters neither a speed-up nor the overhead
    warm = [row("ce", "plain", 0, 10.0), row("ce", "fast", 0, 1000.0)]
    text = render({**result, "training": warm + rows})
    assert "| m | ce | fast | 0 | 1,000 | 100.0% | n/a | n/a |" in text
    assert "PDL overhead over CE, m fast: +50.0% (mean of 2 timings: +100.0%, +0.0%)" in text

"""Run every measurement of one size and render the table `pdl-bench perf` prints."""

from __future__ import annotations

import time

import torch

from harness.errors import HarnessError
from harness.perf import generation as gen_bench, loss_memory, train
from harness.perf.measure import matmul_peak
from harness.perf.workloads import MODEL_SHAPES, SIZES, build_model, prompts_of, xsum_like_examples


def run_suite(size_name: str, device: torch.device, *, compile_: bool, generation: bool = True,
              models: list[str] | None = None) -> dict:
    size = SIZES[size_name]
    models = models or list(size.models)
    unknown = [m for m in models if m not in MODEL_SHAPES]
    if unknown:
        raise HarnessError(f"unknown model shape(s) {unknown}", f"choose from {', '.join(MODEL_SHAPES)}")
    peak_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    out: dict = {"size": size_name, "device": str(device), "compile": compile_,
                 "matmul_peak_flops": matmul_peak(device, peak_dtype), "peak_dtype": str(peak_dtype),
                 "training": [], "loss_memory": [], "generation": []}
    warmup = 3 if compile_ else 1
    for shape in models:
        started = time.perf_counter()
        model = build_model(shape)
        vocab = model.config.vocab_size
        examples = xsum_like_examples(size.train_batch * (size.train_steps + warmup), vocab, size.max_source)
        batches = [examples[i:i + size.train_batch] for i in range(0, len(examples), size.train_batch)]
        losses = train.losses_for(examples, vocab)
        check = train.check_same(model.to(device), losses["pdl"], batches[0], device)
        paths = ["plain", "fast"] + (["fast+compile"] if compile_ else [])
        for loss_name, loss_fn in losses.items():
            for path in paths:
                row = train.measure_path(model, loss_fn, batches, device, path, warmup)
                out["training"].append({"model": shape, "loss": loss_name, **row})
        out["training_check"] = out.get("training_check", []) + [{"model": shape, **check}]
        if generation:
            prompts = prompts_of(xsum_like_examples(size.gen_prompts, vocab, size.max_source, seed=1))
            fast_batch = max(size.gen_batch, min(len(prompts), 4 * size.gen_batch))
            out["generation"].append({"model": shape, **gen_bench.compare(
                model, prompts, plain_batch=size.gen_batch, fast_batch=fast_batch,
                new_tokens=size.new_tokens, device=device)})
        out.setdefault("seconds", {})[shape] = time.perf_counter() - started
        del model
    for loss_name, loss_fn in train.losses_for(
            xsum_like_examples(64, size.loss_vocab, 64), size.loss_vocab).items():
        out["loss_memory"].append(loss_memory.probe(loss_fn, size.loss_tokens, 896, size.loss_vocab, device))
    return out


def _gib(value) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f} GiB"


def render(result: dict) -> str:
    peak = result["matmul_peak_flops"]
    lines = [f"device {result['device']}, {result['peak_dtype']} matmul peak {peak / 1e12:.2f} TFLOP/s",
             "", "| model | loss | path | tokens/s | MFU | peak memory | speed-up vs plain |",
             "|---|---|---|---|---|---|---|"]
    plain = {(r["model"], r["loss"]): r["tokens_per_s"] for r in result["training"] if r["path"] == "plain"}
    for r in result["training"]:
        mfu = r["tokens_per_s"] * r["flops_per_token"] / peak
        speed = r["tokens_per_s"] / plain[(r["model"], r["loss"])]
        lines.append(f"| {r['model']} | {r['loss']} | {r['path']} | {r['tokens_per_s']:,.0f} | {mfu:.1%} | "
                     f"{_gib(r['peak_bytes'])} | {speed:.2f}x |")
    fast = {(r["model"], r["loss"], r["path"]): r["tokens_per_s"] for r in result["training"]}
    for model in dict.fromkeys(r["model"] for r in result["training"]):
        for path in ("fast", "fast+compile"):
            if (model, "ce", path) in fast:
                overhead = fast[(model, "ce", path)] / fast[(model, "pdl", path)] - 1
                lines.append(f"PDL overhead over CE, {model} {path}: {overhead:+.1%}")
    for c in result.get("training_check", []):
        lines.append(f"same computation, {c['model']} (pdl): loss {c['plain_loss']:.6f} vs {c['fast_loss']:.6f}, "
                     f"max relative gradient difference {c['max_grad_rel_diff']:.1e}")
    lines += ["", "| loss | tokens x vocab | plain peak | chunked peak | loss diff | grad rel diff | plain s | chunked s |",
              "|---|---|---|---|---|---|---|---|"]
    for m in result["loss_memory"]:
        grad = max(m["grad_hidden_rel_diff"], m["grad_weight_rel_diff"])
        lines.append(f"| {m['loss']} | {m['tokens']} x {m['vocab']} | {_gib(m['plain_peak_bytes'])} | "
                     f"{_gib(m['chunked_peak_bytes'])} | {m['loss_abs_diff']:.1e} | {grad:.1e} | "
                     f"{m['plain_s']:.3f} | {m['chunked_s']:.3f} |")
    if result["generation"]:
        lines += ["", "| model | plain new tok/s (batch) | fast new tok/s (batch) | speed-up | token agreement | identical rows |",
                  "|---|---|---|---|---|---|"]
        for g in result["generation"]:
            lines.append(f"| {g['model']} | {g['plain_tokens_per_s']:,.0f} ({g['plain_batch']}) | "
                         f"{g['fast_tokens_per_s']:,.0f} ({g['fast_batch']}) | "
                         f"{g['fast_tokens_per_s'] / g['plain_tokens_per_s']:.2f}x | {g['token_agreement']:.1%} | "
                         f"{g['identical_rows']:.1%} |")
    return "\n".join(lines)

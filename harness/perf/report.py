"""Run every measurement of one size and render the table `pdl-bench perf` prints."""

from __future__ import annotations

import time
import traceback
from functools import partial
from typing import Callable

import torch

from harness.errors import HarnessError
from harness.perf import generation as gen_bench, loss_memory, train
from harness.perf.measure import matmul_peak
from harness.perf.workloads import (
    LOSS_HIDDEN, MODEL_SHAPES, SIZES, build_model, losses_for, prompts_of, xsum_like_examples,
)


def run_suite(size_name: str, device: torch.device, *, compile_: bool, generation: bool = True,
              models: list[str] | None = None, loss_only: bool = False,
              on_update: Callable[[dict, str], None] | None = None) -> dict:
    """Training, loss-alone and generation measurements of one size; `loss_only` runs the
    loss-alone comparison only (no models, no matmul peak). `on_update(result, line)` is called
    after every measurement, so a caller can save and print partial results: a run cut short by
    a time limit keeps what it measured. A measurement that raises is recorded with its error
    (under "errors") and the others go on."""
    size = SIZES[size_name]
    models = [] if loss_only else (models or list(size.models))
    unknown = [m for m in models if m not in MODEL_SHAPES]
    if unknown:
        raise HarnessError(f"unknown model shape(s) {unknown}", f"choose from {', '.join(MODEL_SHAPES)}")
    peak_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    out: dict = {"size": size_name, "device": str(device), "compile": compile_,
                 "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                 "matmul_peak_flops": None if loss_only else matmul_peak(device, peak_dtype),
                 "peak_dtype": str(peak_dtype), "training": [], "training_check": [], "loss_memory": [],
                 "validation_memory": [], "generation": [], "models": [], "seconds": {}, "errors": []}

    def measured(section: str, label: str, measure: Callable[[], dict]) -> dict | None:
        started = time.perf_counter()
        try:
            row = measure()
        except Exception as err:  # noqa: BLE001 - recorded, printed, and the run exits non-zero
            out["errors"].append({"section": section, "what": label, "error": f"{type(err).__name__}: {err}",
                                  "traceback": traceback.format_exc()})
            row, line = None, f"FAILED {section} {label}: {type(err).__name__}: {err}"
        else:
            out[section].append(row)
            line = f"done {section} {label} ({time.perf_counter() - started:.1f} s)"
        if on_update:
            on_update(out, line)
        return row

    for vocab in size.loss_vocabs:
        for loss_name, loss_fn in loss_memory.loss_functions(vocab).items():
            if device.type == "cuda":
                probe = partial(loss_memory.probe, loss_fn, size.loss_tokens, LOSS_HIDDEN, vocab, device)
            else:
                probe = partial(loss_memory.probe_rss, loss_name, size.loss_tokens, LOSS_HIDDEN, vocab)
            measured("loss_memory", f"{loss_name} vocab {vocab}",
                     lambda: (lambda r: {**r, "peak_ratio": loss_memory.peak_ratio(r)})(probe()))
    for vocab in size.validation_vocabs:
        measured("validation_memory", f"vocab {vocab}",
                 lambda: loss_memory.probe_validation(size.loss_tokens, LOSS_HIDDEN, vocab, device))
    warmup = 3 if compile_ else 1

    def measure_model(shape: str) -> None:
        model = build_model(shape)
        vocab = model.config.vocab_size
        examples = xsum_like_examples(size.train_batch * (size.train_steps + warmup), vocab, size.max_source)
        batches = [examples[i:i + size.train_batch] for i in range(0, len(examples), size.train_batch)]
        losses = losses_for(examples, vocab)
        measured("training_check", shape,
                 lambda: {"model": shape, **train.check_same(model.to(device), losses["pdl"], batches[0], device)})
        paths = ["plain", "fast"] + (["fast+compile"] if compile_ else [])
        names = list(losses)
        # Each path first gets a warm pass (repeat 0, ce only: its first sight of every batch shape,
        # allocator growth, kernel selection, compilation), then each loss is timed twice, in the
        # order ce, pdl, pdl, ce, so a drift of the machine's speed hits both losses alike. On an
        # H200 the first row of every path ran at 34-75% of its repeat's tokens/s, whichever loss
        # (results/perf/h200-20261204-*-abba.json). Later rows of a compiled path reuse its graphs.
        for path in paths:
            for repeat, order in enumerate((names[:1], names, names[::-1]), start=WARM_PASS):
                for loss_name in order:
                    label = {WARM_PASS: " (warm pass)", 1: "", 2: " (repeat)"}[repeat]
                    measured("training", f"{shape} {loss_name} {path}{label}",
                             lambda: {"model": shape, "loss": loss_name, "repeat": repeat,
                                      **train.measure_path(model, losses[loss_name], batches, device, path, warmup)})
        if generation:
            prompts = prompts_of(xsum_like_examples(size.gen_prompts, vocab, size.max_source, seed=1))
            fast_batch = max(size.gen_batch, min(len(prompts), 4 * size.gen_batch))
            measured("generation", shape, lambda: {"model": shape, **gen_bench.compare(
                model, prompts, plain_batch=size.gen_batch, fast_batch=fast_batch,
                new_tokens=size.new_tokens, device=device)})

    for shape in models:
        started = time.perf_counter()
        # building a model or its data can fail too (out of memory): recorded, next shape goes on
        measured("models", shape, lambda: measure_model(shape) or {"model": shape})
        out["seconds"][shape] = time.perf_counter() - started
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def _gib(value) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f} GiB"


MEMORY_KINDS = {
    "cuda-allocator": "CUDA allocator peak above the inputs, in this process",
    "cpu-rss": "CPU peak RSS above the inputs, each path in a fresh process "
               "(resident pages, allocator caching included; not a CUDA allocator peak)",
    "cpu-rss-in-process": "CPU peak RSS above the RSS before the path, in this process after a warm-up "
                          "call of each path (pages the warm-up left cached do not count)",
}


WARM_PASS = 0  # the repeat number of a path's warm pass: shown, never read for a speed-up or overhead


def _speeds(rows: list[dict]) -> dict[tuple, float]:
    """tokens/s by (model, loss, path, repeat) of the timings claims may read (no warm pass); rows
    of runs before the repeats count as repeat 1."""
    return {(r["model"], r["loss"], r["path"], r.get("repeat", 1)): r["tokens_per_s"]
            for r in rows if r.get("repeat") != WARM_PASS}


def _training_lines(result: dict) -> list[str]:
    peak = result["matmul_peak_flops"]
    lines = ["| model | loss | path | repeat | tokens/s | MFU | peak memory | speed-up vs plain | "
             "warm-up s (steps) | first-step loss |", "|---|---|---|---|---|---|---|---|---|---|"]
    speeds = _speeds(result["training"])
    for r in result["training"]:
        mfu = r["tokens_per_s"] * r["flops_per_token"] / peak
        base = speeds.get((r["model"], r["loss"], "plain", r.get("repeat", 1)))
        speed = "n/a" if base is None else f"{r['tokens_per_s'] / base:.2f}x"
        lines.append(f"| {r['model']} | {r['loss']} | {r['path']} | {r.get('repeat', 1)} | {r['tokens_per_s']:,.0f} | "
                     f"{mfu:.1%} | {_gib(r['peak_bytes'])} | {speed} | {r['warmup_s']:.1f} ({r['warmup_steps']}) | "
                     f"{r['first_loss']:.5f} |")
    lines.append("")  # the notes below are not table rows (Markdown would read them as rows)
    if any(r.get("repeat") == WARM_PASS for r in result["training"]):
        lines.append("repeat 0: the path's warm pass (first sight of each batch shape, compilation); "
                     "no speed-up or overhead is read off it")
    for model in dict.fromkeys(r["model"] for r in result["training"]):
        for path in ("fast", "fast+compile"):
            repeats = sorted(k[3] for k in speeds if k[:3] == (model, "ce", path) and (model, "pdl", path, k[3]) in speeds)
            if repeats:
                each = [speeds[(model, "ce", path, k)] / speeds[(model, "pdl", path, k)] - 1 for k in repeats]
                lines.append(f"PDL overhead over CE, {model} {path}: {sum(each) / len(each):+.1%} "
                             f"(mean of {len(each)} timing{'s' if len(each) > 1 else ''}: "
                             f"{', '.join(f'{e:+.1%}' for e in each)})")
    for c in result.get("training_check", []):
        lines.append(f"same computation, {c['model']} (pdl): loss {c['plain_loss']:.6f} vs {c['fast_loss']:.6f}, "
                     f"max relative gradient difference {c['max_grad_rel_diff']:.1e}")
    return lines


RATIO_TARGETS = {"loss": 0.5, "validation": 0.3}  # chunked/plain peak the issues asked for


def _loss_memory_lines(rows: list[dict], validation_rows: list[dict]) -> list[str]:
    """Loss rows (forward + backward) and validation-CE rows (no gradients) in one table; the
    validation rows' value difference is relative and they have no gradient."""
    kinds = dict.fromkeys(m.get("memory", "cuda-allocator") for m in rows + validation_rows)
    lines = [f"loss alone, peak memory: {MEMORY_KINDS[kind]}" for kind in kinds]
    lines += ["", "| loss | tokens x vocab | plain peak | chunked peak | chunked/plain | target | value diff | "
              "grad rel diff | plain s | chunked s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m, validation in [(m, False) for m in rows] + [(m, True) for m in validation_rows]:
        ratio, target = m.get("peak_ratio"), RATIO_TARGETS["validation" if validation else "loss"]
        diff = f"{m['ce_rel_diff']:.1e} rel" if validation else f"{m['loss_abs_diff']:.1e}"
        grad = "n/a" if validation else f"{max(m['grad_hidden_rel_diff'], m['grad_weight_rel_diff']):.1e}"
        lines.append(f"| {'validation CE (no grad)' if validation else m['loss']} | {m['tokens']} x {m['vocab']} | "
                     f"{_gib(m['plain_peak_bytes'])} | {_gib(m['chunked_peak_bytes'])} | "
                     f"{'n/a' if ratio is None else f'{ratio:.2f}'} | "
                     f"<= {target}: {'n/a' if ratio is None else ('yes' if ratio <= target else 'no')} | "
                     f"{diff} | {grad} | {m['plain_s']:.3f} | {m['chunked_s']:.3f} |")
    return lines


def render(result: dict) -> str:
    peak = result["matmul_peak_flops"]
    lines = [f"device {result.get('device_name') or result['device']}" + (
        "" if peak is None else f", {result['peak_dtype']} matmul peak {peak / 1e12:.2f} TFLOP/s")]
    if result["training"]:
        lines += [""] + _training_lines(result)
    if result["loss_memory"] or result.get("validation_memory"):
        lines += [""] + _loss_memory_lines(result["loss_memory"], result.get("validation_memory", []))
    if result["generation"]:
        kinds = dict.fromkeys(g.get("memory") for g in result["generation"] if g.get("memory"))
        lines += [""] + [f"generation peak memory: {MEMORY_KINDS[kind]}" for kind in kinds]
        lines += ["", "| model | plain new tok/s (batch) | fast new tok/s (batch) | speed-up | plain peak | fast peak | "
                  "token agreement | identical rows |", "|---|---|---|---|---|---|---|---|"]
        for g in result["generation"]:
            lines.append(f"| {g['model']} | {g['plain_tokens_per_s']:,.0f} ({g['plain_batch']}) | "
                         f"{g['fast_tokens_per_s']:,.0f} ({g['fast_batch']}) | "
                         f"{g['fast_tokens_per_s'] / g['plain_tokens_per_s']:.2f}x | "
                         f"{_gib(g.get('plain_peak_bytes'))} | {_gib(g.get('fast_peak_bytes'))} | "
                         f"{g['token_agreement']:.1%} | {g['identical_rows']:.1%} |")
    for e in result.get("errors", []):
        lines.append(f"FAILED {e['section']} {e['what']}: {e['error']}")
    return "\n".join(lines)

"""The runner end to end on whatever device this machine has (made for the one-call GPU session
of scripts/gpu_perf.sh):
one tiny point with the default paths (auto: on CUDA, packed rows + chunked loss + static KV cache,
bf16; its 30 steps are too few for `auto` to compile) and the same point with the plain HF paths, from the same init and data
order. Prints which paths ran and how far apart they ended, then decodes the test split from the
default arm's trained weights with both generation paths (the token agreement and the metric
difference the generation path alone causes); writes the summary as JSON.

It needs no download and no ../shared: the tokenizer and the random-init model are built from
tests/data/corpus.txt (tests/tiny.py), and the task is a KJV -> WEB task over that corpus.

    python3 scripts/gpu_runner_check.py --out /tmp/runner-check          # on the GPU machine
    python3 scripts/gpu_runner_check.py --compile on --out /tmp/runner-check  # as gpu_perf.sh runs it
    .venv/bin/python scripts/gpu_runner_check.py --fast on --compile on   # the same paths on CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

TRAINING = {"learning_rate": 1e-3, "max_steps": 30, "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 16, "logging_steps": 5, "save_steps": 15, "eval_steps": 15,
            "keep": "checkpoints"}


def identical_share(a: list[str], b: list[str]) -> float:
    """Share of test examples whose two predictions are the same string."""
    return sum(x == y for x, y in zip(a, b)) / len(b)


def generation_paths_on_one_model(task_path: Path, point_path: Path, device: str) -> dict:
    """Plain (dynamic cache) and fast (static cache) greedy generation from the same trained
    weights (the point's last checkpoint), scored with the task's metrics: the token agreement
    and the metric difference that the generation path alone causes."""

    from harness.data import load_splits, tokenize_for_generation
    from harness.models import load_model
    from harness.results import read_train_counts
    from harness.runner.generation import generate
    from harness.runner.point import score_point
    from harness.runner.trainer import last_complete_checkpoint
    from harness.task import load_task

    task = load_task(str(task_path))
    checkpoint = last_complete_checkpoint(point_path / "checkpoints")
    model, tokenizer, _ = load_model(str(checkpoint))
    model.to(device)
    test = tokenize_for_generation(task, load_splits(task, splits=["test"])["test"], tokenizer,
                                   is_encoder_decoder=False)
    counts = read_train_counts(point_path, "rerun the point")
    out: dict = {"checkpoint": str(checkpoint), "dtype": str(model.dtype)}
    for path in ("plain", "fast"):
        started = time.perf_counter()
        predictions = generate(model, tokenizer, list(test["input_ids"]), task.generation, is_encoder_decoder=False,
                               batch_size=16, progress=False, fast=path == "fast")
        seconds = time.perf_counter() - started
        rows = [{"prediction": p, "reference": r} for p, r in zip(predictions, test["reference"])]
        metrics = score_point(task, rows, tokenizer, counts, seed=0)["metrics"]
        out[path] = {"seconds": round(seconds, 2), "predictions": predictions,
                     "metrics": {name: m["value"] for name, m in metrics.items()}}
    plain, fast = out["plain"], out["fast"]
    out["identical_predictions"] = identical_share(fast["predictions"], plain["predictions"])
    out["metric_difference_fast_minus_plain"] = {name: fast["metrics"][name] - plain["metrics"][name]
                                                 for name in plain["metrics"]}
    return out


GENERATION_CHECK_S = 45  # what the generation-path check needs at most (static-cache compile included)


def arm_line(name: str, arm: dict) -> str:
    return (f"arm {name}: {arm['training_path']}; {arm['generation_path']}; {arm['precision']}; "
            f"validation CE {arm['validation_ce']:.4f}; {arm['seconds']} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/runner-check"), help="work and results folder")
    parser.add_argument("--fast", choices=["auto", "on"], default="auto", help="the default arm's fast setting")
    parser.add_argument("--compile", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--budget-s", type=float, help="skip the generation-path check when less than "
                        f"{GENERATION_CHECK_S} s of this budget is left after the two arms")
    args = parser.parse_args()
    began = time.perf_counter()

    import torch

    import tiny
    from harness.runner.config import RunConfig
    from harness.runner.point import run_point

    args.out.mkdir(parents=True, exist_ok=True)
    model_dir = args.out / "model"
    if not (model_dir / "config.json").is_file():
        tiny.build_causal_lm(model_dir, tiny.build_tokenizer(model_dir))
    task = tiny.build_style_task(args.out / "task", model_dir, sizes=(300, 40, 64), training=TRAINING)
    arms = {"default": dict(fast=args.fast, compile=args.compile), "plain": dict(fast="off", compile="auto")}
    summary: dict = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                     "torch": torch.__version__, "arms": {}}
    save = lambda: (args.out / "summary.json").write_text(json.dumps(summary, indent=2))  # noqa: E731
    predictions, folders = {}, {}
    for name, paths in arms.items():
        started = time.perf_counter()
        result = run_point(RunConfig(task=str(task), loss="pdl", loss_options={"alpha": 1.0}, **paths),
                           args.out / "results", progress=False)
        rows = [json.loads(line) for line in (result.path / "generations.jsonl").read_text().splitlines()]
        predictions[name] = [r["prediction"] for r in rows]
        folders[name] = result.path
        prov = result.provenance
        summary["arms"][name] = {
            "seconds": round(time.perf_counter() - started, 1), "timings": prov["timings"],
            "training_path": prov["training_path"], "generation_path": prov["generation_path"],
            "precision": prov["precision"], "validation_ce": result.metrics["validation_ce"],
            "train_losses": tiny.train_losses(result.path), "init_hash": prov["init_hash"],
            "data_order_hash": prov["data_order_hash"], "peak_memory": prov.get("peak_memory"),
            "validation_path": prov.get("validation_path"),
        }
        save()  # a run cut by a time limit keeps the arms it finished
        print(arm_line(name, summary["arms"][name]), flush=True)
    a, b = summary["arms"]["default"], summary["arms"]["plain"]
    summary["identical_predictions"] = identical_share(predictions["default"], predictions["plain"])
    summary["validation_ce_rel_diff"] = abs(a["validation_ce"] - b["validation_ce"]) / b["validation_ce"]
    save()
    same_start = a["init_hash"] == b["init_hash"] and a["data_order_hash"] == b["data_order_hash"]
    fast_ran = a["training_path"].startswith("fast") and a["generation_path"].startswith("fast")
    verdict = (f"same init and data order: {same_start}; default arm took the fast paths: {fast_ran}; "
               f"validation CE {a['validation_ce']:.4f} vs plain {b['validation_ce']:.4f} "
               f"(rel diff {summary['validation_ce_rel_diff']:.1e}); identical predictions "
               f"{summary['identical_predictions']:.0%}")
    print(verdict, flush=True)

    left = None if args.budget_s is None else args.budget_s - (time.perf_counter() - began)
    if left is not None and left < GENERATION_CHECK_S:
        summary["generation_paths_one_model"] = f"skipped: {left:.0f} s of the budget left"
        line = f"generation paths on one model: {summary['generation_paths_one_model']}"
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        generation = generation_paths_on_one_model(task, folders["default"], device)
        summary["generation_paths_one_model"] = generation
        line = (f"one trained model ({generation['dtype']}), plain vs fast generation: identical predictions "
                f"{generation['identical_predictions']:.0%}, {generation['plain']['seconds']} s vs "
                f"{generation['fast']['seconds']} s; metric difference fast - plain: "
                + ", ".join(f"{k} {v:+.4g}" for k, v in generation["metric_difference_fast_minus_plain"].items()))
    save()
    print(verdict)
    print(line)
    return 0 if same_start and fast_ran else 1


if __name__ == "__main__":
    sys.exit(main())

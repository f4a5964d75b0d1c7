"""Set the real point run on a GPU (scripts/gpu_point.sh) beside the committed CPU point of the same
identity: are they the same point (folder name, init and data-order hashes), which paths and
precision each ran, the per-phase peak memory and time, and how far the numbers move between CPU
fp32 and the GPU's defaults (validation CE, greedy and sampled outputs, every metric both scored,
the per-frequency likelihood). Writes the comparison as JSON and prints it as Markdown.

    .venv/bin/python scripts/compare_gpu_point.py GPU_FOLDER --output results/perf/h200-<date>-point-compare.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.io import write_json_atomic  # noqa: E402
from harness.numbers import format_delta, format_value  # noqa: E402
from harness.models import model_slug  # noqa: E402
from harness.results import PointConfig  # noqa: E402
from harness.runner.point import point_folder  # noqa: E402

REFERENCE = REPO / "results" / "reference"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def predictions(folder: Path, name: str) -> list[str]:
    path = folder / name
    return [json.loads(line)["prediction"] for line in path.read_text().splitlines()] if path.is_file() else []


def identical_share(a: list[str], b: list[str]) -> float | None:
    return sum(x == y for x, y in zip(a, b)) / len(a) if a and len(a) == len(b) else None


def metric_rows(gpu: dict, cpu: dict) -> list[dict]:
    """Every metric both points scored, per decoding: CPU value, GPU value, difference."""
    rows = []
    for decoding, g, c in [("greedy", gpu.get("metrics", {}), cpu.get("metrics", {}))] + [
            (name, gpu.get("decodings", {}).get(name, {}).get("metrics", {}), d.get("metrics", {}))
            for name, d in cpu.get("decodings", {}).items()]:
        for metric in sorted(set(g) & set(c)):
            gv, cv = g[metric].get("value"), c[metric].get("value")
            if isinstance(gv, (int, float)) and isinstance(cv, (int, float)):
                rows.append({"decoding": decoding, "metric": metric, "cpu": cv, "gpu": gv, "gpu_minus_cpu": gv - cv})
    return rows


def compare(gpu_dir: Path, cpu_dir: Path) -> dict:
    gp, cp = read_json(gpu_dir / "provenance.json"), read_json(cpu_dir / "provenance.json")
    gm, cm = read_json(gpu_dir / "metrics.json"), read_json(cpu_dir / "metrics.json")
    keys = ("device", "precision", "training_path", "validation_path", "generation_path", "global_steps",
            "peak_memory", "timings", "versions", "git")
    likelihood = [{"bucket": c["bucket"], "cpu_nll": c["nll"], "gpu_nll": g["nll"], "gpu_minus_cpu": g["nll"] - c["nll"]}
                  for c, g in zip(cm["token_likelihood"]["buckets"], gm["token_likelihood"]["buckets"])]
    return {
        "point": cpu_dir.relative_to(REPO).as_posix(),
        "same_identity": {"folder": True,  # found through the GPU config's identity
                          "init_hash": gp["init_hash"] == cp["init_hash"],
                          "data_order_hash": gp["data_order_hash"] == cp["data_order_hash"]},
        "cpu": {k: cp.get(k) for k in keys}, "gpu": {k: gp.get(k) for k in keys},
        "validation_ce": {"cpu": cm["validation_ce"], "gpu": gm["validation_ce"],
                          "gpu_minus_cpu": gm["validation_ce"] - cm["validation_ce"]},
        "identical_predictions": {name: identical_share(predictions(gpu_dir, name), predictions(cpu_dir, name))
                                  for name in ("generations.jsonl", "generations-sampled.jsonl")},
        "metrics": metric_rows(gm, cm),
        "likelihood_by_frequency": likelihood,
    }


def markdown(result: dict) -> str:
    cpu, gpu = result["cpu"], result["gpu"]
    lines = [f"Point `{result['point']}`; same identity: {result['same_identity']}.", "",
             "| | CPU (committed) | GPU |", "| --- | --- | --- |"]
    for key in ("precision", "training_path", "validation_path", "generation_path", "global_steps"):
        lines.append(f"| {key} | {cpu[key]} | {gpu[key]} |")
    for phase in sorted(cpu["timings"] or {}):
        lines.append(f"| {phase} | {format_value(cpu['timings'][phase])} | {format_value((gpu['timings'] or {}).get(phase))} |")
    cpu_peaks = (cpu["peak_memory"] or {}).get("cpu_rss_gib") or {}
    gpu_peaks = (gpu["peak_memory"] or {}).get("cuda_allocated_gib") or {}
    for phase in sorted(set(cpu_peaks) | set(gpu_peaks)):
        lines.append(f"| peak {phase} GiB (CPU RSS / CUDA allocated) | {cpu_peaks.get(phase)} | {gpu_peaks.get(phase)} |")
    ce = result["validation_ce"]
    lines.append(f"| validation CE | {format_value(ce['cpu'])} | {format_value(ce['gpu'])} ({format_delta(ce['gpu_minus_cpu'])}) |")
    for name, share in result["identical_predictions"].items():
        lines.append(f"| identical predictions, {name} | | {'n/a' if share is None else f'{share:.1%}'} |")
    lines += ["", "| decoding | metric | CPU | GPU | GPU - CPU |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['decoding']} | {r['metric']} | {format_value(r['cpu'])} | {format_value(r['gpu'])} | {format_delta(r['gpu_minus_cpu'])} |"
              for r in result["metrics"]]
    lines += ["", "| likelihood bucket | CPU NLL | GPU NLL | GPU - CPU |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['bucket']} | {format_value(r['cpu_nll'])} | {format_value(r['gpu_nll'])} | {format_delta(r['gpu_minus_cpu'])} |"
              for r in result["likelihood_by_frequency"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gpu_folder", type=Path, help="what gpu_point.sh returned (config.json, provenance.json, ...)")
    parser.add_argument("--output", type=Path, help="where to write the comparison JSON")
    args = parser.parse_args()
    config = PointConfig.model_validate(read_json(args.gpu_folder / "config.json"))
    cpu_dir = point_folder(REFERENCE, config, model_slug(config.model))  # the runner's own rule
    if not (cpu_dir / "metrics.json").is_file():
        print(f"no committed point {cpu_dir} has this identity", file=sys.stderr)
        return 1
    result = compare(args.gpu_folder, cpu_dir)
    if args.output:
        write_json_atomic(args.output, result)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

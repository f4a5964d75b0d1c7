"""End-to-end runner tests on a tiny random model, the local tokenizer and a tiny local task."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import HarnessError
from harness.runner.config import RunConfig
from harness.runner.point import resolve, run_point
from harness.runner.trainer import last_complete_checkpoint
from harness.results import GENERATIONS_FILE, METRICS_FILE, PROVENANCE_FILE, TRAIN_COUNTS_FILE
from tiny import STYLE_METRICS as METRICS, build_style_task, train_losses

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def task_file(tmp_path_factory, tiny_causal_dir) -> Path:
    return build_style_task(tmp_path_factory.mktemp("tiny-task"), tiny_causal_dir)


def point(task_file: Path, **update) -> RunConfig:
    return RunConfig(task=str(task_file), **update)


def metrics_of(path: Path) -> dict:
    return json.loads((path / METRICS_FILE).read_text())


def poison_after_step(monkeypatch, step: int, poison) -> None:
    """Every point this test trains calls poison(model) at the end of optimizer step `step`: after
    that step's update, before its checkpoint is saved."""
    from transformers import TrainerCallback

    from harness.runner import training

    class Poison(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == step:
                poison(model)

    original = training.prepare_training

    def prepare(**kwargs):
        setup = original(**kwargs)
        setup.trainer.add_callback(Poison())
        return setup

    monkeypatch.setattr(training, "prepare_training", prepare)


def test_run_writes_a_complete_point_and_skips_it_next_time(task_file, tmp_path):
    result = run_point(point(task_file), tmp_path, progress=False)
    assert not result.skipped
    assert result.path.parent.parent == tmp_path / "tiny-bible"
    assert result.path.name.startswith("ce-s0-")
    for name in ("config.json", METRICS_FILE, GENERATIONS_FILE, PROVENANCE_FILE, "train_log.jsonl", TRAIN_COUNTS_FILE):
        assert (result.path / name).is_file(), name
    generations = [json.loads(line) for line in (result.path / GENERATIONS_FILE).read_text().splitlines()]
    assert [g["id"] for g in generations] == [f"test-{i}" for i in range(48, 60)]
    test_rows = {r["id"]: r for r in map(json.loads, (task_file.parent / "data" / "test.jsonl").read_text().splitlines())}
    assert all(g["source"] == test_rows[g["id"]]["source"] and g["reference"] == test_rows[g["id"]]["target"]
               for g in generations)
    metrics = metrics_of(result.path)
    assert set(metrics["metrics"]) == set(METRICS)
    assert metrics["validation_ce"] > 0
    prov = json.loads((result.path / PROVENANCE_FILE).read_text())
    assert prov["global_steps"] == 6 and prov["versions"]["torch"]
    # the default on CPU: packed rows + chunked loss, no compile, plain generation (docs/perf.md)
    assert prov["training_path"] == "fast (packed rows, chunked loss)"
    assert prov["generation_path"] == "plain (dynamic KV cache)"
    assert prov["validation_path"].startswith("chunked")
    assert prov["plan"] == {"packed_rows": True, "chunked_loss": True, "compile": False,
                            "static_cache_generation": False, "precision": "fp32"}
    phases = ["load", "train", "validation", "generate", "generate_sampled", "likelihood", "score"]
    assert set(prov["peak_memory"]["cpu_rss_gib"]) == set(phases)
    assert all(v > 0 for v in prov["peak_memory"]["cpu_rss_gib"].values())
    assert set(prov["timings"]) == {f"{p}_s" for p in phases}
    assert prov["resumed"] is None
    assert not (result.path / "checkpoints").exists()  # removed once the point is complete
    again = run_point(point(task_file), tmp_path, progress=False)
    assert again.skipped and again.path == result.path and again.metrics == result.metrics


def test_same_seed_gives_identical_metrics(task_file, tmp_path):
    first = run_point(point(task_file, loss="pdl", loss_options={"alpha": 0.5}), tmp_path / "a", progress=False)
    second = run_point(point(task_file, loss="pdl", loss_options={"alpha": 0.5}), tmp_path / "b", progress=False)
    assert (first.path / METRICS_FILE).read_bytes() == (second.path / METRICS_FILE).read_bytes()
    assert (first.path / GENERATIONS_FILE).read_bytes() == (second.path / GENERATIONS_FILE).read_bytes()


def test_force_moves_old_results_aside(task_file, tmp_path):
    first = run_point(point(task_file), tmp_path, progress=False)
    again = run_point(point(task_file), tmp_path, force=True, progress=False)
    assert not again.skipped
    archived = list(first.path.parent.glob(first.path.name + ".replaced-*"))
    assert len(archived) == 1 and (archived[0] / METRICS_FILE).is_file()


def test_bench_pairs_ce_and_pdl(task_file, tmp_path, capsys):
    code = main(["bench", "--task", str(task_file), "--alpha", "1", "--results-dir", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| metric | ce | pdl(alpha=1) | delta | 95% CI | p |" in out
    comparisons = list((tmp_path / "tiny-bible").glob("*/comparisons/*.json"))
    assert len(comparisons) == 1
    comparison = json.loads(comparisons[0].read_text())
    likelihood = ["test-ce", "nll-most-frequent", "nll-rarest", "top1-rarest"]
    sampled = {f"sampled/{m}" for m in METRICS}
    assert set(comparison["metrics"]) == {*METRICS, *likelihood, *sampled}  # stored with sorted keys
    # the printed table: the greedy metrics, then the likelihood rows in bucket order, then the sampled ones
    shown = [re.sub(r" [↑↓]$", "", line.split("|")[1].strip()) for line in out.splitlines()
             if line.startswith("| ") and not line.startswith("| metric")]
    n = len(METRICS)
    assert (set(shown[:n]), shown[n:n + len(likelihood)], set(shown[n + len(likelihood):])) == (
        set(METRICS), likelihood, sampled)
    assert comparison["paired_checks"]["init_hash"] and comparison["paired_checks"]["data_order_hash"]
    assert "| nll-rarest ↓ |" in out and "| sampled/distinct-2 ↑ |" in out


def test_sweep_runs_the_grid_then_skips_it(task_file, tmp_path, capsys):
    argv = ["sweep", "--task", str(task_file), "--losses", "ce,pdl", "--alphas", "0,1", "--seeds", "0",
            "--results-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "tiny-bible").glob("*/*") if p.is_dir())
    assert names == ["ce-s0", "pdl-a0-s0", "pdl-a1-s0"]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("skipped (complete)") == 3


def test_pdl_alpha_zero_matches_ce(task_file, tmp_path):
    ce = run_point(point(task_file), tmp_path, progress=False)
    pdl0 = run_point(point(task_file, loss="pdl", loss_options={"alpha": 0.0}), tmp_path, progress=False)
    a, b = metrics_of(ce.path), metrics_of(pdl0.path)
    assert a["metrics"] == b["metrics"]
    assert a["validation_ce"] == pytest.approx(b["validation_ce"], rel=1e-6)


def _run_cli(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("loss", [["--loss", "pdl", "--alpha", "0.5"], ["--loss", "face-online"],
                                  ["--loss", "pdl", "--alpha", "0.5", "--lora"]],
                         ids=["pdl", "face-online-stateful", "pdl-lora"])
def test_resume_after_sigkill_matches_uninterrupted_run(task_file, tmp_path, loss):
    args = ["run", "--task", str(task_file), *loss, "--no-progress"]
    clean = _run_cli(args + ["--results-dir", str(tmp_path / "clean")])
    assert clean.returncode == 0, clean.stderr
    killed = _run_cli(args + ["--results-dir", str(tmp_path / "crash")], {"PDL_BENCH_KILL_AFTER_SAVE": "2"})
    assert killed.returncode == -9  # SIGKILL right after checkpoint-2 was written
    [crashed] = list((tmp_path / "crash").glob("tiny-bible/*/*"))
    assert (crashed / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (crashed / METRICS_FILE).exists()
    assert train_losses(crashed)[:2] and len(train_losses(crashed)) >= 2  # the killed run's curve is on disk
    resumed = _run_cli(args + ["--results-dir", str(tmp_path / "crash")])
    assert resumed.returncode == 0, resumed.stderr
    [reference] = list((tmp_path / "clean").glob("tiny-bible/*/*"))
    assert (crashed / METRICS_FILE).read_bytes() == (reference / METRICS_FILE).read_bytes()
    assert (crashed / GENERATIONS_FILE).read_bytes() == (reference / GENERATIONS_FILE).read_bytes()
    prov = json.loads((crashed / PROVENANCE_FILE).read_text())
    assert prov["resumed"] == {"from_phase": "train", "from_step": 2}
    assert not (crashed / "checkpoints").exists()


def test_unknown_model_path_fails_clearly(task_file, tmp_path):
    with pytest.raises(HarnessError, match="does not exist|no config.json|not found"):
        run_point(point(task_file, model=str(tmp_path / "no-such-model")), tmp_path, progress=False)


def test_task_without_test_split_fails_clearly(task_file, tmp_path):
    task = yaml.safe_load(task_file.read_text())
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "validation"):
        (data / f"{split}.jsonl").write_text(Path(task["source"]["path"], f"{split}.jsonl").read_text())
    task["source"]["path"] = str(data)
    broken = tmp_path / "no-test.yaml"
    broken.write_text(yaml.safe_dump(task))
    # The message itself, not just "test" (which pytest's temp path holds, so any error would match).
    with pytest.raises(HarnessError, match=re.escape(f"no test file in {data} for task 'tiny-bible'")):
        run_point(point(broken), tmp_path / "results", progress=False)


def test_negative_alpha_grid_is_rejected(task_file, tmp_path, capsys):
    code = main(["sweep", "--task", str(task_file), "--alphas", "0,-0.5", "--results-dir", str(tmp_path)])
    assert code == 2
    assert "alpha must be >= 0" in capsys.readouterr().err


def test_unwritable_results_dir_fails_clearly(task_file, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the results folder should be")
    # The reason, not just "results" (which the hint and the temp path hold, so any error would match).
    with pytest.raises(HarnessError, match=rf"cannot lock {re.escape(str(blocker))}/\S+\.lock: Not a directory"):
        run_point(point(task_file), blocker, progress=False)


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(task_file, tmp_path, monkeypatch):
    """The loss turns NaN at step 3, after checkpoint-2 was saved (save_steps=2): the run stops
    there, and the checkpoint its message names is kept, complete and finite."""
    import torch
    from safetensors.torch import load_file

    poison_after_step(monkeypatch, 2, lambda model: model.get_input_embeddings().register_forward_hook(
        lambda module, inputs, output: output * float("nan")))  # NaN activations; the weights stay as they are
    run = point(task_file)
    with pytest.raises(HarnessError, match="training loss became nan at step 3") as err:
        run_point(run, tmp_path, progress=False)
    checkpoints = resolve(run, tmp_path).store.checkpoints
    kept = checkpoints / "checkpoint-2"
    assert f"Last good checkpoint: {kept}" in str(err.value)
    saved = [p.name for p in checkpoints.iterdir() if p.is_dir()]  # beside them: phases.json, the training record
    assert saved == [kept.name] and last_complete_checkpoint(checkpoints) == kept
    weights = load_file(kept / "model.safetensors")
    assert weights and all(torch.isfinite(t).all() for t in weights.values())


def test_fast_paths_match_plain_paths_on_cpu(task_file, tmp_path):
    """Packed batches + chunked loss + static-cache generation (forced on CPU) train and decode
    like the plain HF path: same validation CE within float tolerance, same greedy outputs."""
    plain = run_point(point(task_file, loss="pdl", loss_options={"alpha": 1.0}, fast="off"), tmp_path, progress=False)
    fast = run_point(point(task_file, loss="pdl", loss_options={"alpha": 1.0}, fast="on"), tmp_path, progress=False)
    assert plain.path != fast.path
    prov = json.loads((fast.path / PROVENANCE_FILE).read_text())
    assert prov["training_path"] == "fast (packed rows, chunked loss)"
    assert prov["generation_path"] == "fast (static KV cache)"
    assert json.loads((plain.path / PROVENANCE_FILE).read_text())["training_path"].startswith("plain")
    a, b = metrics_of(plain.path), metrics_of(fast.path)
    assert b["validation_ce"] == pytest.approx(a["validation_ce"], rel=1e-4)
    assert train_losses(fast.path) == pytest.approx(train_losses(plain.path), rel=1e-4)
    assert (fast.path / GENERATIONS_FILE).read_text() == (plain.path / GENERATIONS_FILE).read_text()


def test_bf16_training_then_static_cache_generation_decodes_in_fp32(task_file, tmp_path, monkeypatch):
    """What a GPU point does by default (found on an H200): bf16 mixed precision trains through
    accelerate's autocast wrapper around forward, and the static KV cache is allocated in the
    model's dtype (fp32). Generation must run the plain fp32 forward: with the wrapper left on,
    bf16 keys met the fp32 cache there (index_copy_ dtype error). Forced here on CPU, where
    autocast computes in bf16 too: every layer's output during decoding must be fp32."""
    import torch

    from harness.runner import generation

    seen: set = set()
    original = generation.generate_outputs

    def recording(model, *args, **kwargs):
        hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
                 for m in model.modules() if isinstance(m, torch.nn.Linear)]
        try:
            return original(model, *args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()

    monkeypatch.setattr(generation, "generate_outputs", recording)
    result = run_point(point(task_file, fast="on", overrides=["training.bf16=true"]), tmp_path, progress=False)
    prov = json.loads((result.path / PROVENANCE_FILE).read_text())
    assert (prov["precision"], prov["generation_path"]) == ("bf16", "fast (static KV cache)")
    assert seen == {torch.float32} and prov["decode_dtype"] == "float32"


@pytest.mark.slow
def test_compiled_fast_path_trains_like_the_eager_fast_path(task_file, tmp_path):
    """--compile on (what the fast path does on GPU, via the Trainer's torch_compile) runs the packed
    rows through torch.compile and changes nothing but float rounding."""
    eager = run_point(point(task_file, loss="pdl", loss_options={"alpha": 1.0}, fast="on", compile="off"),
                      tmp_path, progress=False)
    from torch._dynamo.utils import counters

    counters.clear()
    compiled = run_point(point(task_file, loss="pdl", loss_options={"alpha": 1.0}, fast="on", compile="on"),
                         tmp_path, progress=False)
    # dynamo really compiled the model, and did not recompile per step (the LM-head hook of the
    # chunked loss is registered anew every step): 6 steps and 2 evaluations, 2 graphs here.
    assert 0 < counters["stats"]["unique_graphs"] <= 4
    assert compiled.path != eager.path
    prov = json.loads((compiled.path / PROVENANCE_FILE).read_text())
    assert prov["training_path"] == "fast (packed rows, chunked loss, torch.compile)"
    assert len(train_losses(compiled.path)) == len(train_losses(eager.path)) > 1
    assert train_losses(compiled.path) == pytest.approx(train_losses(eager.path), rel=1e-4)
    assert metrics_of(compiled.path)["validation_ce"] == pytest.approx(metrics_of(eager.path)["validation_ce"], rel=1e-4)


def test_compile_without_the_fast_path_is_refused(task_file, tmp_path, tiny_seq2seq_dir):
    with pytest.raises(HarnessError, match="compile is part of the fast training path"):
        run_point(point(task_file, fast="off", compile="on"), tmp_path, progress=False)
    with pytest.raises(HarnessError, match="needs the fast training path, which this model cannot take"):
        run_point(point(task_file, model=str(tiny_seq2seq_dir), compile="on"), tmp_path, progress=False)
    assert not any((tmp_path / "tiny-bible").glob("*/*"))  # no point folder left behind


def test_encoder_decoder_model_runs_a_point(task_file, tmp_path, tiny_seq2seq_dir):
    """The seq2seq path: labels without shift, decoder inputs from the collator, right padding."""
    result = run_point(point(task_file, model=str(tiny_seq2seq_dir), loss="pdl", loss_options={"alpha": 0.5}),
                       tmp_path, progress=False)
    prov = json.loads((result.path / PROVENANCE_FILE).read_text())
    assert prov["model_kind"] == "seq2seq"
    assert metrics_of(result.path)["validation_ce"] > 0
    assert len((result.path / GENERATIONS_FILE).read_text().splitlines()) == 12


@pytest.mark.slow
def test_sweep_over_two_workers_runs_each_point_once(task_file, tmp_path):
    """--gpus runs each point as its own process on the next free device (CUDA_VISIBLE_DEVICES; on
    CPU the variable is inert, which is enough to check the sharing): every point done once."""
    done = _run_cli(["sweep", "--task", str(task_file), "--losses", "ce,pdl", "--alphas", "0.5,1",
                     "--gpus", "0,1", "--results-dir", str(tmp_path), "--no-progress"])
    assert done.returncode == 0, done.stderr[-2000:]
    folders = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "tiny-bible").glob("*/*") if p.is_dir())
    assert folders == ["ce-s0", "pdl-a0.5-s0", "pdl-a1-s0"]
    assert all((p / METRICS_FILE).is_file() for p in (tmp_path / "tiny-bible").glob("*/*"))
    assert "3 point(s) over 2 slot(s) of 1 GPU(s): 0 1" in done.stdout
    assert done.stdout.count(": done\n") == 3  # each point is its own `pdl-bench run` process
    assert "sweep: 3 done" in done.stdout


def test_a_run_that_fails_before_training_leaves_no_folder(task_file, tmp_path):
    with pytest.raises(HarnessError):
        run_point(point(task_file, model=str(tmp_path / "missing-model")), tmp_path / "results", progress=False)
    assert [p.name for p in (tmp_path / "results").iterdir()] == [".locks"]  # the lock file stays: deleting a
    # lock file while others may hold it open could let two processes hold the lock at once


def test_distributed_settings_pass_through_to_the_trainer(task_file, tmp_path):
    """FSDP and friends are the Trainer's job: task keys reach TrainingArguments unchanged."""
    from harness.runner.training import training_arguments
    from harness.task import apply_overrides, load_task

    task = apply_overrides(load_task(str(task_file)), [
        "training.gradient_checkpointing=true", "training.max_grad_norm=0.5",
        "training.fsdp_config={min_num_params: 1000}",
    ])
    args = training_arguments(task, tmp_path, seed=3, progress=False, has_validation=True)
    assert args.gradient_checkpointing and args.max_grad_norm == 0.5 and args.seed == 3
    assert args.fsdp_config["min_num_params"] == 1000
    assert args.train_sampling_strategy == "sequential"


def test_generation_keeps_every_stop_id_of_the_model():
    from types import SimpleNamespace

    from harness.runner.generation import generation_kwargs
    from harness.task import GenerationConfig

    tokenizer = SimpleNamespace(eos_token_id=5, pad_token_id=0)
    assert generation_kwargs(GenerationConfig(), tokenizer, [5, 7])["eos_token_id"] == [5, 7]
    assert generation_kwargs(GenerationConfig(), tokenizer, None)["eos_token_id"] == 5


def test_arms_that_differ_beyond_the_loss_are_not_compared(tmp_path):
    """bench refuses what the one pairing rule (harness.results.pairing_problems) refuses."""
    from harness.results import PointConfig, Provenance, write_record
    from harness.runner.bench import check_paired
    from harness.runner.point import PointResult

    prov = Provenance(init_hash="i", data_order_hash="d", seed=0, precision="fp32", training_path="plain",
                      world_size=1)
    config = PointConfig(task={"name": "t", "limits": {"train": 8}}, model="m", loss="ce", seed=0)

    def arm(name: str, config: PointConfig, prov: Provenance) -> PointResult:
        write_record(tmp_path / name, config)
        write_record(tmp_path / name, prov)
        return PointResult(tmp_path / name, {}, prov.model_dump(), False)

    a = arm("a", config, prov)
    other_loss = config.model_copy(update={"loss": "pdl", "loss_options": {"alpha": 1.0}})
    assert check_paired(a, arm("b", other_loss, prov))["seed"] == 0
    other_budget = other_loss.model_copy(update={"task": {"name": "t", "limits": {"train": 16}}})
    with pytest.raises(HarnessError, match="configs differ in task"):
        check_paired(a, arm("c", other_budget, prov))
    with pytest.raises(HarnessError, match="seeds differ"):
        check_paired(a, arm("d", other_loss.model_copy(update={"seed": 1}), prov.model_copy(update={"seed": 1})))
    description_only = other_loss.model_copy(update={"task": {**config.task, "description": "other words"}})
    assert check_paired(a, arm("e", description_only, prov))  # documentation is not identity

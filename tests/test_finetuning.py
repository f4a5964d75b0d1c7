"""Finetuning as practitioners do it: LoRA through peft, any TrainingArguments field from the task,
TensorBoard and a live train_log, and the trained model kept and reloadable."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from harness.errors import HarnessError
from harness.results import ADAPTER_FOLDER, GENERATIONS_FILE, MODEL_FOLDER, PROVENANCE_FILE, TRAIN_LOG_FILE
from harness.runner.config import RunConfig
from harness.runner.point import run_point
from harness.task import apply_overrides, load_task
from tiny import modes_of
from test_runner import metrics_of, task_file  # noqa: F401  (the tiny local task fixture)

LORA = ["training.peft.method=lora"]


def point(task_file: Path, overrides: list[str] = (), **update) -> RunConfig:  # noqa: F811
    return RunConfig(task=str(task_file), overrides=list(overrides), **update)


def provenance_of(path: Path) -> dict:
    return json.loads((path / PROVENANCE_FILE).read_text())


def first_generation(path: Path) -> str:
    return json.loads((path / GENERATIONS_FILE).read_text().splitlines()[0])["prediction"]


@pytest.fixture
def captured_weights(monkeypatch):
    """The model's weights right after training (taken where the runner releases the optimizer)."""
    import harness.runner.training as training

    seen: dict[str, dict[str, torch.Tensor]] = {}
    release = training.release_training_state

    def capture(trainer):
        seen["after"] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        release(trainer)

    monkeypatch.setattr(training, "release_training_state", capture)
    return seen


def test_lora_trains_only_the_adapters(task_file, tmp_path, tiny_causal_dir, captured_weights):  # noqa: F811
    from transformers import AutoModelForCausalLM

    result = run_point(point(task_file, LORA), tmp_path, progress=False)
    after = captured_weights["after"]
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_dir, dtype=torch.float32).state_dict()
    adapters = {k for k in after if "lora_" in k}
    assert adapters and any("lora_B" in k for k in adapters)
    frozen = {k: v for k, v in after.items() if k not in adapters}
    for name, value in frozen.items():  # peft names the base weights base_model.model.<name>(.base_layer)
        original = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(value, base[original]), name
    assert any(after[k].abs().sum() > 0 for k in adapters if "lora_B" in k)  # B starts at zero, then learns
    prov = provenance_of(result.path)
    assert 0 < prov["trainable_parameters"]["trainable"] < prov["trainable_parameters"]["total"] / 2
    assert prov["training_path"] == "fast (packed rows, chunked loss)"  # the LM head is not adapted


def test_lora_pdl_alpha_zero_equals_ce(task_file, tmp_path):  # noqa: F811
    ce = run_point(point(task_file, LORA), tmp_path, progress=False)
    pdl0 = run_point(point(task_file, LORA, loss="pdl", loss_options={"alpha": 0.0}), tmp_path, progress=False)
    a, b = metrics_of(ce.path), metrics_of(pdl0.path)
    assert a["metrics"] == b["metrics"]
    assert a["validation_ce"] == pytest.approx(b["validation_ce"], rel=1e-6)
    assert provenance_of(ce.path)["init_hash"] == provenance_of(pdl0.path)["init_hash"]


def test_lora_adapters_start_from_the_seed(task_file, tmp_path):  # noqa: F811
    """Same seed: same base + adapter hash in every arm; another seed: another adapter."""
    runs = [run_point(point(task_file, LORA, seed=seed, loss=loss, loss_options=options), tmp_path, progress=False)
            for seed, loss, options in ((0, "ce", {}), (0, "pdl", {"alpha": 1.0}), (1, "ce", {}))]
    hashes = [provenance_of(r.path)["init_hash"] for r in runs]
    assert hashes[0] == hashes[1] != hashes[2]
    full = run_point(point(task_file), tmp_path, progress=False)
    assert provenance_of(full.path)["init_hash"] != hashes[0]  # the adapters are in the hash


def test_lora_settings_are_part_of_the_point(task_file, tmp_path):  # noqa: F811
    full = run_point(point(task_file), tmp_path / "a", progress=False)
    lora = run_point(point(task_file, LORA), tmp_path / "a", progress=False)
    rank16 = run_point(point(task_file, LORA + ["training.peft.r=16"]), tmp_path / "a", progress=False)
    assert len({full.path, lora.path, rank16.path}) == 3
    config = json.loads((rank16.path / "config.json").read_text())
    assert config["task"]["training"]["peft"]["r"] == 16


def test_an_adapted_lm_head_falls_back_to_the_plain_loss(task_file, tmp_path):  # noqa: F811
    result = run_point(point(task_file, LORA + ["training.peft.target_modules=[q_proj,lm_head]"]), tmp_path,
                       progress=False)
    assert provenance_of(result.path)["training_path"] == "plain (padded batches, full logits)"


def test_qlora_without_cuda_fails_before_anything_loads(task_file, tmp_path):  # noqa: F811
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: QLoRA may run")
    with pytest.raises(HarnessError, match="QLoRA .* needs a CUDA GPU"):
        run_point(point(task_file, ["training.peft.method=qlora"]), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("peft", [False, True], ids=["full", "lora"])
def test_kept_model_reloads_and_reproduces_the_first_generation(task_file, tmp_path, peft, umask_022):  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.data import load_splits, tokenize_for_generation
    from harness.runner.generation import generate

    result = run_point(point(task_file, LORA if peft else []), tmp_path, progress=False)
    folder = result.path / (ADAPTER_FOLDER if peft else MODEL_FOLDER)
    assert (folder / ("adapter_model.safetensors" if peft else "model.safetensors")).is_file()
    assert not list(folder.glob("*.bin")) and not (result.path / "checkpoints").exists()
    if peft:
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(folder)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    task = load_task(str(task_file))
    prompts = tokenize_for_generation(task, load_splits(task)["test"], tokenizer, is_encoder_decoder=False)
    [again] = generate(model, tokenizer, [prompts["input_ids"][0]], task.generation, is_encoder_decoder=False,
                       progress=False)
    assert again == first_generation(result.path)
    assert provenance_of(result.path)["kept_model"] == folder.name
    # safetensors writes its files 0600; kept weights are shared like every other result file
    assert set(modes_of(result.path).values()) == {0o644}, modes_of(result.path)


def test_a_kept_adapter_names_its_base_by_its_public_id_and_reloads_on_another_machine(
        task_file, tmp_path, tiny_causal_dir, monkeypatch):  # noqa: F811
    """The base is a builtin converted from a hub model: the adapter names that hub id (not the
    cache folder of the machine that trained it), and a copy of the point folder reloads where the
    model cache is elsewhere and the training machine's cache is gone."""
    import shutil

    from harness.data import load_splits, tokenize_for_generation
    from harness.models import BUILTIN_MODELS, BuiltinModel
    from harness.runner.generation import generate
    from test_models import FakeBuilder

    source = tmp_path / "fake-source.bin"
    source.write_bytes(b"source v1")
    monkeypatch.setitem(BUILTIN_MODELS, "fake-tiny", BuiltinModel(
        alias="fake-tiny", kind="causal", params="tiny", description="test", package="pytest",
        build_note="building fake-tiny", locate_source=lambda: source, build=FakeBuilder(tiny_causal_dir),
        hub_id="example-org/tiny-causal"))
    monkeypatch.setenv("PDL_BENCH_CACHE", str(tmp_path / "trained-here"))
    result = run_point(point(task_file, LORA, model="fake-tiny"), tmp_path / "results", progress=False)
    adapter_config = json.loads((result.path / ADAPTER_FOLDER / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "example-org/tiny-causal"
    assert not [p.name for p in (result.path / ADAPTER_FOLDER).iterdir()
                if p.suffix in (".json", ".md") and str(tmp_path) in p.read_text()]  # no path of this machine

    elsewhere = shutil.copytree(result.path, tmp_path / "another-machine" / result.path.name)
    shutil.rmtree(tmp_path / "trained-here")
    monkeypatch.setenv("PDL_BENCH_CACHE", str(tmp_path / "another-cache"))
    from harness.models import load_kept_model

    model, tokenizer = load_kept_model(elsewhere / ADAPTER_FOLDER)
    task = load_task(str(task_file))
    prompts = tokenize_for_generation(task, load_splits(task)["test"], tokenizer, is_encoder_decoder=False)
    [again] = generate(model, tokenizer, [prompts["input_ids"][0]], task.generation, is_encoder_decoder=False,
                       progress=False)
    assert again == first_generation(result.path)
    assert (tmp_path / "another-cache" / "models" / "fake-tiny").is_dir()


def test_keep_none_and_checkpoints(task_file, tmp_path, umask_022):  # noqa: F811
    none = run_point(point(task_file, ["training.keep=none"]), tmp_path / "none", progress=False)
    assert not (none.path / MODEL_FOLDER).exists() and not (none.path / "checkpoints").exists()
    kept = run_point(point(task_file, ["training.keep=checkpoints"]), tmp_path / "all", progress=False)
    assert (kept.path / MODEL_FOLDER).is_dir() and list((kept.path / "checkpoints").glob("checkpoint-*"))
    assert none.path.name == kept.path.name  # what is kept is not part of the point's identity
    assert set(modes_of(kept.path).values()) == {0o644}, modes_of(kept.path)


def test_trainer_options_pass_through_and_change_the_point(task_file, tmp_path):  # noqa: F811
    from harness.runner.training import training_arguments

    task = apply_overrides(load_task(str(task_file)), ["training.optim=sgd", "training.adam_beta2=0.95",
                                                       "training.dataloader_num_workers=1"])
    args = training_arguments(task, tmp_path, seed=0, progress=False, has_validation=True)
    assert (args.optim, args.adam_beta2, args.dataloader_num_workers) == ("sgd", 0.95, 1)
    adamw = run_point(point(task_file), tmp_path, progress=False)
    sgd = run_point(point(task_file, ["training.optim=sgd"]), tmp_path, progress=False)
    assert adamw.path != sgd.path
    from tiny import train_losses

    assert train_losses(adamw.path)[-1] != train_losses(sgd.path)[-1]


@pytest.mark.parametrize("override, message", [
    ("training.optimm=sgd", "training.optimm: unknown key (did you mean optim"),
    ("training.lora_r=8", "LoRA is set in training.peft"),
    ("training.seed=3", "training.seed: cannot be set: the seed is the point's"),
    ("training.train_sampling_strategy=random", "data is read in the seeded order"),
    ("training.save_total_limit=3", "set training.keep"),
    ("training.label_smoothing_factor=0.1", "the loss is the point's"),
])
def test_bad_or_pairing_breaking_trainer_options_are_refused(task_file, override, message):  # noqa: F811
    with pytest.raises(HarnessError, match=message.replace("(", r"\(")):
        apply_overrides(load_task(str(task_file)), [override])


@pytest.mark.parametrize("override, message", [
    ("training.optim=adamw_bogus", "adamw_bogus is not a valid OptimizerNames"),
    ("training.report_to=bogus", "unknown tracker 'bogus'"),
    ("training.report_to=[tensorboard,wandb]", "wandb is not installed"),
])
def test_values_transformers_rejects_fail_before_anything_loads(task_file, tmp_path, override, message):  # noqa: F811
    if "wandb" in override and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    with pytest.raises(HarnessError, match=message):
        run_point(point(task_file, [override]), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_precision_requests_reach_the_plan_and_provenance(task_file, tmp_path):  # noqa: F811
    """fp16 / bf16 are TrainingArguments keys; the plan takes them and provenance records them
    (they are part of the pairing rule). bf16 autocast runs on CPU too."""
    for precision in ("bf16", "fp16"):  # fp16 (V100/T4): loss scaling; its overflow steps are skipped
        result = run_point(point(task_file, [f"training.{precision}=true"]), tmp_path, progress=False)
        assert provenance_of(result.path)["precision"] == precision
    with pytest.raises(HarnessError, match="fp16 and training.bf16 are both set"):
        run_point(point(task_file, ["training.bf16=true", "training.fp16=true"]), tmp_path, progress=False)


def test_report_to_tensorboard_writes_readable_event_files(task_file, tmp_path):  # noqa: F811
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_point(point(task_file, ["training.report_to=tensorboard"]), tmp_path, progress=False)
    events = list((result.path / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(result.path / "tensorboard"))
    accumulator.Reload()
    losses = [event.value for event in accumulator.Scalars("train/loss")]
    logged = [row["loss"] for row in map(json.loads, (result.path / TRAIN_LOG_FILE).read_text().splitlines())
              if "loss" in row]
    assert losses == pytest.approx(logged, rel=1e-6)
    plain = run_point(point(task_file), tmp_path, progress=False)
    assert plain.path.name == result.path.name  # where curves go is not part of the point's identity


def test_train_log_grows_while_training(task_file, tmp_path, monkeypatch):  # noqa: F811
    """Each logged step is on disk before the next step ends (`tail -f` shows it; a kill keeps it)."""
    import harness.runner.training as training

    on_disk = {}  # step -> the newest step train_log.jsonl held when that step ended

    class Watched(training.LiveTrainLog):
        def on_step_end(self, args, state, control, **kwargs):
            rows = [json.loads(line) for line in self.path.read_text().splitlines()]
            on_disk[state.global_step] = max((row.get("step", 0) for row in rows), default=0)

    monkeypatch.setattr(training, "LiveTrainLog", Watched)
    run_point(point(task_file), tmp_path, progress=False)
    # logging_steps=1; the Trainer logs step N just after its on_step_end, so step N sees N-1
    assert on_disk == {step: step - 1 for step in range(1, 7)}


def test_push_to_hub_offline_fails_before_training(task_file, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HarnessError, match="--push-to-hub me/model: HF_HUB_OFFLINE is set"):
        run_point(point(task_file, push_to_hub="me/model"), tmp_path, progress=False)
    with pytest.raises(HarnessError, match="training.keep is none"):
        run_point(point(task_file, ["training.keep=none"], push_to_hub="me/model"), tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_cli_lora_and_keep_flags(task_file, tmp_path, capsys):  # noqa: F811
    from harness.cli import main

    assert main(["run", "--task", str(task_file), "--lora", "--keep", "none", "--no-progress",
                 "--results-dir", str(tmp_path)]) == 0
    [folder] = list(tmp_path.glob("tiny-bible/*/*"))
    config = json.loads((folder / "config.json").read_text())
    assert config["task"]["training"]["peft"]["method"] == "lora"
    assert config["task"]["training"]["keep"] == "none" and not (folder / ADAPTER_FOLDER).exists()


def test_validate_checks_the_passed_through_trainer_options(task_file, tmp_path, capsys):  # noqa: F811
    import yaml

    from harness.cli import main

    data = yaml.safe_load(task_file.read_text())
    data["training"]["optim"] = "adamw_bogus"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["validate", str(bad)]) == 1
    assert "adamw_bogus is not a valid OptimizerNames" in capsys.readouterr().out


def test_trainer_option_values_take_their_field_type(task_file, tmp_path):  # noqa: F811
    """YAML reads 1e-8 as text: it must reach the optimizer as a float, and name one point."""
    task = apply_overrides(load_task(str(task_file)), ["training.adam_epsilon=1e-8"])
    assert task.training.trainer_options["adam_epsilon"] == 1e-8
    assert isinstance(task.training.trainer_options["adam_epsilon"], float)
    written = [folder_of(task_file, tmp_path, [f"training.adam_epsilon={value}"]) for value in ("1e-8", "1.0e-8")]
    assert written[0] == written[1]
    with pytest.raises(HarnessError, match="adam_epsilon: Input should be a valid number"):
        apply_overrides(load_task(str(task_file)), ["training.adam_epsilon=small"])


def folder_of(task_file: Path, results: Path, overrides: list[str]) -> Path:  # noqa: F811
    from harness.runner.point import resolve

    return resolve(point(task_file, overrides), results).store.path

"""Run one point: finetune with one loss, generate on the test split, score, write the folder.

Resumable: a rerun of the same command resumes from the last complete checkpoint, and a finished
point is skipped. Only the main process writes results under `torchrun`/`accelerate launch`.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.io import share_like_new_files, write_jsonl_atomic
from harness.keyvalue import parse_key_value
from harness.results import (
    GENERATIONS_FILE, TRAIN_LOG_FILE, PointConfig, PointMetrics, Provenance, generations_file,
    point_path, read_config, read_metrics, read_provenance, write_example_scores, write_record, write_token_scores,
    write_train_counts,
)
from harness.runner.config import RunConfig
from harness.runner.scoring import rescore_point, score_decodings
from harness.store import PointLock, PointStore, PointTaken, is_point_folder_name


@dataclass
class ResolvedPoint:
    """Everything decided before any model is loaded, so bad input fails in seconds."""

    run: RunConfig
    task: Any
    model_ref: str
    model_origin: str  # where model_ref came from, in words (--model, the task's `model`, ...)
    loss_options: dict[str, Any]
    config: PointConfig  # what config.json records, and what names the folder
    store: PointStore


@dataclass
class PointResult:
    path: Path
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    skipped: bool


def choose_model(run: RunConfig, task) -> tuple[str, str]:
    """The model a point trains and where that choice came from: --model, else the task's `model`
    (which `--set model=...` changes). One rule, printed by every run and shown by `pdl-bench tasks`."""
    if run.model:
        return run.model, "--model"
    if any(parse_key_value(item, "--set", "model=...")[0] == "model" for item in run.overrides):
        return task.model, "--set model=..."
    return task.model, f"the {task.name} task's `model`"


def check_metric_names(task) -> None:
    """Every metric the task asks for exists: a typo fails now, not after training and generation."""
    from harness.metrics import METRICS

    for name in task.metrics:
        METRICS.get(name)  # unknown -> HarnessError with did-you-mean


def resolve(run: RunConfig, results_dir: Path) -> ResolvedPoint:
    from harness.losses import LOSSES, validate_options
    from harness.models import model_slug
    from harness.data.sources import check_source
    from harness.runner.plan import check_requests
    from harness.runner.training import check_training_arguments
    from harness.task import apply_overrides, load_task

    task = check_source(apply_overrides(load_task(run.task), run.overrides))  # builder options filled in
    check_metric_names(task)
    model_ref, model_origin = choose_model(run, task)
    check_requests(run.fast, run.compile)
    check_training_arguments(task)
    loss_options = validate_options(run.loss, run.loss_options).model_dump(mode="json")
    config = PointConfig(task=task.model_dump(mode="json"), model=model_ref, loss=run.loss,
                         loss_options=loss_options, loss_plugin=LOSSES.origin(run.loss).pin(), seed=run.seed,
                         data_dir=run.data_dir, fast=run.fast, compile=run.compile)
    return ResolvedPoint(run, task, model_ref, model_origin, loss_options, config,
                         PointStore(point_folder(results_dir, config, model_slug(model_ref))))


def point_folder(results_dir: Path, config: PointConfig, model_slug: str) -> Path:
    """Where the point of `config` lives under `results_dir`: its folder by the current naming
    rule, or the folder an earlier result format named (whose hash covered other keys, e.g. the
    metric list before format 4) when that one holds the same point, so upgrading pdl-bench never
    silently reruns finished work."""
    path = point_path(results_dir, config, model_slug)
    if path.exists() or not path.parent.is_dir():
        return path
    prefix = path.name[: -len(config.digest())]
    for candidate in sorted(path.parent.glob(prefix + "*")):
        if len(candidate.name) != len(path.name) or not is_point_folder_name(candidate.name):
            continue
        try:
            earlier = read_config(candidate)
        except HarnessError:
            continue
        if earlier.identity() == config.identity():  # then its name came from an earlier rule
            return candidate
    return path


def run_point(run: RunConfig, results_dir: Path, *, force: bool = False, progress: bool = True) -> PointResult:
    """Train, generate and score one point (or return the finished one).

    The point's lock is taken before anything is touched. A --force rerun trains in a staging
    folder and replaces the earlier result only once it has finished, so a failed or killed rerun
    hides nothing (the earlier folder is moved aside as <point>.replaced-<time>, never deleted).
    """
    from harness.runner.dist import process_state
    from harness.runner.memory import give_back_memory

    point = resolve(run, results_dir)
    store = point.store
    check_this_host(point)
    state = process_state()
    if store.is_complete() and not force and state.num_processes == 1:
        store.claim(point.config)  # refuses a folder that holds another config
        _rescore_if_out_of_date(point)
        return _pushed(point, _load_result(store, skipped=True))
    lock, decision, failure = None, "run", None
    if state.is_main_process:  # decides alone; every rank then follows (ranks may see different disks)
        try:
            lock = PointLock(store).acquire()
            store.finish_interrupted_swap()
            if store.is_complete() and not force:
                store.claim(point.config)
                decision = "done"  # finished already, or by another process while we started
            elif force and store.path.exists():
                decision = "staged"
                store.staging().claim(point.config)  # an interrupted forced rerun of this point resumes
            else:
                store.claim(point.config)
        except Exception as err:  # noqa: BLE001 - whatever failed, every rank must hear the decision
            decision, failure = ("taken" if isinstance(err, PointTaken) else "failed"), err
    decision = rank_zero_decision(state, decision)  # every rank follows the main process
    if decision == "taken":
        raise failure or PointTaken(f"{store.path} is being run by another process (see rank 0)",
                                    "wait for it to finish; the lock is released when that process exits")
    if decision == "failed":
        if lock is not None:
            lock.release()
        raise failure or HarnessError("the main process could not start this point; see its error",
                                      "fix what rank 0 reported and rerun")
    work = replace(point, store=store.staging()) if decision == "staged" else point
    try:
        if decision == "done":
            result = _load_result(store, skipped=True)
        else:
            if decision == "staged" and state.is_main_process:
                print(f"--force: rerunning in {work.store.path}; the earlier result stays until the rerun "
                      "finishes", flush=True)
            result = _execute(work, state, progress)
            if decision == "staged" and state.is_main_process:
                archived = store.replace_with(work.store)
                print(f"--force: earlier results moved to {archived}", flush=True)
                result = replace(result, path=store.path)
    except BaseException:
        if state.is_main_process:
            work.store.discard_if_unstarted()  # a bad input leaves no empty point folder behind
        raise
    finally:
        if lock is not None:
            lock.release()
        give_back_memory()  # the next point of a bench or sweep starts from what this one found
    return _pushed(point, result) if state.is_main_process else result


def check_this_host(point: ResolvedPoint) -> None:
    """What only the machine that runs the point can tell (not the one that plans or submits a
    sweep): QLoRA needs CUDA and bitsandbytes here; a push needs the hub from here."""
    from harness.models.adapters import check_adapter_support
    from harness.runner.keep import check_push

    check_adapter_support(point.task.training.peft)
    check_push(point.run.push_to_hub, point.task.training.keep)


def _pushed(point: ResolvedPoint, result: PointResult) -> PointResult:
    """Push the finished point's kept model when asked (--push-to-hub): after the point is
    complete and in place, so a failed push costs no result; a finished point is pushed as it is."""
    from harness.runner.keep import kept_model_folder, push_trained_model

    if point.run.push_to_hub:
        folder = kept_model_folder(result.path, point.task.training.peft is not None)
        if not folder.is_dir():
            raise HarnessError(f"--push-to-hub: {result.path} kept no model to push (it ran with training.keep none)",
                               "rerun it with --force and the default --keep final")
        print(f"pushed {folder} to {push_trained_model(folder, point.run.push_to_hub)}", flush=True)
    return result


def rank_zero_decision(state, decision: str) -> str:
    """The main process's decision, seen by every rank (a collective: all ranks call it)."""
    if state.num_processes == 1:
        return decision
    from accelerate.utils import broadcast_object_list

    box = [decision]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _rescore_if_out_of_date(point: ResolvedPoint) -> None:
    """A finished point asked for with other metrics (or scored by an older metric version) is
    rescored from its stored generations: the metric list is not part of its identity."""
    why = rescore_point(point.store.path, point.task.metrics, trust_remote_code=point.run.trust_remote_code)
    if why is not None:
        print(f"rescored {point.store.path} from its stored generations ({why})", flush=True)


def _load_result(store: PointStore, skipped: bool) -> PointResult:
    return PointResult(store.path, read_metrics(store.path).model_dump(mode="json"),
                       read_provenance(store.path).model_dump(mode="json"), skipped)


def state_dict_hash(model) -> str:
    """Fingerprint of the initial weights, to prove both arms start from the same init."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)
        digest.update(name.encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def trainable_parameters(model) -> dict[str, int]:
    """How many weights training updates, of how many (LoRA: the adapters only)."""
    params = list(model.parameters())
    return {"trainable": sum(p.numel() for p in params if p.requires_grad), "total": sum(p.numel() for p in params)}


def quiet_library_progress_bars() -> None:
    """Keep the training and generation bars; drop the many per-map bars of datasets/transformers."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def _execute(point: ResolvedPoint, state, progress: bool) -> PointResult:
    import torch
    from transformers import set_seed

    from harness.data import load_splits, tokenize_for_generation
    from harness.models import base_reference, load_model
    from harness.models.adapters import add_adapters, quantization_config
    from harness.provenance import provenance
    from harness.data import tokenize_for_training
    from harness.metrics.likelihood import bucket_sums, likelihood_summary
    from harness.runner.evaluation import token_scores, validation_ce
    from harness.runner.generation import generate_outputs
    from harness.runner.keep import save_trained_model
    from harness.runner.memory import Phases
    from harness.runner.training import (
        PHASES_FILE, keep_earlier_training, note_training, prepare_training, release_training_state,
    )

    run, task, store = point.run, point.task, point.store
    quiet_library_progress_bars()
    if state.is_main_process:
        print(f"folder: {store.path}", flush=True)  # before any work: a killed run still names it
        print(f"model: {point.model_ref} (from {point.model_origin})", flush=True)
    # The main process records each finished phase in the checkpoints folder: a resumed run keeps
    # the training of the run that trained (its time, peak memory and train_log summary).
    phases = Phases(store.checkpoints / PHASES_FILE if state.is_main_process else None)
    set_seed(run.seed)
    peft = task.training.peft
    with phases.phase("load"):
        splits = load_splits(task, data_dir=run.data_dir)  # first: data problems fail before a model loads
        model, tokenizer, spec = load_model(point.model_ref, trust_remote_code=run.trust_remote_code,
                                            quantization_config=quantization_config(peft))
        is_encoder_decoder = spec.kind == "seq2seq"
        if peft is not None:
            model = add_adapters(model, peft, seed=run.seed, is_encoder_decoder=is_encoder_decoder,
                                 gradient_checkpointing=task.training.gradient_checkpointing)
    init_hash = state_dict_hash(model)  # base and adapter: paired arms start from the same weights

    with phases.phase("train"):
        setup = prepare_training(
            point=point, model=model, tokenizer=tokenizer, splits=splits,
            is_encoder_decoder=is_encoder_decoder, progress=progress, phases=phases,
        )
        if setup.resume_from and state.is_main_process:
            print(f"resuming from {setup.resume_from}", flush=True)
        setup.trainer.train(resume_from_checkpoint=setup.resume_from)
        if state.is_main_process and setup.trainer.state.global_step > 0:
            note_training(setup.trainer, phases)
    resumed_step = keep_earlier_training(setup, phases, store.file(TRAIN_LOG_FILE)) if state.is_main_process else None
    state.wait_for_everyone()
    if task.training.keep != "none":
        kept = save_trained_model(setup.trainer, store.path, peft=peft is not None,  # every rank takes part
                                  base=base_reference(point.model_ref))
    # Without the mixed-precision wrapper accelerate put around forward: the test split is decoded
    # and scored in fp32, as on CPU (a bf16 forward also clashed with the fp32 static KV cache).
    unwrapped = setup.trainer.accelerator.unwrap_model(setup.trainer.model, keep_fp32_wrapper=False)
    release_training_state(setup.trainer)
    gen_ds = tokenize_for_generation(task, splits["test"], tokenizer, is_encoder_decoder=is_encoder_decoder)

    def decode(settings, phase: str) -> list:  # on every process, each a share of the batches
        with phases.phase(phase):
            return generate_outputs(
                unwrapped, tokenizer, list(gen_ds["input_ids"]), settings,
                is_encoder_decoder=is_encoder_decoder,
                batch_size=task.training.per_device_eval_batch_size, seed=run.seed, progress=progress,
                fast=setup.plan.static_cache_generation,
                process_index=state.process_index, num_processes=state.num_processes,
            )

    predictions = decode(task.generation, "generate")
    further = {name: decode(extra.on_top_of(task.generation), f"generate_{name}")
               for name, extra in task.decodings.items()}
    if not state.is_main_process:
        return PointResult(store.path, {}, {}, skipped=False)
    eval_batch = task.training.per_device_eval_batch_size
    with phases.phase("validation"):
        val_ce, validation_path = (validation_ce(unwrapped, tokenizer, setup.trainer.eval_dataset,
                                                 is_encoder_decoder=is_encoder_decoder,
                                                 chunked=setup.plan.packed_rows, batch_size=eval_batch)
                                   if setup.has_validation else (None, None))
    with phases.phase("likelihood"):  # teacher-forced, on the test references
        test_ds = tokenize_for_training(task, splits["test"], tokenizer, is_encoder_decoder=is_encoder_decoder)
        scores = token_scores(unwrapped, tokenizer, test_ds, is_encoder_decoder=is_encoder_decoder,
                              batch_size=eval_batch, chunked=setup.plan.packed_rows)
    rows = generation_rows(gen_ds, splits["test"], predictions)
    further_rows = {name: generation_rows(gen_ds, splits["test"], outputs) for name, outputs in further.items()}
    write_jsonl_atomic(store.file(GENERATIONS_FILE), rows)
    for name, decoded in further_rows.items():
        write_jsonl_atomic(store.file(generations_file(name)), decoded)
    write_train_counts(store.path, setup.train_counts)
    write_token_scores(store.path, scores)

    with phases.phase("score"):
        further_scored = {name: (task.decodings[name].on_top_of(task.generation).model_dump(mode="json"), decoded)
                          for name, decoded in further_rows.items()}
        metrics, examples = score_decodings(task.metrics, rows, further_scored, tokenizer, setup.train_counts,
                                            seed=run.seed)
        write_example_scores(store.path, examples)
        metrics["token_likelihood"] = {
            **likelihood_summary(bucket_sums(scores.example, scores.token, scores.nll, scores.correct,
                                             setup.train_counts, len(test_ds))),
            "path": scores.path}
    metrics["validation_ce"] = val_ce
    write_jsonl_atomic(store.file(TRAIN_LOG_FILE), setup.trainer.state.log_history)  # as logged live, whole
    prov = {
        **provenance(),
        "seed": run.seed,
        "init_hash": init_hash,
        "data_order_hash": setup.data_order_hash,
        "frequencies": setup.frequency_summary,
        "loss_weights": setup.loss_weights,
        "plugins": plugin_pins(run.loss, task.metrics),
        "model_kind": spec.kind,
        "model_origin": point.model_origin,
        "n_examples": {name: len(split) for name, split in splits.items()},
        "global_steps": setup.trainer.state.global_step,
        "world_size": state.num_processes,
        "precision": setup.plan.precision,
        "training_path": setup.plan.training_path,
        "generation_path": setup.plan.generation_path,
        # what decoding, validation CE and the likelihood ran in (the weights' dtype, without the
        # training's autocast): fp32 unless the model was loaded in a lower precision
        "decode_dtype": str(next(unwrapped.parameters()).dtype).removeprefix("torch."),
        "validation_path": validation_path,
        "plan": setup.plan.record(),
        "timings": phases.seconds,  # a resumed point's train_s: the runs that trained it
        "resumed": None if resumed_step is None else {"from_phase": phases.stopped_in(),
                                                      "from_step": resumed_step},
        "peak_memory": phases.record(),
        "torch_threads": torch.get_num_threads(),
        "trainable_parameters": trainable_parameters(model),
        "kept_model": kept.name if task.training.keep != "none" else None,
    }
    prov_record, metrics_record = Provenance.model_validate(prov), PointMetrics.model_validate(metrics)
    write_record(store.path, prov_record)
    write_record(store.path, metrics_record)  # last: marks the point complete
    if task.training.keep != "checkpoints":
        shutil.rmtree(store.checkpoints, ignore_errors=True)
    else:
        store.checkpoints.joinpath(PHASES_FILE).unlink(missing_ok=True)
        share_like_new_files(store.checkpoints)  # the Trainer's safetensors are 0600 otherwise
    return PointResult(store.path, metrics_record.model_dump(mode="json"), prov_record.model_dump(mode="json"),
                       skipped=False)


def plugin_pins(loss: str, metrics: list[str]) -> dict[str, Any]:
    """Which plugin distributions (and versions) made this point: its loss's and its metrics'."""
    from harness.losses import LOSSES
    from harness.metrics import METRICS

    return {"loss": LOSSES.origin(loss).pin(),
            "metrics": {name: METRICS.origin(name).pin() for name in metrics if METRICS.origin(name).is_plugin}}


def generation_rows(gen_ds, test_split, outputs: list) -> list[dict]:
    """One decoding's generations file: each test example's id, source, output and reference, and
    how the output ended (tokens generated; stopped at "eos" or at "max_new_tokens")."""
    return [{"id": i, "source": s, "prediction": o.text, "reference": r, "new_tokens": o.new_tokens,
             "stopped": o.stopped}
            for i, s, o, r in zip(gen_ds["id"], test_split["source"], outputs, gen_ds["reference"])]

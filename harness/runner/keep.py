"""What a finished point keeps of its training (training.keep): the trained model, or only its
adapter under LoRA, saved by the Trainer with its tokenizer (safetensors, loadable with
from_pretrained), and an opt-in push of that folder to the hub."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.errors import HarnessError
from harness.io import share_like_new_files
from harness.models.adapters import name_base_publicly
from harness.results import ADAPTER_FOLDER, MODEL_FOLDER
from harness.runner.trainer import weights_complete

PICKLED_FILES = ("training_args.bin",)  # the Trainer's pickled arguments: config.json records them


def kept_model_folder(point: Path, peft: bool) -> Path:
    return point / (ADAPTER_FOLDER if peft else MODEL_FOLDER)


def save_trained_model(trainer, point: Path, *, peft: bool, base: dict | None = None) -> Path:
    """Save the trained model into <point>/model (or <point>/adapter): every rank takes part (the
    Trainer gathers FSDP/DeepSpeed shards), the main process writes a staging folder and swaps it
    in, so a kill mid-save leaves no half model under the final name. An adapter also records its
    base (`base`: harness.models.base_reference), so harness.models.load_kept_model reloads it
    on the model it was trained on, from any copy of the folder."""
    final = kept_model_folder(point, peft)
    staging = final.with_name(final.name + ".partial")
    trainer.save_model(str(staging))
    if trainer.is_world_process_zero():
        if not (staging.is_dir() and weights_complete(staging)):  # FSDP saves nothing with a sharded state dict
            raise HarnessError(
                f"the Trainer wrote no whole model into {staging} (an FSDP sharded state dict?)",
                "set training.fsdp_config.state_dict_type: FULL_STATE_DICT, or pass --keep none")
        for name in PICKLED_FILES:
            (staging / name).unlink(missing_ok=True)
        if peft and base is not None:
            name_base_publicly(staging, base)
        share_like_new_files(staging)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    return final


def check_push(repo_id: str | None, keep: str) -> None:
    """Refuse a push that cannot happen, before training: nothing kept, or no hub."""
    if repo_id is None:
        return
    from harness.hub import hub_endpoint, hub_reachable, offline_by_env

    if keep == "none":
        raise HarnessError("--push-to-hub needs the trained model, but training.keep is none",
                           "drop --keep none (the default keeps the final model)")
    if not hub_reachable():
        why = ("HF_HUB_OFFLINE is set" if offline_by_env()
               else f"the hub ({hub_endpoint()}) cannot be reached from this machine")
        raise HarnessError(f"--push-to-hub {repo_id}: {why}",
                           "drop --push-to-hub; the model stays in the point folder and can be uploaded "
                           "later with `huggingface-cli upload REPO_ID FOLDER`")


def push_trained_model(folder: Path, repo_id: str) -> str:
    """Upload the kept folder to a (private, created if missing) hub repository; its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, private=True, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                                 commit_message="pdl-bench: trained model of one point")
    except Exception as err:  # noqa: BLE001 - network/auth errors of any kind: the point stays complete
        raise HarnessError(f"the point is complete, but pushing {folder} to {repo_id} failed: {err}",
                           f"upload it later with `huggingface-cli upload {repo_id} {folder}`") from err
    return str(getattr(info, "commit_url", repo_id))

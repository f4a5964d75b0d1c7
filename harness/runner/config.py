"""The user's request for one point. What it resolves to, and the folder that names it, are
decided by harness.results (PointConfig)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.runner.plan import COMPILE_MIN_STEPS


class RunConfig(BaseModel):
    """The user's request for one point (before the task and loss defaults are resolved).

    The field descriptions are the help of the matching `pdl-bench run/bench/sweep` options
    (harness/commands/_common.py adds "(default: ...)" from the field's default), so write them
    for a user reading --help.
    """

    model_config = ConfigDict(extra="forbid")

    task: str = Field("bible", description=(
        "task name (see `pdl-bench tasks`) or path to a task YAML; the default task is embedded "
        "in the package and runs offline"))
    model: str | None = Field(None, description=(
        "builtin alias (see `pdl-bench models`), local path or hub id, e.g. "
        "HuggingFaceTB/SmolLM2-360M-Instruct (default: the task's `model`)"))
    loss: str = Field("ce", description="loss name, one of `pdl-bench losses`")
    loss_options: dict[str, Any] = Field(default_factory=dict, description=(
        "option of the loss, type-checked against its options (see `pdl-bench losses`), "
        "e.g. normalization=batch_weight_sum"))
    seed: int = Field(0, description=(
        "random seed for data order, dropout and sampling; the initial weights are the "
        "pretrained model's"))
    data_dir: str | None = Field(None, description=(
        "folder holding a local copy of the task's dataset, one jsonl/json/parquet/csv file per "
        "split (default: the task's own source)"))
    overrides: list[str] = Field(default_factory=list, description=(
        "override a task key with a YAML value, type-checked, e.g. training.learning_rate=1e-4"))
    trust_remote_code: bool = Field(False, description=(
        "allow model and tokenizer code from the hub (off by default; only for repositories you trust)"))
    push_to_hub: str | None = Field(None, description=(
        "once the point is complete (now, if it already is), upload its kept model (or adapter) to "
        "this hub repository, created private if missing; needs internet and `huggingface-cli login` "
        "(checked before training)"))
    fast: Literal["auto", "on", "off"] = Field("auto", description=(
        "the optimised paths. auto: packed rows and a chunked loss in training everywhere, "
        "static-KV-cache generation on GPU only; on: static-KV-cache generation on CPU too; "
        "off: the plain HF paths with padded batches, full logits and a dynamic KV cache"))
    compile: Literal["auto", "on", "off"] = Field("auto", description=(
        "torch.compile the model on the fast training path. auto: on GPU, for a point of at least "
        f"{COMPILE_MIN_STEPS:,} optimizer steps (compiling took about 4-6 minutes on an H200, so a shorter run is faster "
        "eager: docs/perf.md); on: always, on CPU too; off: eager, for a stack where compilation fails"))

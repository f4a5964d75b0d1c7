"""What defines one experimental point, and the folder it lives in.

A point is named by its arguments plus a short hash of the fully resolved config (HELM style), so a
run with a different config can never overwrite another's results, and rerunning the same command
finds its own folder to resume or skip.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_RESULTS_DIR = Path("results")


class RunConfig(BaseModel):
    """The user's request for one point (before the task and loss defaults are resolved)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="task name (tasks/<name>.yaml) or path to a task YAML")
    model: str | None = Field(None, description="builtin alias, local path or hub id; None = task default")
    loss: str = Field("ce", description="loss name from `pdl-bench losses`")
    loss_options: dict[str, Any] = Field(default_factory=dict, description="options of that loss")
    seed: int = Field(0, description="seed for init-free randomness: data order, dropout, sampling")
    data_dir: str | None = Field(None, description="local copy of a hub dataset")
    overrides: list[str] = Field(default_factory=list, description="task overrides, key.path=value")
    trust_remote_code: bool = False
    fast: Literal["auto", "on", "off"] = Field(
        "auto", description="optimised paths: auto = packed/chunked training everywhere, static-cache generation "
                           "on GPU; on = static-cache generation also on CPU; off = plain HF")
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile the model on the fast training path: auto = on GPU only")


def config_hash(resolved: dict[str, Any]) -> str:
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def point_name(loss: str, loss_options: dict[str, Any], seed: int, digest: str) -> str:
    """e.g. `pdl-a0.5-s0-1a2b3c4d`, `ce-s1-9f8e7d6c`: loss, alpha when the loss has one, seed, hash."""
    parts = [_slug(loss)]
    if "alpha" in loss_options:
        parts.append(f"a{float(loss_options['alpha']):g}")
    parts += [f"s{seed}", digest]
    return "-".join(parts)


def point_dir(results_dir: Path, task: str, model_slug: str, name: str) -> Path:
    return Path(results_dir) / _slug(task) / _slug(model_slug) / name

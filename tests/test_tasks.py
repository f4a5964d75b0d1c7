"""Task YAMLs: schema, loading by name or path, overrides, and one clear error per bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from harness import cli
from harness.errors import HarnessError
from harness.task import (
    GenerationConfig, TaskConfig, TrainingConfig, apply_overrides, default_tasks_dir, list_tasks, load_task,
)

REPO_TASKS = Path(__file__).resolve().parents[1] / "tasks"
TASK_FILES = sorted(REPO_TASKS.glob("*.yaml"))


def test_repo_has_the_documented_tasks():
    names = {p.stem for p in TASK_FILES}
    assert {"xsum", "dailydialog", "samsum", "shakespeare", "gyafc", "bible", "chitchat", "aclsum"} <= names


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.stem)
def test_every_task_yaml_validates(path):
    task = load_task(str(path))
    assert isinstance(task, TaskConfig)
    assert task.name == path.stem
    assert isinstance(task.training, TrainingConfig) and isinstance(task.generation, GenerationConfig)
    assert all(a >= 0 for a in task.alphas) and 0.0 in task.alphas  # alpha 0 is the CE baseline
    assert task.metrics and all(isinstance(m, str) for m in task.metrics)
    if task.source.type == "embedded":  # runs offline by default: data and model both ship on PyPI
        from harness.models import BUILTIN_MODELS

        assert task.model in BUILTIN_MODELS and task.expected_sizes is not None


def test_load_by_name_and_by_path_agree():
    assert load_task("bible") == load_task(str(REPO_TASKS / "bible.yaml"))
    assert [t.name for t in list_tasks()] == sorted(p.stem for p in TASK_FILES)


def test_unknown_task_suggests_close_name():
    with pytest.raises(HarnessError, match="did you mean 'bible'"):
        load_task("bibel")


def test_tasks_dir_env_override(tmp_path, monkeypatch):
    shutil.copy(REPO_TASKS / "aclsum.yaml", tmp_path / "aclsum.yaml")
    monkeypatch.setenv("PDL_BENCH_TASKS_DIR", str(tmp_path))
    assert default_tasks_dir() == tmp_path
    assert [t.name for t in list_tasks()] == ["aclsum"]
    with pytest.raises(HarnessError, match="unknown task 'xsum'"):
        load_task("xsum")


def _write_variant(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((REPO_TASKS / "xsum.yaml").read_text())
    edit(data)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nkind: dialogue\nsource: {type: hub\nmodel: x\n")
    with pytest.raises(HarnessError) as err:
        load_task(str(path))
    assert f"{path}:4" in str(err.value)  # the flow mapping opened on line 3 is never closed


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["training"].update(learning_rat=1e-4))
    with pytest.raises(HarnessError) as err:
        load_task(str(path))
    assert "training.learning_rat: unknown key" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["prompt"].update(template="Summarize {article}"), "placeholder {source}"),
    (lambda d: d.update(alphas=[0.5, -1]), "alphas.1"),
    (lambda d: d.update(kind="translation"), "kind"),
    (lambda d: d["source"].update(type="ftp"), "source"),
    (lambda d: d["source"].update(splits={"train": "train"}), "missing ['validation', 'test']"),
    (lambda d: d.update(fields={"input": "document", "target": None}), "fields.target is required"),
])
def test_invalid_values_are_rejected(tmp_path, edit, expected):
    with pytest.raises(HarnessError, match="invalid task") as err:
        load_task(str(_write_variant(tmp_path, edit)))
    assert expected in str(err.value)


def test_embedded_builder_options_are_checked(tmp_path, capsys):
    """The task schema checks only the source's shape; the data layer (which knows the builders)
    checks the builder and its options: in `validate`, `tasks`, and before any data is loaded."""
    from harness.data.sources import check_source, load_raw

    data = yaml.safe_load((REPO_TASKS / "bible.yaml").read_text())
    data["source"]["options"] = {"test_percent": 5}
    path = tmp_path / "bible.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(HarnessError, match=r"source\.options\.test_percent: unknown key"):
        check_source(load_task(str(path)), str(path))
    with pytest.raises(HarnessError, match="test_percent"):
        load_raw(load_task(str(path)), None, ("test",))
    assert cli.main(["validate", str(path)]) == 1
    assert f"ERROR  {path}: invalid task {path}: source.options.test_percent: unknown key" in capsys.readouterr().out
    assert cli.main(["tasks", "--tasks-dir", str(tmp_path)]) != 0
    assert "invalid task 'bible': source.options.test_percent: unknown key" in capsys.readouterr().err
    data["source"] = {"type": "embedded", "builder": "bibel"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(HarnessError, match="did you mean 'bible'"):
        check_source(load_task(str(path)))
    assert cli.main(["validate", str(path)]) == 1
    assert "did you mean 'bible'" in capsys.readouterr().out


def test_embedded_options_are_filled_in_by_the_data_layer():
    from harness.data.sources import check_source

    task = apply_overrides(load_task("chitchat"), ["source.options={context_turns: 2}"])
    assert task.source.options == {"context_turns": 2}  # the task layer keeps what was written
    assert check_source(task).source.options == {"context_turns": 2, "validation_pct": 5, "test_pct": 5}


def test_overrides_are_type_checked():
    task = load_task("xsum")
    changed = apply_overrides(task, ["training.learning_rate=1e-4", "limits.train=100", "alphas=[0, 2]",
                                     "training.freeze_embeddings=true", "limits.test=null"])
    assert changed.training.learning_rate == pytest.approx(1e-4)
    assert changed.limits.train == 100 and changed.limits.test is None
    assert changed.alphas == [0.0, 2.0] and changed.training.freeze_embeddings is True
    assert task.training.learning_rate == 5e-5 and task.limits.train is None  # original untouched
    with pytest.raises(HarnessError, match="limits.train"):
        apply_overrides(task, ["limits.train=abc"])
    with pytest.raises(HarnessError, match="training.learnin_rate: unknown key"):
        apply_overrides(task, ["training.learnin_rate=1e-4"])
    with pytest.raises(HarnessError, match="not a section"):
        apply_overrides(task, ["model.name=x"])
    with pytest.raises(HarnessError, match="key=value"):
        apply_overrides(task, ["training.learning_rate"])


def test_override_fills_an_optional_section():
    task = load_task("dailydialog")
    assert apply_overrides(task, ["dialogue.context_turns=5"]).dialogue.context_turns == 5


def test_validate_command(tmp_path, capsys):
    assert cli.main(["validate"]) == 0
    assert capsys.readouterr().out.count("OK") == len(TASK_FILES)
    bad = _write_variant(tmp_path, lambda d: d.update(max_source_tokens=0))
    assert cli.main(["validate", str(REPO_TASKS / "xsum.yaml"), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "OK     " + str(REPO_TASKS / "xsum.yaml") in out and f"ERROR  {bad}" in out and "max_source_tokens" in out


def test_validate_flags_unknown_metric(tmp_path, capsys):
    bad = _write_variant(tmp_path, lambda d: d.update(metrics=["rouge1", "rogueL"]))
    assert cli.main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "unknown metric 'rogueL'" in out and "did you mean 'rougeL'" in out


def test_validate_flags_misnamed_file_in_tasks_dir(tmp_path, capsys):
    shutil.copy(REPO_TASKS / "aclsum.yaml", tmp_path / "acl.yaml")
    assert cli.main(["validate", "--tasks-dir", str(tmp_path)]) == 1
    assert "name the file aclsum.yaml" in capsys.readouterr().out


def test_tasks_command_lists_every_task(capsys):
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    for path in TASK_FILES:
        assert path.stem in out
    assert "hub:EdinburghNLP/xsum" in out and "embedded:bible" in out and "204045/11332/11334" in out


def test_the_default_metrics_of_a_task_exist():
    from harness.metrics import METRICS
    from harness.task import TaskConfig

    default = TaskConfig.model_fields["metrics"].default_factory()
    assert default and all(name in METRICS for name in default)

"""The result schema and the rules shared by every reader and writer (harness/results.py)."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.report.collect import collect
from harness.report.synthetic import task_config, write_point
from harness.results import (
    FORMAT_VERSION, PointConfig, PointMetrics, Provenance, pairing_problems, read_config, read_metrics,
)
from harness.runner.config import RunConfig
from harness.runner.point import resolve


def folder(tmp_path, *overrides: str):
    return resolve(RunConfig(task="bible", overrides=list(overrides)), tmp_path).store.path


def test_identity_covers_what_changes_numbers_and_not_documentation(tmp_path):
    base = folder(tmp_path)
    assert folder(tmp_path, "description=other words", "citation=someone else") == base
    assert folder(tmp_path, "license=CC0", "offline_model=anything") == base
    assert folder(tmp_path, "alphas=[0, 2]", "expected_sizes=null", "training.save_steps=7",
                  "training.logging_steps=3", "training.keep=none", "training.report_to=tensorboard") == base
    assert folder(tmp_path, "training.peft=null") == base  # added after format 2: neutral value, same point
    assert folder(tmp_path, "training.peft.method=lora") != base
    assert folder(tmp_path, "training.optim=sgd") != base  # a TrainingArguments pass-through changes numbers
    assert folder(tmp_path, "training.learning_rate=3e-5") != base
    assert folder(tmp_path, "limits.train=7") != base
    assert folder(tmp_path, "prompt.template='Now: {source}'") != base
    assert folder(tmp_path, "metrics=[bleu]") == base  # scores are derived: `rescore`, not a rerun (format 4)
    other_seed = resolve(RunConfig(task="bible", seed=1), tmp_path).store.path
    assert other_seed != base and other_seed.name.startswith("ce-s1-")


def test_a_point_written_by_format_1_is_still_found_not_rerun(tmp_path):
    """Format 1 hashed the whole config dump (documentation keys included) into the folder name."""
    point = resolve(RunConfig(task="bible"), tmp_path)
    old_config = {**point.config.model_dump(mode="json"), "format": 1}
    old_config["task"] = {**old_config["task"], "description": "an older wording", "alphas": [0.0, 1.0]}
    legacy = point.store.path.with_name(point.store.path.name.rsplit("-", 1)[0] + "-84117479")
    legacy.mkdir(parents=True)
    (legacy / "config.json").write_text(json.dumps(old_config))
    again = resolve(RunConfig(task="bible"), tmp_path)
    assert again.store.path == legacy
    again.store.claim(again.config)  # the same point: accepted
    other = resolve(RunConfig(task="bible", overrides=["training.learning_rate=1e-5"]), tmp_path)
    assert other.store.path != legacy  # another point is not mistaken for it


def test_result_files_are_validated_on_read_and_name_the_problem(tmp_path):
    task = task_config()
    path = write_point(tmp_path, task, "m", "ce", {}, 0, generations=[{"id": "1", "prediction": "a", "reference": "a"}],
                       metric_values={"rouge1": 50.0})
    assert read_config(path).loss == "ce" and read_metrics(path).metrics["rouge1"].value == 50.0
    data = json.loads((path / "metrics.json").read_text())
    assert data["format"] == FORMAT_VERSION
    data["metrics"]["rouge1"]["value"] = "abc"
    (path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(HarnessError, match=r"metrics.json: metrics.rouge1.value"):
        read_metrics(path)
    [missing] = collect(tmp_path).missing
    assert "rouge1.value" in missing.reason
    data["format"] = FORMAT_VERSION + 1
    (path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(HarnessError, match="newer than this pdl-bench reads"):
        read_metrics(path)


def test_one_pairing_rule():
    config = PointConfig(task={"name": "t", "training": {"learning_rate": 1e-4}}, model="m", loss="ce", seed=0)
    prov = Provenance(init_hash="i", data_order_hash="d", seed=0, precision="fp32", training_path="fast",
                      world_size=1)
    pdl = config.model_copy(update={"loss": "pdl", "loss_options": {"alpha": 1.0}})
    assert pairing_problems(config, prov, pdl, prov) == []
    lr = pdl.model_copy(update={"task": {"name": "t", "training": {"learning_rate": 3e-5}}})
    assert pairing_problems(config, prov, lr, prov) == ["configs differ in task"]
    bf16 = prov.model_copy(update={"precision": "bf16"})
    assert pairing_problems(config, prov, pdl, bf16) == ["precision differs (fp32 vs bf16)"]
    # the loss computed in chunks or from full logits (a loss without the weighted form): still paired;
    # packed rows against padded batches: not
    plans = {name: Provenance.model_validate({**prov.model_dump(), "training_path": path, "plan": plan})
             for name, path, plan in (
                 ("chunked", "fast (packed rows, chunked loss)", {"packed_rows": True, "compile": False}),
                 ("full", "fast (packed rows, full logits)", {"packed_rows": True, "compile": False}),
                 ("plain", "plain (padded batches, full logits)", {"packed_rows": False, "compile": False}))}
    assert pairing_problems(config, plans["chunked"], pdl, plans["full"]) == []
    assert pairing_problems(config, plans["chunked"], pdl, plans["plain"]) == [
        "batching differs (packed rows vs padded batches)"]
    assert PointMetrics.model_validate({"metrics": {}, "n_test": 0}).rare_token_profile.buckets == []


def test_the_tables_leave_out_what_bench_would_refuse(tmp_path):
    """One pairing rule: an arm whose recorded initial weights differ from CE's gets no delta."""
    import numpy as np

    from harness.report.synthetic import WordTokenizer, demo_generations
    from harness.report.tables import build_tables

    task = task_config(metrics=["distinct-1"])
    paths = {}
    for loss, options in (("ce", {}), ("pdl", {"alpha": 1.0})):
        rows = demo_generations(np.random.default_rng(len(loss)), 12, 0.5)
        paths[loss] = write_point(tmp_path, task, "m", loss, options, 0, generations=rows,
                                  metric_values={"distinct-1": 0.5})
    prov = json.loads((paths["pdl"] / "provenance.json").read_text())
    (paths["pdl"] / "provenance.json").write_text(json.dumps({**prov, "init_hash": "other"}))
    [table] = build_tables(collect(tmp_path), tokenizer_loader=lambda model, trust_remote_code=False: WordTokenizer())
    assert any("not paired with ce (init_hash differs (demo vs other))" in note for note in table.notes)
    pdl = table.main[table.main["arm"] == "pdl(alpha=1)"].iloc[0]
    assert pdl["delta"] is None or np.isnan(pdl["delta"])


def test_a_point_written_before_keep_and_peft_existed_keeps_its_folder(tmp_path):
    """Such a config.json has training.keep_checkpoints and no keep/peft: the same identity."""
    point = resolve(RunConfig(task="bible"), tmp_path)
    old = point.config.model_dump(mode="json")
    training = {k: v for k, v in old["task"]["training"].items() if k not in ("keep", "peft")}
    old["task"] = {**old["task"], "training": {**training, "keep_checkpoints": False}}
    assert PointConfig.model_validate(old).digest() == point.config.digest()


def test_train_counts_are_stored_sparse_and_read_back_dense(tmp_path):
    import numpy as np

    from harness.io import write_npy_atomic
    from harness.results import DENSE_TRAIN_COUNTS_FILE, read_train_counts, write_train_counts

    counts = np.zeros(49152, dtype=np.int64)
    counts[[3, 17, 40000]] = [5, 1, 123456789012]
    path = write_train_counts(tmp_path, counts)
    assert path.stat().st_size < 2000  # the dense .npy would be 393 KB
    assert np.array_equal(read_train_counts(tmp_path, "hint"), counts)
    older = tmp_path / "older"
    write_npy_atomic(older / DENSE_TRAIN_COUNTS_FILE, counts)  # a point written before the sparse file
    assert np.array_equal(read_train_counts(older, "hint"), counts)
    assert read_train_counts(tmp_path / "none", "hint") is None

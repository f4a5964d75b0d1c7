"""Bad input and a hostile disk: one clear HarnessError line naming the file and what to do, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from harness import cli, io  # noqa: E402
from harness.commands._common import parse_key_values  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.report.collect import collect  # noqa: E402
from harness.results import TRAIN_COUNTS_FILE  # noqa: E402
from harness.report.synthetic import task_config, write_point  # noqa: E402
from harness.report.tables import TableSettings, build_tables  # noqa: E402
from harness.task import apply_overrides, load_task, load_task_file  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LATIN1 = "café, naïve".encode("latin-1")  # not UTF-8: é is the lone byte 0xe9
REFERENCES = ["the king went to the city", "a river crossed the valley", "she gave bread and wine"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def small_tree(root: Path) -> Path:
    """A CE and a PDL point, one seed, three test examples: enough for table, plot and report."""
    task = task_config("toy", metrics=["distinct-1", "rouge1"])
    for loss, options, values in (("ce", {}, (0.3, 20.0)), ("pdl", {"alpha": 0.5}, (0.5, 19.0))):
        rows = [{"id": f"ex{i}", "prediction": f"{ref} {loss}", "reference": ref} for i, ref in enumerate(REFERENCES)]
        write_point(root, task, "org/Tiny-LM", loss, options, 0, generations=rows,
                    metric_values={"distinct-1": values[0], "rouge1": values[1]}, validation_ce=2.0,
                    train_log=[{"step": 2, "loss": 3.0}], train_counts=np.arange(20, 0, -1), global_steps=2)
    return root


def point_paths(root: Path) -> dict[str, Path]:
    return {p.parent.name.split("-")[0]: p.parent for p in root.rglob("config.json")}


# ----------------------------------------------------------------- KEY=VALUE


def test_loss_option_that_is_not_yaml_is_one_clear_error():
    with pytest.raises(HarnessError, match=r"--loss-option 'alpha=\[': the value is not valid YAML") as err:
        parse_key_values(["alpha=["], "--loss-option")
    assert "quote" in err.value.hint


def test_set_parses_values_exactly_like_loss_option():
    """`--set description=[` used to become the string '[' while `--loss-option x=[` crashed."""
    task = load_task("bible")
    with pytest.raises(HarnessError, match=r"--set 'description=\[': the value is not valid YAML"):
        apply_overrides(task, ["description=["])
    assert apply_overrides(task, ["alphas=[0, 2]"]).alphas == parse_key_values(["a=[0, 2]"], "--loss-option")["a"]
    assert apply_overrides(task, ["description=two words"]).description == "two words"


def test_run_with_a_bad_loss_option_exits_2(tmp_path, capsys):
    assert cli.main(["run", "--loss-option", "alpha=[", "--results-dir", str(tmp_path)]) == 2
    assert "alpha=[" in one_line_error(capsys)


# ----------------------------------------------------------------- not UTF-8


def test_task_yaml_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: latin\ndescription: " + LATIN1 + b"\n")
    with pytest.raises(HarnessError, match=re.escape(f"{path}")) as err:
        load_task_file(path)
    assert "line 2" in err.value.message and err.value.hint == "re-save it as UTF-8"


def test_validate_reports_every_bad_file_not_just_the_first(tmp_path, capsys):
    first, second = tmp_path / "a.yaml", tmp_path / "c.yaml"
    first.write_bytes(b"name: " + LATIN1 + b"\n")
    second.write_bytes(b"name: c\ndescription: " + LATIN1 + b"\n")
    good = REPO / "tasks" / "xsum.yaml"
    assert cli.main(["validate", str(first), str(good), str(second)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR  {first}" in out and f"OK     {good}" in out and f"ERROR  {second}" in out
    assert out.count("re-save it as UTF-8") == 2 and "1 ok, 2 with errors" in out


def _xsum_files(folder: Path, fmt: str, bad_split: str) -> None:
    rows = {s: [{"document": "a document", "summary": "a summary", "id": "1"}] for s in ("train", "validation", "test")}
    for split, data in rows.items():
        path = folder / f"{split}.{fmt}"
        if fmt == "jsonl":
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data).encode()
        elif fmt == "json":
            text = json.dumps(data).encode()
        elif fmt == "csv":
            text = b"document,summary,id\na document,a summary,1\n"
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            column = pa.array(["a document"])
            if split == bad_split:  # a string column with invalid UTF-8, as a non-validating writer leaves it
                raw = pa.array([LATIN1], pa.binary())
                column = pa.Array.from_buffers(pa.string(), 1, raw.buffers())
            pq.write_table(pa.table({"document": column, "summary": ["a summary"], "id": ["1"]}), path)
            continue
        if split == bad_split:
            text = text.replace(b"a document", LATIN1)
        path.write_bytes(text)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_data_file_not_utf8_names_the_file(tmp_path, fmt):
    from harness.data.preprocess import load_splits

    _xsum_files(tmp_path, fmt, bad_split="test")
    with pytest.raises(HarnessError, match=re.escape(str(tmp_path / f"test.{fmt}"))) as err:
        load_splits(load_task("xsum"), data_dir=tmp_path)
    assert err.value.hint == "re-save it as UTF-8"


def test_line_files_not_utf8_name_the_file(tmp_path):
    from harness.data.preprocess import load_splits

    for folder, name in (("train", "informal"), ("train", "formal"), ("tune", "informal"), ("tune", "formal.ref0"),
                         ("test", "informal"), ("test", "formal.ref0")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(LATIN1 + b"\n" if (folder, name) == ("test", "informal") else b"hi\n")
    with pytest.raises(HarnessError, match=re.escape(str(tmp_path / "test" / "informal"))) as err:
        load_splits(load_task("gyafc"), data_dir=tmp_path)
    assert err.value.hint == "re-save it as UTF-8"


def test_score_input_not_utf8(tmp_path, capsys):
    path = tmp_path / "preds.jsonl"
    path.write_bytes(b'{"prediction": "ok", "reference": "ok"}\n{"prediction": "' + LATIN1 + b'", "reference": "x"}\n')
    assert cli.main(["score", str(path)]) == 2
    err = one_line_error(capsys)
    assert f"{path} is not UTF-8 text (line 2" in err and "re-save it as UTF-8" in err


def test_results_json_not_utf8_makes_the_point_unreadable(tmp_path):
    small_tree(tmp_path)
    paths = point_paths(tmp_path)
    (paths["pdl"] / "metrics.json").write_bytes(b'{"metrics": {"x": "' + LATIN1 + b'"}}')
    (paths["ce"] / "config.json").write_bytes(b'{"task": "' + LATIN1 + b'"}')
    reasons = {m.path: m.reason for m in collect(tmp_path).missing}
    assert "unreadable metrics.json" in reasons[paths["pdl"]] and "UTF-8" in reasons[paths["pdl"]]
    assert "unreadable config.json" in reasons[paths["ce"]] and "UTF-8" in reasons[paths["ce"]]
    with pytest.raises(HarnessError, match="re-save it as UTF-8"):
        io.read_json(paths["ce"] / "config.json")


# ----------------------------------------------------------------- metrics.json of the wrong shape


@pytest.mark.parametrize("record", [{"value": "abc", "n": 3}, [1, 2], {"value": 1.0, "n": "three"},
                                    {"value": 1.0, "higher_is_better": "yes"}])
def test_metric_of_the_wrong_type_makes_the_point_missing(tmp_path, record):
    small_tree(tmp_path)
    bad = point_paths(tmp_path)["pdl"]
    metrics = json.loads((bad / "metrics.json").read_text())
    metrics["metrics"]["rouge1"] = record
    (bad / "metrics.json").write_text(json.dumps(metrics))
    collection = collect(tmp_path)
    (missing,) = collection.missing
    assert missing.path == bad and "rouge1" in missing.reason
    (table,) = build_tables(collection, TableSettings(deltas=False))
    assert set(table.main["loss"]) == {"ce"}


def test_validation_ce_and_profile_of_the_wrong_type(tmp_path):
    small_tree(tmp_path)
    paths = point_paths(tmp_path)
    for name, key, value in (("ce", "validation_ce", "low"), ("pdl", "rare_token_profile", {"buckets": [3]})):
        metrics = json.loads((paths[name] / "metrics.json").read_text())
        metrics[key] = value
        (paths[name] / "metrics.json").write_text(json.dumps(metrics))
    reasons = {m.path: m.reason for m in collect(tmp_path).missing}
    assert "validation_ce" in reasons[paths["ce"]] and "rare_token_profile" in reasons[paths["pdl"]]


def test_two_folders_of_one_arm_and_seed_are_refused_not_picked(tmp_path, capsys):
    """A second folder with the same arm and seed (here a copy under another name) would make the
    table keep one arbitrarily: one error names both folders and the fix."""
    import shutil

    small_tree(tmp_path)
    pdl = point_paths(tmp_path)["pdl"]
    shutil.copytree(pdl, pdl.parent / f"{pdl.name}-copy")
    assert cli.main(["table", "--results-dir", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert f"{pdl} and {pdl}-copy are the same arm" in err and "seed 0" in err and "move one of them" in err


# ----------------------------------------------------------------- corrupt train counts


def test_corrupt_train_counts_names_the_file_and_the_fix(tmp_path):
    small_tree(tmp_path)
    counts = point_paths(tmp_path)["ce"] / TRAIN_COUNTS_FILE
    counts.write_bytes(b"definitely not numpy")
    point = next(p for g in collect(tmp_path).groups for p in g.points if p.loss == "ce")
    with pytest.raises(HarnessError, match=re.escape(f"{counts} is corrupt")) as err:
        point.train_counts()
    assert "pickled" not in str(err.value) and "--force" in err.value.hint


def test_a_truncated_npz_reads_as_corrupt_or_absent_never_a_traceback(tmp_path):
    """An .npz cut short (a copy interrupted) is a broken zip: counts and token scores are called
    corrupt with the fix, and per-example scores read as none (computed again)."""
    import numpy as np

    from harness.results import (
        EXAMPLE_SCORES_FILE, TOKEN_SCORES_FILE, read_counts_file, read_example_scores, read_token_scores,
        write_example_scores, write_token_scores,
    )
    from harness.runner.evaluation import TokenScores

    rows = [{"prediction": "a b", "reference": "a c"}]
    write_example_scores(tmp_path, {None: (rows, {"self-bleu": ("v1", [0.5])})})
    write_token_scores(tmp_path, TokenScores(np.zeros(3, np.int64), np.arange(3), np.ones(3), np.ones(3, bool), "x"))
    counts = tmp_path / "counts.npz"
    np.savez_compressed(counts, size=np.int64(5), ids=np.arange(3), counts=np.arange(3) + 1)
    assert read_example_scores(tmp_path, None, rows, {"self-bleu": "v1"})["self-bleu"].tolist() == [0.5]
    for name in (EXAMPLE_SCORES_FILE, TOKEN_SCORES_FILE, "counts.npz"):
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert read_example_scores(tmp_path, None, rows, {"self-bleu": "v1"}) == {}
    with pytest.raises(HarnessError, match="token_scores.npz is corrupt"):
        read_token_scores(tmp_path)
    with pytest.raises(HarnessError, match="counts.npz is corrupt"):
        read_counts_file(counts, "rerun it")


def test_score_with_corrupt_train_counts(tmp_path, capsys, tiny_tokenizer_dir):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"prediction": "a", "reference": "a"}\n')
    counts = tmp_path / "counts.npy"
    counts.write_bytes(b"")
    assert cli.main(["score", str(preds), "--train-counts", str(counts), "--tokenizer", str(tiny_tokenizer_dir)]) == 2
    err = one_line_error(capsys)
    assert f"{counts} is corrupt" in err and "pickled" not in err


# ----------------------------------------------------------------- unwritable outputs, full disk


def _refuse_writes_under(monkeypatch, folder: Path, code: int) -> None:
    """Make every atomic write into `folder` fail the way a read-only folder or a full disk does."""
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).is_relative_to(folder):
            raise OSError(code, os.strerror(code), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("code, words", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only"),
                                         (errno.ENOSPC, "no space left")])
def test_failed_write_names_the_file(tmp_path, monkeypatch, code, words):
    _refuse_writes_under(monkeypatch, tmp_path, code)
    target = tmp_path / "point" / "metrics.json"
    with pytest.raises(HarnessError, match=re.escape(f"cannot write {target}: {words}")):
        io.write_json_atomic(target, {"a": 1})
    with pytest.raises(HarnessError, match=re.escape(f"cannot write {target.with_suffix('.npy')}")):
        io.write_npy_atomic(target.with_suffix(".npy"), np.arange(3))


def test_disk_full_during_fsync(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "fsync", fsync)
    with pytest.raises(HarnessError, match="no space left") as err:
        io.write_text_atomic(tmp_path / "x.txt", "hello")
    assert "free" in err.value.hint
    assert not list(tmp_path.iterdir())  # no temp file left behind


@pytest.mark.slow  # renders figures and a report (~5 s)
@pytest.mark.parametrize("command", ["table", "plot", "report"])
def test_report_commands_into_an_unwritable_folder(tmp_path, monkeypatch, capsys, command):
    small_tree(tmp_path / "results")
    out = tmp_path / "out"
    out.mkdir()
    _refuse_writes_under(monkeypatch, out, errno.EACCES)
    import matplotlib.figure

    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        if isinstance(fname, (str, os.PathLike)) and Path(fname).is_relative_to(out):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(fname))
        return real_savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    where = {"table": ["--out", str(out), "--n-boot", "20"], "plot": ["--out", str(out)],
             "report": ["--output", str(out / "report.html"), "--n-boot", "20"]}[command]
    assert cli.main([command, "--results-dir", str(tmp_path / "results"), *where]) == 2
    err = one_line_error(capsys)
    assert f"cannot write {out}" in err and "permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the monkeypatched tests cover it")
def test_table_into_a_read_only_folder(tmp_path, capsys):
    small_tree(tmp_path / "results")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert cli.main(["table", "--results-dir", str(tmp_path / "results"), "--out", str(out), "--no-deltas"]) == 2
    finally:
        out.chmod(0o700)
    assert f"cannot write {out}" in one_line_error(capsys)


# ----------------------------------------------------------------- smaller ones


def test_empty_split_file_says_which_split_and_file(tmp_path):
    from harness.data.preprocess import load_splits

    for split in ("train", "validation"):
        (tmp_path / f"{split}.jsonl").write_text('{"document": "a", "summary": "b", "id": "1"}\n')
    (tmp_path / "test.jsonl").write_text("\n")
    with pytest.raises(HarnessError, match=re.escape(f"split test is empty in {tmp_path / 'test.jsonl'}")):
        load_splits(load_task("xsum"), data_dir=tmp_path)


def test_score_a_folder_says_which_file_to_pass(tmp_path, capsys):
    (tmp_path / "generations.jsonl").write_text('{"prediction": "a", "reference": "a"}\n')
    assert cli.main(["score", str(tmp_path)]) == 2
    err = one_line_error(capsys)
    assert "is a folder" in err and str(tmp_path / "generations.jsonl") in err and "does not exist" not in err


def test_gguf_conversion_bar_follows_the_library_progress_setting():
    """transformers converts GGUF under a bare tqdm bar that ignores its own progress switch."""
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from harness.models.builtin import library_progress_bars

    was_enabled = hf_logging.is_progress_bar_enabled()
    try:
        original = gguf_utils.tqdm
        hf_logging.disable_progress_bar()
        with library_progress_bars():
            assert gguf_utils.tqdm(range(2)).disable
        assert gguf_utils.tqdm is original  # put back after the conversion
        hf_logging.enable_progress_bar()
        with library_progress_bars():
            assert gguf_utils.tqdm is original
    finally:
        (hf_logging.enable_progress_bar if was_enabled else hf_logging.disable_progress_bar)()


def test_help_shows_a_plain_percent_sign(capsys):
    for argv in (["--help"], ["score", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        out = capsys.readouterr().out
        assert "95%" in out and "95%%" not in out, argv


def test_docs_describe_things_not_internal_issue_numbers():
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\bissue\s+#?\d+|\bthe issue's\b", text, re.IGNORECASE), path

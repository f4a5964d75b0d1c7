"""`pdl-bench score`: text and JSON tables, --against, and clear errors for bad files."""

import json

import pytest

from harness import cli


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"id": "a", "prediction": "The cat sat on the mat.", "reference": "A cat sat on the mat."},
    {"id": "b", "prediction": "Dogs bark loudly at night.", "reference": "The dog barked at night."},
    {"id": "c", "prediction": "", "reference": "Nothing was said."},
    {"id": "d", "prediction": "Ünïcode text, fine.", "reference": "Ünïcode text is fine."},
]


def test_score_text_table(tmp_path, capsys):
    path = _write(tmp_path / "p.jsonl", ROWS)
    assert cli.main(["score", str(path), "--n-boot", "50", "--metrics", "rouge1,distinct-2"]) == 0
    out = capsys.readouterr().out
    assert "4 examples" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("rouge1", "distinct-2"))}
    assert set(lines) == {"rouge1", "distinct-2"} and "[" in lines["rouge1"]


def test_score_json(tmp_path, capsys):
    from harness.metrics import score

    path = _write(tmp_path / "p.jsonl", ROWS)
    assert cli.main(["score", str(path), "--n-boot", "50", "--format", "json", "--seed", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"rouge1", "rougeLsum", "distinct-2", "ngram-entropy-4", "seq-rep-4"} <= set(data)
    expected = score([r["prediction"] for r in ROWS], [r["reference"] for r in ROWS], n_boot=50, seed=3)
    for name, result in expected.items():
        assert data[name]["value"] == pytest.approx(result.value)
        assert data[name]["ci_low"] == pytest.approx(result.ci_low)


def test_against_matches_by_id(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", ROWS)
    shuffled = [dict(r, prediction=r["prediction"].upper()) for r in reversed(ROWS)]
    b = _write(tmp_path / "b.jsonl", shuffled)
    assert cli.main(["score", str(a), "--against", str(b), "--n-boot", "50", "--metrics", "rouge1,mean-length",
                     "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # Upper-casing changes nothing after lowercasing tokenizers: a correct id match gives delta 0, p 1.
    assert data["rouge1"]["delta"] == 0.0 and data["rouge1"]["p_value"] == 1.0
    assert data["mean-length"]["delta"] == 0.0
    assert cli.main(["score", str(a), "--against", str(b), "--n-boot", "50", "--metrics", "rouge1"]) == 0
    out = capsys.readouterr().out
    assert "delta" in out and "p" in out.split("\n")[3]


def test_score_length_robust_metrics(tmp_path, capsys):
    """The length-robust metrics run from the command line; undefined values are null, not 0."""
    from harness.metrics import score

    names = ["rarefied-distinct-1", "rarefied-distinct-2", "mtld", "mattr", "compression-ratio"]
    path = _write(tmp_path / "p.jsonl", ROWS)
    assert cli.main(["score", str(path), "--n-boot", "50", "--format", "json", "--metrics", ",".join(names)]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = score([r["prediction"] for r in ROWS], [r["reference"] for r in ROWS], metrics=names, n_boot=50)
    assert data == {name: result.to_dict() for name, result in expected.items()}
    assert data["mattr"]["value"] is None  # 14 words, under MATTR's 50-word window
    assert data["rarefied-distinct-1"]["details"]["budget"] == (7 + 6 + 4 + 5) // 10  # the references' words and marks
    assert data["compression-ratio"]["value"] > 0 and data["mtld"]["value"] > 0
    assert cli.main(["score", str(path), "--against", str(path), "--n-boot", "50", "--metrics", ",".join(names)]) == 0
    assert "rarefied-distinct-2" in capsys.readouterr().out


def test_against_by_order_requires_equal_references(tmp_path, capsys):
    no_ids = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    a = _write(tmp_path / "a.jsonl", no_ids)
    b = _write(tmp_path / "b.jsonl", list(reversed(no_ids)))
    assert cli.main(["score", str(a), "--against", str(b), "--n-boot", "10"]) == 2
    assert "references differ" in capsys.readouterr().err


def test_id_mismatch(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", ROWS)
    b = _write(tmp_path / "b.jsonl", [dict(r, id=r["id"] + "x") for r in ROWS])
    assert cli.main(["score", str(a), "--against", str(b)]) == 2
    assert "different ids" in capsys.readouterr().err


def test_malformed_line_reports_line_number(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n", encoding="utf-8")
    assert cli.main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert ":2:" in err and err.count("\n") <= 2


def test_missing_field(tmp_path, capsys):
    path = _write(tmp_path / "p.jsonl", [ROWS[0], {"prediction": "x"}])
    assert cli.main(["score", str(path)]) == 2
    assert "row 2 has no 'reference'" in capsys.readouterr().err

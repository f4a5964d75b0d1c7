"""Length and degeneration metrics (length-ratio, empty-share, loop-share, limit-share) on hand-made
outputs, and the finished flags limit-share needs, from the API through the CLI, report and runner."""

import json

import numpy as np
import pytest

from harness import cli
from harness.errors import HarnessError
from harness.metrics import METRICS, compare, score
from harness.metrics.length import has_loop
from harness.metrics.text import words
from harness.results import METRICS_FILE, finished_flags

LOOP_2 = "we go up and we go up and down"  # "we go up and" twice: not a loop
LOOP_3 = "we go up and we go up and we go up and"  # three times: a loop
PREDS = ["the cat sat", "", "   ", LOOP_2, LOOP_3, "Stop. Stop. Stop. Stop."]
REFS = ["the cat sat on the mat", "a b", "c", "d e f", "g", "h i j k"]


def _values(metrics, preds=PREDS, refs=REFS, **kw):
    return {name: r.value for name, r in score(preds, refs, metrics=metrics, n_boot=0, **kw).items()}


def test_loop_rule_counts_a_word_4gram_three_times():
    assert not has_loop(words(LOOP_2)) and has_loop(words(LOOP_3))
    assert has_loop(["a"] * 6)  # overlapping: "a a a a" starts at 0, 1 and 2
    assert not has_loop(["a"] * 5) and not has_loop([])


def test_length_empty_and_loop_golden_values():
    v = _values(["length-ratio", "empty-share", "loop-share", "mean-length"])
    # words: 3 + 0 + 0 + 9 + 12 + 8 ("stop" "." x4) = 32; references 6 + 2 + 1 + 3 + 1 + 4 = 17
    assert v["length-ratio"] == pytest.approx(32 / 17)
    assert v["length-ratio"] == pytest.approx(v["mean-length"] * len(PREDS) / sum(len(words(r)) for r in REFS))
    assert v["empty-share"] == pytest.approx(2 / 6)  # "" and whitespace only
    # LOOP_3 and "stop . stop . stop . stop ." ("stop . stop ." three times); LOOP_2 is not one
    assert v["loop-share"] == pytest.approx(2 / 6)
    assert [METRICS.get(m).higher_is_better for m in ("length-ratio", "empty-share", "loop-share")] == [None, False,
                                                                                                        False]


def test_length_ratio_counts_subwords_when_asked():
    from harness.metrics import MetricContext

    context = MetricContext(tokenize=lambda t: list(t.replace(" ", "")), diversity_tokens="subwords")
    v = _values(["length-ratio"], preds=["ab", "c"], refs=["abcd", "ef"], context=context)
    assert v["length-ratio"] == pytest.approx(3 / 6)


def test_bootstrap_through_score_and_compare():
    names = ["length-ratio", "empty-share", "loop-share", "limit-share"]
    finished = [True, True, False, True, False, False]
    results = score(PREDS, REFS, metrics=names, n_boot=300, seed=1, finished=finished)
    for r in results.values():
        assert r.ci_low <= r.value <= r.ci_high and r.ci_low < r.ci_high, r
    assert results["limit-share"].value == pytest.approx(3 / 6)
    shorter = [" ".join(words(p)[:2]) for p in PREDS]  # at most 2 words: no loops, shorter
    paired = compare(PREDS, shorter, REFS, metrics=names, n_boot=300, seed=1,
                     finished_a=finished, finished_b=[True] * len(PREDS))
    assert paired["loop-share"].delta == pytest.approx(-2 / 6)
    assert paired["limit-share"].delta == pytest.approx(-3 / 6)
    assert paired["length-ratio"].delta == pytest.approx(8 / 17 - 32 / 17)  # 2+0+0+2+2+2 words
    assert paired["empty-share"].delta == 0.0
    for r in paired.values():
        assert r.ci_low <= r.delta <= r.ci_high


# ----------------------------------------------------------------- limit-share and finished flags

def test_finished_flags_from_generation_rows():
    rows = [{"stopped": "eos"}, {"stopped": "max_new_tokens"}, {"stopped": "eos"}, {"stopped": "max_new_tokens"}]
    assert finished_flags(rows) == [True, False, True, False]
    assert finished_flags([{"prediction": "x"}, {"prediction": "y"}]) is None  # before format 3: unknown
    with pytest.raises(HarnessError, match="stopped"):
        finished_flags([{"stopped": "eos"}, {"prediction": "y"}])
    with pytest.raises(HarnessError, match="stopped='length'"):
        finished_flags([{"stopped": "length"}])
    v = _values(["limit-share"], preds=["a", "b", "c", "d"], refs=["a"] * 4, finished=finished_flags(rows))
    assert v["limit-share"] == 0.5


def test_limit_share_without_flags_is_not_measured():
    with pytest.raises(HarnessError, match="limit-share needs each output's finished flag"):
        score(PREDS, REFS, metrics=["limit-share"], n_boot=0)
    with pytest.raises(HarnessError, match="one arm only"):
        compare(PREDS, PREDS, REFS, metrics=["loop-share"], n_boot=0, finished_a=[True] * 6)
    with pytest.raises(HarnessError, match="6 booleans"):
        score(PREDS, REFS, metrics=["limit-share"], n_boot=0, finished=[True])
    assert "limit-share" not in score(PREDS, REFS, n_boot=0)  # not among the defaults


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_cli_measures_limit_share_only_with_stopped_fields(tmp_path, capsys):
    rows = [{"id": str(i), "prediction": p, "reference": r} for i, (p, r) in enumerate(zip(PREDS, REFS))]
    stopped = [dict(row, stopped="max_new_tokens" if i % 3 == 0 else "eos") for i, row in enumerate(rows)]
    with_flags, without = _write(tmp_path / "a.jsonl", stopped), _write(tmp_path / "b.jsonl", rows)
    args = ["--metrics", "limit-share,loop-share", "--n-boot", "20", "--format", "json"]
    assert cli.main(["score", str(with_flags), *args]) == 0
    assert json.loads(capsys.readouterr().out)["limit-share"]["value"] == pytest.approx(2 / 6)
    assert cli.main(["score", str(without), *args]) == 0
    out = capsys.readouterr()
    assert set(json.loads(out.out)) == {"loop-share"} and "not measured: limit-share" in out.err
    assert cli.main(["score", str(with_flags), "--against", str(with_flags), *args]) == 0
    assert json.loads(capsys.readouterr().out)["limit-share"]["delta"] == 0.0
    assert cli.main(["score", str(without), "--metrics", "limit-share"]) == 2
    assert 'needs a "stopped" field' in capsys.readouterr().err


@pytest.mark.parametrize("with_flags", [True, False])
def test_report_delta_of_limit_share_needs_stopped_flags(tmp_path, with_flags):
    import pandas as pd

    from harness.report.collect import collect
    from harness.report.synthetic import task_config, write_point
    from harness.report.tables import TableSettings, build_tables
    from harness.results import NOT_MEASURED

    task = task_config("toy", metrics=["distinct-1", "limit-share"])  # metrics.json records both either way
    stops = {"ce": ["max_new_tokens", "eos", "eos", "max_new_tokens"], "pdl": ["eos"] * 4}
    for loss, options in (("ce", {}), ("pdl", {"alpha": 1.0})):
        rows = [{"id": f"ex{i}", "prediction": f"word{i} other", "reference": "a reference",
                 **({"stopped": stopped} if with_flags else {})} for i, stopped in enumerate(stops[loss])]
        values = {"distinct-1": 0.5, "limit-share": stops[loss].count("max_new_tokens") / 4}
        write_point(tmp_path, task, "org/Tiny-LM", loss, options, 0, generations=rows, metric_values=values,
                    train_counts=np.arange(10, 0, -1))
    (table,) = build_tables(collect(tmp_path), TableSettings(n_boot=50))
    rows = table.main.set_index(["metric", "arm"])
    assert not pd.isna(rows.loc[("distinct-1", "pdl(alpha=1)"), "delta"])
    delta = rows.loc[("limit-share", "pdl(alpha=1)"), "delta"]
    if with_flags:
        assert delta == pytest.approx(-0.5)
    else:  # generations that do not say how each output stopped: no delta (never 0), and a footnote says why
        assert pd.isna(delta)
        assert any(n.startswith(f"no delta CI for limit-share: {NOT_MEASURED}") for n in table.notes), table.notes


def test_an_arm_whose_points_could_not_measure_limit_share_reads_not_measured(tmp_path):
    """A rescored point of an earlier format records limit-share as not measured (no `stopped`
    flags): its arm keeps the row and prints "not measured", as the further rows do, never a gap."""
    from harness.render.cells import arm_grid
    from harness.report.collect import collect
    from harness.report.synthetic import task_config, write_point
    from harness.report.tables import TableSettings, build_tables
    from harness.results import NOT_MEASURED

    task = task_config("toy", metrics=["distinct-1", "limit-share"])
    why = {"limit-share": {"not_measured": "the generations do not record how each output ended"}}
    for loss, options in (("ce", {}), ("pdl", {"alpha": 1.0})):
        rows = [{"id": f"ex{i}", "prediction": f"word{i} other", "reference": "a reference"} for i in range(4)]
        write_point(tmp_path, task, "org/Tiny-LM", loss, options, 0, generations=rows,
                    metric_values={"distinct-1": 0.5, "limit-share": None}, metric_details=why,
                    train_counts=np.arange(10, 0, -1))
    (table,) = build_tables(collect(tmp_path), TableSettings(n_boot=20))
    limit = [row for row in table.rows if row.metric == "limit-share"]
    assert [(row.arm.label, row.arm.measured) for row in limit] == [("ce", False), ("pdl(alpha=1)", False)]
    assert {r.cells[2] for r in arm_grid(limit).rows} == {NOT_MEASURED}


# ----------------------------------------------------------------- through the runner

def test_a_point_records_limit_share_from_its_generations(tmp_path_factory, tiny_causal_dir, tmp_path):
    from tiny import build_style_task

    from harness.results import GENERATIONS_FILE
    from harness.runner.config import RunConfig
    from harness.runner.point import run_point

    task_file = build_style_task(tmp_path_factory.mktemp("tiny-task"), tiny_causal_dir)
    metrics = ["distinct-1", "length-ratio", "empty-share", "loop-share", "limit-share"]
    run = RunConfig(task=str(task_file), overrides=[f"metrics={json.dumps(metrics)}", "generation.max_new_tokens=4"])
    result = run_point(run, tmp_path, progress=False)
    recorded = json.loads((result.path / METRICS_FILE).read_text())
    rows = [json.loads(line) for line in (result.path / GENERATIONS_FILE).read_text().splitlines()]
    assert set(recorded["metrics"]) == set(metrics)
    cut_off = np.mean([row["stopped"] == "max_new_tokens" for row in rows])
    assert recorded["metrics"]["limit-share"]["value"] == pytest.approx(cut_off)
    assert recorded["metrics"]["limit-share"]["n"] == len(rows)
    for decoding in recorded["decodings"].values():  # the further decodings are scored the same way
        assert "limit-share" in decoding["metrics"]

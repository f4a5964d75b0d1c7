"""Tables show what a point measured while its model was loaded (likelihood by frequency, the sampled
decoding) beside the greedy metrics, with paired deltas; a point of the earlier format shows "not
measured", never zero, and the greedy rows keep their digits."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import MetricContext, compare
from harness.metrics.likelihood import bucket_sums
from harness.report.collect import collect
from harness.report.synthetic import WordTokenizer, add_load_time_measurements
from harness.report.table_render import render_markdown
from harness.report.tables import TableSettings, build_tables
from test_report import MODEL, REFERENCES, predictions, rows_of, write_tree

COUNTS = np.arange(60, 0, -1)


def scores(arm: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-token teacher-forced scores of the 6 references: arm 1 is better on rare ids (>= 30), by
    more at a later seed."""
    rng = np.random.default_rng(0)
    example = np.repeat(np.arange(len(REFERENCES)), 5)
    token = rng.integers(0, 60, size=example.size)
    nll = rng.uniform(1.0, 3.0, size=example.size) - (0.4 * (token >= 30) - 0.1 * (token < 30)) * arm * (1 + seed)
    return {"example": example, "token": token, "nll": nll, "correct": nll < 1.5}


def sampled_rows(arm: int) -> list[dict]:
    return [{"id": f"ex{i}", "prediction": p + " ember ember", "reference": r}
            for i, (p, r) in enumerate(zip(predictions(arm + 1, 1), REFERENCES))]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """ce and pdl(alpha=0.5), seed 0; ce measured at load time, and pdl(alpha=0.5) too unless old."""
    root = write_tree(tmp_path_factory.mktemp("results"), seeds=(0,), arms=[("ce", {}), ("pdl", {"alpha": 0.5})],
                      partial=False)
    tokenize = lambda text: WordTokenizer()(text)["input_ids"]  # noqa: E731
    for point, arm in zip(sorted(p for p in root.rglob("*-s0-*") if p.is_dir()), (0, 1)):
        add_load_time_measurements(point, token_scores=scores(arm), train_counts=COUNTS, n_buckets=3,
                                   decodings={"sampled": sampled_rows(arm)}, tokenize=tokenize)
    return root


def test_further_rows_have_values_and_paired_deltas(measured):
    [table] = build_tables(collect(measured), TableSettings(n_boot=200))
    names = list(dict.fromkeys(table.main["metric"]))
    assert names.index("validation-ce") < names.index("test-ce") < names.index("nll-rarest") < names.index(
        "sampled/distinct-2")
    rarest = rows_of(table, "nll-rarest")
    base, arm = (bucket_sums(**scores(a), train_counts=COUNTS, n_examples=6, n_buckets=3).mean("nll")[0, 2]
                 for a in (0, 1))
    assert rarest.loc["ce", "mean"] == pytest.approx(base)
    assert rarest.loc["pdl(alpha=0.5)", "delta"] == pytest.approx(arm - base)
    assert rarest.loc["pdl(alpha=0.5)", "ci_high"] < 0  # lowered on the rare ids, as planted
    frequent = rows_of(table, "nll-most-frequent").loc["pdl(alpha=0.5)", "delta"]
    assert frequent > 0
    test_ce = rows_of(table, "test-ce").loc["pdl(alpha=0.5)", "delta"]
    assert test_ce == pytest.approx(scores(1)["nll"].mean() - scores(0)["nll"].mean())
    sampled = rows_of(table, "sampled/distinct-2").loc["pdl(alpha=0.5)"]
    expected = compare([r["prediction"] for r in sampled_rows(0)], [r["prediction"] for r in sampled_rows(1)],
                       REFERENCES, metrics=["distinct-2"], context=MetricContext(), n_boot=200, seed=0)["distinct-2"]
    assert sampled["delta"] == pytest.approx(expected.delta)
    assert (sampled["ci_low"], sampled["ci_high"]) == pytest.approx((expected.ci_low, expected.ci_high))
    assert any("nll-rarest" in note for note in table.notes)


def test_an_earlier_format_point_shows_not_measured_and_the_greedy_rows_keep_their_digits(measured, tmp_path):
    import json
    import shutil

    old = tmp_path / "results"
    shutil.copytree(measured, old)
    point = next(p for p in old.rglob("pdl-a0.5-s0-*") if p.is_dir())
    record = json.loads((point / "metrics.json").read_text())
    record.update(format=2)
    del record["token_likelihood"], record["decodings"]
    (point / "metrics.json").write_text(json.dumps(record))
    (point / "token_scores.npz").unlink()
    (point / "generations-sampled.jsonl").unlink()

    [new], [mixed] = (build_tables(collect(root), TableSettings(n_boot=200)) for root in (measured, old))
    for name in ("test-ce", "nll-rarest", "sampled/distinct-2"):
        row = rows_of(mixed, name).loc["pdl(alpha=0.5)"]
        assert row["n_seeds"] == 0 and np.isnan(row["mean"]) and (row["delta"] is None or np.isnan(row["delta"]))
    text = render_markdown([mixed], [])
    assert "| nll-rarest ↓ | pdl(alpha=0.5) | not measured |" in text
    assert "| sampled/distinct-2 ↑ | pdl(alpha=0.5) | not measured |" in text
    greedy = [r for r in text.splitlines() if r.startswith(("| distinct", "| rouge1", "| validation-ce"))]
    assert greedy == [r for r in render_markdown([new], []).splitlines() if r.startswith(
        ("| distinct", "| rouge1", "| validation-ce"))]
    assert MODEL in text


def test_likelihood_rows_over_seeds_carry_each_seeds_delta_and_the_seed_level_interval(tmp_path):
    """As the text metrics' rows do, so the table shows them and the verdict reads them by one rule."""
    from harness.report.table_render import to_markdown
    from harness.results import read_config

    root = write_tree(tmp_path, arms=[("ce", {}), ("pdl", {"alpha": 0.5})], partial=False)  # seeds 0 and 1
    for point in sorted(p for p in root.rglob("*-s*-*") if p.is_dir()):
        config = read_config(point)
        add_load_time_measurements(point, token_scores=scores(int(config.loss == "pdl"), config.seed),
                                   train_counts=COUNTS, n_buckets=3, decodings={})
    [table] = build_tables(collect(root), TableSettings(n_boot=200))
    rarest = rows_of(table, "nll-rarest").loc["pdl(alpha=0.5)"]
    per_seed = [bucket_sums(**scores(1, seed), train_counts=COUNTS, n_examples=6, n_buckets=3).mean("nll")[0, 2]
                - bucket_sums(**scores(0, seed), train_counts=COUNTS, n_examples=6, n_buckets=3).mean("nll")[0, 2]
                for seed in (0, 1)]
    assert [float(d) for d in rarest["per_seed_deltas"].split(",")] == pytest.approx(per_seed)
    assert rarest["seed_ci_low"] <= rarest["delta"] <= rarest["seed_ci_high"] < 0
    line = next(r for r in to_markdown(table).splitlines() if r.startswith("| nll-rarest ↓ | pdl(alpha=0.5) |"))
    assert line.split(" | ")[5].startswith("[-") and " / " in line.split(" | ")[6]

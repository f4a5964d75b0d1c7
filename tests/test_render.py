"""One number format, pinned: the bench Markdown, the group table (Markdown, LaTeX, HTML) and `score` text.

The strings below are what the README and docs/reporting.md show; a change here changes published numbers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from harness.comparison import ArmValue, Comparison, from_paired, mark_best
from harness.numbers import format_delta, format_interval, format_p, format_value
from harness.render.cells import arm_grid, pair_grid
from harness.render.html import html_table
from harness.render.latex import latex_table
from harness.render.markdown import markdown_table
from harness.render.terminal import text_table
from harness.runner.bench import format_comparison


def test_number_format():
    assert [format_value(v) for v in (57.38905, 0.258013, 652.0, 12345.6, 0.0, -0.0, 1e-5)] == [
        "57.39", "0.258", "652", "12346", "0", "-0", "1e-05"]
    assert [format_value(v) for v in (None, math.nan, math.inf)] == ["", "", ""]
    assert format_value(None, missing="-") == "-"
    assert [format_delta(v) for v in (-22.00826, 0.0159014, 0.0, 12345.6)] == ["-22.01", "+0.0159", "+0", "+12346"]
    assert format_delta(0.0838, 3) == "+0.0838" and format_value(0.0079461, 2) == "0.0079"
    assert format_interval(-0.00306, 0.033855) == "[-0.00306, +0.03386]"
    assert format_interval(0.5, 1.0, signed=False) == "[0.5, 1]"
    assert format_interval(None, 1.0, missing="-") == "-" and format_interval(math.nan, 1.0) == ""
    assert [format_p(p) for p in (0.000999, 0.001, 0.0989011, 1.0, None, math.nan)] == [
        "<0.001", "0.001", "0.0989", "1", "", ""]


BENCH = {
    "task": "bible", "model": "smollm2-135m", "a": {"label": "ce"}, "b": {"label": "pdl(alpha=1)"},
    "paired_checks": {"init_hash": "3c5fdee91060c09a", "data_order_hash": "1e51eccfeafeeb7a", "seed": 0},
    "n_boot": 1000, "bootstrap_seed": 0, "validation_ce": {"a": 1.0300683363428655, "b": 1.306821772737323},
    "metrics": {
        "bleu": {"name": "bleu", "higher_is_better": True, "a": 57.38905462605621, "b": 35.380796010963955,
                 "delta": -22.008258615092252, "ci_low": -26.51600867296756, "ci_high": -17.71855458795422,
                 "p_value": 0.000999000999000999, "n": 96},
        "distinct-1": {"name": "distinct-1", "higher_is_better": True, "a": 0.258013454689355,
                       "b": 0.2739148756847872, "delta": 0.01590142099543218, "ci_low": -0.0030596780729362366,
                       "ci_high": 0.033855102087147426, "p_value": 0.0989010989010989, "n": 96},
        "rare-token-share": {"name": "rare-token-share", "higher_is_better": None, "a": 0.17100371747211895,
                             "b": 0.25720966484801244, "delta": 0.08620594737589349, "ci_low": 0.040630335044680645,
                             "ci_high": 0.14295371746982555, "p_value": 0.003996003996003996, "n": 96,
                             "details": {"reference_share": 0.18152055292833758}},
        "freq-bucket-tvd": {"name": "freq-bucket-tvd", "higher_is_better": False, "a": 0.024302314731548213,
                            "b": 0.101556663274706, "delta": 0.07725434854315778, "ci_low": 0.03259540263366298,
                            "ci_high": 0.13406848419135603, "p_value": 0.008991008991008992, "n": 96},
    },
}


def test_bench_markdown_is_pinned():
    """The README's "What `make bench` shows" rows, from the stored comparison JSON."""
    assert format_comparison(BENCH) == "\n".join([
        "## bible / smollm2-135m: pdl(alpha=1) vs ce",
        "",
        "| metric | ce | pdl(alpha=1) | delta | 95% CI | p |",
        "|---|---:|---:|---:|---:|---:|",
        "| bleu ↑ | 57.39 | 35.38 | -22.01 | [-26.52, -17.72] | <0.001 |",
        "| distinct-1 ↑ | 0.258 | 0.2739 | +0.0159 | [-0.00306, +0.03386] | 0.0989 |",
        "| rare-token-share | 0.171 | 0.2572 | +0.08621 | [+0.04063, +0.143] | 0.004 |",
        "| freq-bucket-tvd ↓ | 0.0243 | 0.1016 | +0.07725 | [+0.0326, +0.1341] | 0.00899 |",
        "",
        "rare-token-share of the references: 0.1815 (closer is better: the share of tokens from the rarest "
        "training-frequency bucket)",
        "",
        "validation CE (plain token cross-entropy, both arms): ce 1.0301, pdl(alpha=1) 1.3068",
        "",
        "paired bootstrap over 96 test examples, 1000 resamples, seed 0; same init 3c5fdee91060c09a, "
        "same data order 1e51eccfeafeeb7a",
    ])


def test_bench_without_intervals_leaves_the_cells_empty():
    record = dict(BENCH["metrics"]["bleu"], ci_low=None, ci_high=None, p_value=None)
    comparison = dict(BENCH, n_boot=0, metrics={"bleu": record})
    assert "| bleu ↑ | 57.39 | 35.38 | -22.01 |  |  |" in format_comparison(comparison)


def test_score_against_prints_the_bench_numbers_as_text():
    rows = [from_paired(r, ("A", "B")) for r in BENCH["metrics"].values()]
    rows.append(from_paired(dict(BENCH["metrics"]["bleu"], name="chrf", ci_low=None, ci_high=None, p_value=None),
                            ("A", "B")))
    assert text_table(pair_grid(rows, headers=("A", "B"), better_column=True, missing="-")).splitlines() == [
        "metric                 A       B     delta                95% CI        p  better",
        "----------------  ------  ------  --------  --------------------  -------  ------",
        "bleu               57.39   35.38    -22.01      [-26.52, -17.72]   <0.001  higher",
        "distinct-1         0.258  0.2739   +0.0159  [-0.00306, +0.03386]   0.0989  higher",
        "rare-token-share   0.171  0.2572  +0.08621    [+0.04063, +0.143]    0.004       -",
        "freq-bucket-tvd   0.0243  0.1016  +0.07725    [+0.0326, +0.1341]  0.00899   lower",
        "chrf               57.39   35.38    -22.01                     -        -  higher",
    ]


def _arm(label: str, mean: float, std: float | None) -> ArmValue:
    return ArmValue(label, mean, std, 1 if std is None else 2, (0, 1))


TABLE_ROWS = mark_best([
    Comparison("rouge1", True, _arm("ce", 18.712, 1.3977), n=30),
    Comparison("rouge1", True, _arm("pdl(alpha=1)", 17.874, 3.5056), _arm("ce", 18.712, 1.3977), delta=-0.838,
               ci_low=-6.1026, ci_high=4.6136, p_value=0.000999, n=30, paired_seeds=(0, 1),
               per_seed_deltas=(-3.91234, 2.23634), seed_ci=(-7.4015, 5.0003)),
    Comparison("vocab-size", None, _arm("ce", 12345.6, None), n=30),
    Comparison("vocab-size", None, _arm("pdl(alpha=1)", 23456.7, None), _arm("ce", 12345.6, None), delta=11111.1,
               ci_low=9000.0, ci_high=13000.0, p_value=0.5, n=30, paired_seeds=(0,)),
    Comparison("validation-ce", False, _arm("ce", 2.255, 0.0070711)),
    Comparison("validation-ce", False, _arm("pdl(alpha=1)", 2.355, 0.0070711), _arm("ce", 2.255, 0.0070711),
               delta=0.1, paired_seeds=(0, 1)),
])


def test_best_mean_follows_the_direction():
    assert [r.best for r in TABLE_ROWS] == [True, False, False, False, True, False]


def test_table_markdown_latex_html_are_pinned():
    grid = arm_grid(TABLE_ROWS)
    assert markdown_table(grid).splitlines() == [
        "| metric | arm | mean ± std (seeds) | Δ vs CE [95% CI] | p | seed CI | Δ per seed | seeds | n |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        "| rouge1 ↑ | ce | **18.71 ± 1.4** |  |  |  |  | 2 | 30 |",
        "| rouge1 ↑ | pdl(alpha=1) | 17.87 ± 3.5 | -0.838 [-6.1, +4.61] | <0.001 | [-7.4, +5] | -3.91 / +2.24 | 2 | 30 |",
        "| vocab-size | ce | 12346 |  |  |  |  | 1 | 30 |",
        "| vocab-size | pdl(alpha=1) | 23457 | +11111 [+9000, +13000] | 0.5 |  |  | 1 | 30 |",
        "| validation-ce ↓ | ce | **2.255 ± 0.0071** |  |  |  |  | 2 |  |",
        "| validation-ce ↓ | pdl(alpha=1) | 2.355 ± 0.0071 | +0.1 |  |  |  | 2 |  |",
    ]
    latex = latex_table(grid, "toy / tiny: 20 steps; seeds 0, 1. Δ = arm − CE").splitlines()
    assert latex[3:9] == [
        r"\begin{tabular}{llrrrrrrr}", r"\toprule",
        r"metric & arm & mean $\pm$ std (seeds) & $\Delta$ vs CE [95\% CI] & p & seed CI & $\Delta$ per seed & seeds & n \\",
        r"\midrule",
        r"rouge1 $\uparrow$ & ce & \textbf{18.71 $\pm$ 1.4} &  &  &  &  & 2 & 30 \\",
        r" & pdl(alpha=1) & 17.87 $\pm$ 3.5 & -0.838 [-6.1, +4.61] & <0.001 & [-7.4, +5] & -3.91 / +2.24 & 2 & 30 \\",
    ]
    assert latex[9] == r"\midrule" and latex[-2] == r"\caption{toy / tiny: 20 steps; seeds 0, 1. $\Delta$ = arm - CE}"
    html = html_table(grid)
    assert ('<tr class="block-start"><td>rouge1 ↑</td><td>ce</td><td class="num"><strong>18.71 ± 1.4</strong></td>'
            '<td class="num"></td><td class="num"></td><td class="num"></td><td class="num"></td>'
            '<td class="num">2</td><td class="num">30</td></tr>'
            '<tr><td></td><td>pdl(alpha=1)</td><td class="num">17.87 ± 3.5</td>'
            '<td class="num">-0.838 [-6.1, +4.61]</td><td class="num">&lt;0.001</td>'
            '<td class="num">[-7.4, +5]</td><td class="num">-3.91 / +2.24</td>') in html


def test_only_a_delta_over_several_seeds_shows_a_seed_ci_and_its_per_seed_deltas():
    """Seed CI and Δ per seed use the delta's digits; a seed-averaged delta whose hierarchical
    interval is undefined still lists its seeds' deltas; a one-seed delta leaves both cells empty."""
    base = _arm("ce", 0.5, 0.01)
    three = Comparison("distinct-2", True, _arm("pdl", 0.6, 0.02), base, delta=0.1, ci_low=0.05, ci_high=0.15,
                       p_value=0.01, n=30, paired_seeds=(0, 1, 2), per_seed_deltas=(0.12345, -0.0004567, 0.2),
                       seed_ci=(-0.0123456, 0.2))
    undefined = replace(three, seed_ci=None)
    one = replace(three, paired_seeds=(0,), per_seed_deltas=(), seed_ci=None)
    cells = [arm_grid([row]).rows[0].cells[5:7] for row in (three, undefined, one)]
    assert cells == [["[-0.0123, +0.2]", "+0.123 / -0.000457 / +0.2"], ["", "+0.123 / -0.000457 / +0.2"], ["", ""]]


def test_the_delta_column_names_a_baseline_other_than_ce():
    """Against CE the header keeps the docs' name; against another arm (the ablation's tables
    against pdl-official) it names that arm, so the column never claims a CE it does not show."""
    against_ce = arm_grid(TABLE_ROWS).headers[3]
    official = _arm("pdl-official", 17.0, 1.0)
    rows = [Comparison("rouge1", True, official, n=30),
            Comparison("rouge1", True, _arm("pdl(alpha=1)", 17.874, 3.5056), official, delta=0.874, n=30)]
    assert (against_ce, arm_grid(rows).headers[3]) == ("Δ vs CE [95% CI]", "Δ vs pdl-official [95% CI]")


@pytest.mark.parametrize("field", ["delta", "ci_low", "ci_high", "p_value"])
def test_from_paired_turns_nan_into_missing(field):
    record = dict(BENCH["metrics"]["bleu"], **{field: math.nan})
    row = from_paired(record, ("ce", "pdl"))
    assert (row.baseline.label, row.arm.label, row.arm.mean) == ("ce", "pdl", record["b"])
    value = getattr(row, field)
    assert value is None or math.isnan(value)


def test_a_value_that_rounds_up_to_a_power_of_ten_is_still_a_whole_number():
    from harness.numbers import format_value

    assert format_value(9999.7) == "10000" and format_value(12345.6) == "12346" and format_value(0.25) == "0.25"

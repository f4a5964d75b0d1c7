"""The verdict page (harness/report/verdict.py, `pdl-bench reference --no-run`) on hand-made trees:
every planned arm is shown, missing points are listed with their reason, the sentences follow the
numbers, a rebuild is byte-identical, examples share their ids, and the committed page matches
the committed tree."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import yaml

from harness import cli
from harness.comparison import ArmValue, Comparison
from harness.errors import HarnessError
from harness.losses import validate_options
from harness.metrics import score
from harness.reference_plan import ReferenceArm, ReferencePlan, read_plan
from harness.report import verdict
from harness.report.synthetic import WORDS, task_config, write_point
from harness.report.tables import TableSettings
from harness.results import PointError, Provenance, read_provenance, write_record

REPO = Path(__file__).resolve().parents[1]
SETTINGS = TableSettings(n_boot=200)  # fast; the page's own settings are verdict.PAGE_SETTINGS
N_TEST = 24
MODEL = "org/Tiny-LM"
PLAN = {
    "tasks": ["style", "dialog"],
    "arms": [{"loss": "ce"}, {"loss": "pdl", "options": {"alpha": 0.25}}, {"loss": "pdl", "options": {"alpha": 1.0}},
             {"loss": "face"}],
    "seeds": [0, 1],
    "examples_per_arm": 2,
}
TASK_METRICS = {"style": ["bleu", "rougeL", "distinct-1", "distinct-2"],
                "dialog": ["distinct-1", "distinct-2", "rouge1", "rougeL"]}
TIMINGS = {"load_s": 10.0, "train_s": 100.0, "generate_s": 20.0, "score_s": 5.0}  # 135 s per point
DIVERSE, SAME = ("pdl", 0.25), ("pdl", 1.0)  # the clearly more diverse arm; the arm identical to CE


def prediction(arm: tuple[str, float | None], i: int, seed: int) -> str:
    """CE (and the arm that copies it) repeats a few common words; the diverse arm uses distinct
    words in every example, so its distinct-2 is far higher."""
    if arm == DIVERSE:
        return " ".join(WORDS[(7 * i + 3 * k + seed) % len(WORDS)] for k in range(8))
    return " ".join(WORDS[(i + k + seed) % 4] for k in range(8))


def generations(arm, seed: int) -> list[dict]:
    return [{"id": f"t{i:02d}", "source": f"<b>verse {i}</b> | *old* text", "prediction": prediction(arm, i, seed),
             "reference": " ".join(WORDS[(5 * i + k) % len(WORDS)] for k in range(8))} for i in range(N_TEST)]


def profile(richness: float) -> dict:
    shares = [0.6 - 0.3 * richness, 0.3, 0.1 + 0.3 * richness]
    return {"buckets": [{"bucket": b, "training_mass": name, "prediction_share": share, "reference_share": ref}
                        for b, (name, share, ref) in enumerate(zip(["0-50%", "50-90%", "90-100%"], shares,
                                                                    [0.5, 0.3, 0.2]))]}


def add_point(root: Path, task: str, loss: str, options: dict, seed: int, *, complete: bool = True,
              rows: list[dict] | None = None) -> Path:
    """One point as the runner writes it: loss options resolved by the loss's schema, provenance
    with timings and device, metrics.json scored from the generations (or none: unfinished)."""
    resolved = validate_options(loss, options).model_dump(mode="json")
    arm = (loss, options.get("alpha"))
    rows = generations(arm, seed) if rows is None else rows
    values = None
    if complete:
        results = score([r["prediction"] for r in rows], [r["reference"] for r in rows],
                        metrics=TASK_METRICS[task], n_boot=0, seed=seed)
        values = {name: r.value for name, r in results.items()}
    path = write_point(root, task_config(task, metrics=TASK_METRICS[task]), MODEL, loss, resolved, seed,
                       generations=rows, metric_values=values, validation_ce=2.0, global_steps=40, n_train=64,
                       profile=profile(1.0 if arm == DIVERSE else 0.0))
    record = read_provenance(path).model_dump(mode="json")
    write_record(path, Provenance.model_validate({**record, "timings": TIMINGS, "device": {"cuda": False}}))
    return path


def write_reference_tree(root: Path) -> Path:
    """Both tasks: ce, the diverse arm and the CE copy complete for both seeds; face failed on
    seed 0 and never run on seed 1; in dialog the CE copy's seed 1 interrupted; one arm outside
    the plan."""
    for task in PLAN["tasks"]:
        for seed in PLAN["seeds"]:
            add_point(root, task, "ce", {}, seed)
            add_point(root, task, "pdl", {"alpha": 0.25}, seed)
            add_point(root, task, "pdl", {"alpha": 1.0}, seed, complete=not (task == "dialog" and seed == 1))
        failed = add_point(root, task, "face", {}, 0, complete=False)
        write_record(failed, PointError(type="OutOfMemoryError", message="CUDA out of memory\nsecond line",
                                        host="h", time="2026-01-01T00:00:00+00:00"))
    add_point(root, "style", "pdl", {"alpha": 0.5}, 0)  # not in the plan
    (root / "plan.yaml").write_text(yaml.safe_dump(PLAN), encoding="utf-8")
    return root


def build(root: Path, out_dir: Path) -> verdict.VerdictPage:
    return verdict.build_verdict(root, read_plan(root), out_dir / "docs" / "results.md", out_dir / "docs" / "results",
                                 settings=SETTINGS)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_reference_tree(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def page(tree, tmp_path_factory) -> tuple[verdict.VerdictPage, str]:
    built = build(tree, tmp_path_factory.mktemp("first"))
    return built, built.out.read_text(encoding="utf-8")


def section(text: str, task: str) -> str:
    """The `## <task>` section of the page."""
    return text.split(f"\n## {task}\n", 1)[1].split("\n## ", 1)[0]


# ----------------------------------------------------------------- the page


def test_page_lists_every_planned_arm_per_task(page):
    _, text = page
    labels = ["ce", "pdl(alpha=0.25)", "pdl(alpha=1)", "face"]
    assert text.startswith("# ") and "do not edit by hand" in text.lower() and "`make reference`" in text
    for task in PLAN["tasks"]:
        body = section(text, task)
        verdicts = body.split("### Verdict", 1)[1].split("### Table", 1)[0]
        for label in labels[1:]:
            assert f"- `{label}`: " in verdicts, (task, label)
        table = body.split("### Table", 1)[1].split("### Figures", 1)[0]
        for label in labels[:3]:
            assert f"| {label} |" in table, (task, label)
        assert "| face |" not in table  # no complete point: listed as missing, below
    headline = text.split("## Headline", 1)[1].split("\n## ", 1)[0]
    assert [line.split(" | ")[:2] for line in headline.splitlines()
            if line.startswith(("| style", "| dialog"))] == [[f"| {t}", label] for t in PLAN["tasks"] for label in labels[1:]]


def test_missing_points_are_listed_with_their_reason(page):
    built, text = page
    assert (built.planned, built.complete) == (16, 11)
    assert "**11 of 16 planned points are complete.**" in text
    assert f"Total compute: {verdict.duration_text(11 * sum(TIMINGS.values()))}" in text
    style, dialog = section(text, "style"), section(text, "dialog")
    assert "6 of 8 planned points complete" in style and "5 of 8 planned points complete" in dialog
    for body in (style, dialog):
        missing = body.split("### Missing points", 1)[1]
        assert re.search(r"- `face` seed 0 \(`[^`]+/face-s0-[0-9a-f]{8}`\): failed: OutOfMemoryError: CUDA out "
                         r"of memory\n", missing)
        assert "- `face` seed 1: not run yet (no folder)" in missing
        assert "second line" not in missing
    assert re.search(r"- `pdl\(alpha=1\)` seed 1 \(`[^`]+`\): interrupted", dialog)
    assert re.search(r"- `style/tiny-lm/pdl-a0.5-s0-[0-9a-f]{8}`: not in the plan", style)


def test_verdict_sentences_follow_the_numbers(page):
    built, text = page
    for task, quality in (("style", "bleu"), ("dialog", "rougeL")):
        result = next(v for v in built.verdicts if v.results.task == task)
        assert (result.diversity, result.quality) == ("distinct-2", quality)
        diverse = result.row("distinct-2", verdict.resolved_arm(ReferenceArm(loss="pdl", options={"alpha": 0.25})))
        assert diverse.ci_low > 0
        body = section(text, task)
        assert f"- `pdl(alpha=0.25)`: raises distinct-2 by {verdict.delta_text(diverse)}" in body
        assert "- `pdl(alpha=1)`: no difference from ce the test can resolve (distinct-2 +0 [+0, +0]" in body
        assert "- `face`: not measured yet" in body
        assert ("Paired on seed(s) 0 only." in body) == (task == "dialog")  # its seed 1 of pdl(alpha=1) is missing
        assert f"{MODEL}, 40 steps, 64 train examples, {N_TEST} test examples, run on CPU" in body
    headline = text.split("## Headline", 1)[1]
    assert "| style | pdl(alpha=0.25) | distinct-2 +" in headline
    assert "| style | pdl(alpha=1) | distinct-2 +0 [+0, +0] | bleu +0 [+0, +0] | no difference the test can resolve |" \
        in headline


def test_empty_outputs_are_named_in_the_sentence_and_the_headline(tmp_path):
    """An arm that generates nothing (pdl-official on the real tasks) is named as such: its deltas
    alone would read as "less diverse, worse", not "silent"; a baseline with empty outputs too."""
    plan = {**PLAN, "tasks": ["style"], "arms": [{"loss": "ce"}, {"loss": "pdl-official"}, {"loss": "face"}],
            "seeds": [0]}
    ce_rows = generations(("ce", None), 0)
    ce_rows[0] = {**ce_rows[0], "prediction": ""}
    add_point(tmp_path, "style", "ce", {}, 0, rows=ce_rows)
    silent = [{**r, "prediction": " " if i % 2 else ""} for i, r in enumerate(generations(("ce", None), 0))]
    add_point(tmp_path, "style", "pdl-official", {}, 0, rows=silent)
    add_point(tmp_path, "style", "face", {}, 0)
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan), encoding="utf-8")
    text = build(tmp_path, tmp_path / "out").out.read_text(encoding="utf-8")
    body = section(text, "style")
    assert f"- `ce` (the baseline): 1 of its {N_TEST} test outputs are empty." in body
    [official] = [line for line in body.splitlines() if line.startswith("- `pdl-official")]
    assert official.endswith(f"{N_TEST} of its {N_TEST} test outputs are empty.")
    [face] = [line for line in body.splitlines() if line.startswith("- `face`")]
    assert "empty" not in face
    headline = text.split("## Headline", 1)[1].split("\n## ", 1)[0]
    assert f"({N_TEST} of {N_TEST} outputs empty) |" in headline
    assert headline.count("outputs empty") == 1


def row(delta, low, high, higher_is_better=True):
    return Comparison("m", higher_is_better, ArmValue("x", 1.0), ArmValue("ce", 1.0), delta=delta, ci_low=low,
                      ci_high=high)


def test_sentence_rules():
    """A CI that excludes 0 is resolved; a quality drop is a cost, a rise a gain (lower-is-better
    flips it); no CI is never resolved."""
    assert [verdict.ci_sign(r) for r in (row(1, 0.5, 2), row(-1, -2, -0.1), row(0.1, -1, 1), row(1, None, None),
                                          row(1, 0.0, 2))] == [1, -1, 0, 0, 0]
    assert verdict.arm_sentence("a", "distinct-2", row(0.2, 0.1, 0.3), "rougeL", row(-3, -5, -1)) == \
        "`a`: raises distinct-2 by +0.2 [+0.1, +0.3], at a rougeL cost of -3 [-5, -1]."
    assert verdict.arm_sentence("a", "distinct-2", row(-0.2, -0.3, -0.1), "bleu", row(2, 1, 3)) == \
        "`a`: lowers distinct-2 by -0.2 [-0.3, -0.1], with a bleu gain of +2 [+1, +3]."
    assert verdict.arm_sentence("a", "distinct-2", row(0.01, -0.1, 0.1), "bleu", row(-2, -3, -1)) == \
        "`a`: leaves distinct-2 unresolved (+0.01 [-0.1, +0.1]), at a bleu cost of -2 [-3, -1]."
    assert verdict.quality_words("ppl", row(-1, -2, -0.5, higher_is_better=False)) == "with a ppl gain"
    assert verdict.main_metric(verdict.QUALITY_PREFERENCE, ["rouge1", "rougeL", "bleu"]) == "bleu"
    assert verdict.main_metric(verdict.QUALITY_PREFERENCE, ["rouge1", "rougeL"]) == "rougeL"


def seeded_row(delta, low, high, per_seed, seed_ci):
    return Comparison("distinct-2", True, ArmValue("x", 1.0), ArmValue("ce", 1.0), delta=delta, ci_low=low,
                      ci_high=high, paired_seeds=tuple(range(len(per_seed))), per_seed_deltas=tuple(per_seed),
                      seed_ci=seed_ci)


def test_a_change_over_seeds_needs_the_seed_level_ci_and_every_seed_to_agree():
    """The aclsum case of the issue: the example-level CI excludes 0, one seed goes the other way."""
    agree = seeded_row(0.05, 0.02, 0.08, [0.04, 0.06, 0.05], (0.03, 0.07))
    one_against = seeded_row(0.035, 0.005, 0.06, [0.046, 0.063, -0.003], (0.001, 0.07))
    wide = seeded_row(-0.39, -0.49, -0.22, [-0.5, -0.6, -0.05], (-0.51, 0.001))
    assert [verdict.ci_sign(r) for r in (agree, one_against, wide)] == [1, 0, 0]
    assert verdict.seed_disagreement(agree) == ""
    assert verdict.seed_disagreement(one_against) == "; not every seed agrees: seed 2 -0.003"
    assert verdict.seed_disagreement(wide) == "; the seed-level CI [-0.51, +0.001] holds 0"
    assert verdict.arm_sentence("a", "distinct-2", one_against, None, None) == \
        "`a`: no difference from ce the test can resolve (distinct-2 +0.035 [+0.005, +0.06]; not every seed agrees: seed 2 -0.003)."
    assert verdict.diversity_words("distinct-2", wide) == "leaves distinct-2 unresolved across seeds"


def test_a_large_resolved_length_change_is_named_and_a_small_one_is_not():
    class Page:  # the two methods length_words and loop_words read
        def __init__(self, rows):
            self.rows = rows

        def row(self, metric, arm, decoding=None):
            return self.rows.get(metric)

    def length(delta, low, high):
        return Comparison("mean-length", None, ArmValue("x", 22.2 + delta), ArmValue("ce", 22.2), delta=delta,
                          ci_low=low, ci_high=high)

    assert verdict.length_words(Page({"mean-length": length(-11.1, -13.4, -8.8)}), "arm") == \
        " Its outputs are 50% shorter than ce's (mean-length -11.1 [-13.4, -8.8])."
    assert verdict.length_words(Page({"mean-length": length(-1.5, -2.0, -1.0)}), "arm") == ""  # under 10%
    assert verdict.length_words(Page({"mean-length": length(-11.1, -20.0, 1.0)}), "arm") == ""  # not resolved
    loops = Comparison("loop-share", False, ArmValue("x", 0.02), ArmValue("ce", 0.19), delta=-0.17, ci_low=-0.25,
                       ci_high=-0.1)
    assert verdict.loop_words(Page({"loop-share": loops}), "arm") == " Loops in 2% of its outputs against 19% for ce."


def test_an_arm_whose_outputs_leave_the_main_diversity_metric_undefined_is_read_on_the_next_one():
    """rarefied distinct-2 is NaN for outputs with fewer bigrams than its budget: that arm's
    sentence reads distinct-2 and says why, the other arms keep the main metric."""
    from types import SimpleNamespace

    def comparison(metric, label, delta):
        low, high = (None, None) if delta is None else (delta - 0.01, delta + 0.01)
        return Comparison(metric, True, ArmValue(label, 0.5), ArmValue("ce", 0.5), delta=delta, ci_low=low,
                          ci_high=high)

    short, fine = ("pdl", "{}"), ("face", "{}")
    rows = [comparison("rarefied-distinct-2", "short", None), comparison("distinct-2", "short", 0.3),
            comparison("rarefied-distinct-2", "fine", 0.05), comparison("distinct-2", "fine", 0.2)]
    page = verdict.TaskVerdict(results=None, table=SimpleNamespace(rows=rows), quality=None,
                               diversity="rarefied-distinct-2", labels={short: "short", fine: "fine"})
    assert page.diversity_for(short) == "distinct-2" and page.diversity_for(fine) == "rarefied-distinct-2"
    assert "rarefied-distinct-2 is undefined for its outputs" in verdict.diversity_fallback(page, "distinct-2")
    assert verdict.diversity_fallback(page, "rarefied-distinct-2") == ""


def test_rebuild_is_byte_identical(tree, page, tmp_path):
    built, text = page
    again = build(tree, tmp_path)
    assert again.out.read_bytes() == built.out.read_bytes()
    names = sorted(p.name for p in built.figures)
    assert names == sorted(p.name for p in again.figures) and len(names) == 6  # 3 kinds x 2 tasks
    for first, second in zip(sorted(built.figures), sorted(again.figures)):
        assert first.read_bytes() == second.read_bytes(), first.name
    for name in names:
        assert f"](results/{name})" in text


def test_examples_show_the_same_ids_for_every_arm_escaped(page):
    _, text = page
    body = section(text, "style").split("### Examples", 1)[1].split("### Missing", 1)[0]
    ids = re.findall(r"\*\*Example `(t\d\d)`\*\*", body)
    assert len(ids) == PLAN["examples_per_arm"] and len(set(ids)) == len(ids)
    for example_id, block in zip(ids, body.split("**Example ")[1:]):
        i = int(example_id[1:])
        assert f"| `ce` | {prediction(('ce', None), i, 0)} |" in block
        assert f"| `pdl(alpha=0.25)` | {prediction(DIVERSE, i, 0)} |" in block
        assert f"| `pdl(alpha=1)` | {prediction(SAME, i, 0)} |" in block
        assert "| `face` | *(no complete point with this seed yet)* |" in block
        assert f"| source | &lt;b&gt;verse {i}&lt;/b&gt; \\| \\*old\\* text |" in block
    assert "<b>" not in text


def test_cli_rebuilds_the_page_without_running(tree, tmp_path, capsys):
    """--no-run works on a partial tree, with the page's own bootstrap, and writes where told."""
    out, figures = tmp_path / "page.md", tmp_path / "figs"
    assert cli.main(["reference", "--no-run", "--results-dir", str(tree), "--out", str(out),
                     "--figures-dir", str(figures)]) == 0
    assert "11 of 16 planned points complete" in capsys.readouterr().out
    assert "](figs/style__quality_vs_diversity.png)" in out.read_text(encoding="utf-8")


def test_a_corrupt_metrics_json_gets_one_reason_on_the_page_and_in_table(tmp_path, capsys):
    from harness.store import PointStore, point_state

    root = write_reference_tree(tmp_path / "reference")
    [bad] = root.glob("style/*/ce-s1-*")
    (bad / "metrics.json").write_text('{"metrics": {', encoding="utf-8")  # cut short
    assert point_state(PointStore(bad)).kind == "unreadable"
    missing = section(build(root, tmp_path).out.read_text(encoding="utf-8"), "style").split("### Missing points", 1)[1]
    [line] = [line for line in missing.splitlines() if "ce-s1-" in line]
    assert line.startswith("- `ce` seed 1 (") and line.endswith("unreadable metrics.json (rerun it with --force)")
    assert cli.main(["table", "--results-dir", str(root)]) == 0
    assert f"{bad.name}`: unreadable metrics.json" in capsys.readouterr().out  # the same rule, with the file's error


def test_empty_tree_lists_every_point_and_plan_errors(tmp_path):
    root = tmp_path / "reference"
    (root / "style").mkdir(parents=True)  # a task folder with no point yet
    (root / "plan.yaml").write_text(yaml.safe_dump(PLAN), encoding="utf-8")
    built = build(root, tmp_path)
    text = built.out.read_text(encoding="utf-8")
    assert built.complete == 0 and text.count("not run yet (no folder)") == 16 and not built.figures
    plan = ReferencePlan.model_validate({**PLAN, "arms": PLAN["arms"][1:]})
    with pytest.raises(HarnessError, match="first arm"):
        verdict.build_verdict(root, plan, tmp_path / "x.md", tmp_path / "x")


@pytest.mark.parametrize(("change", "problem"), [
    ({"seedz": [0]}, "seedz: unknown key (did you mean seeds?)"),
    ({"arms": []}, "arms: List should have at least 2 items after validation, not 0"),
    ({"arms": [{"loss": "ce"}, {"los": "pdl"}]}, "arms.1.los: unknown key (did you mean loss?)"),
])
def test_plan_mistakes_get_one_line_like_task_mistakes(tmp_path, capsys, change, problem):
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({**PLAN, **change}), encoding="utf-8")
    assert cli.main(["reference", "--no-run", "--results-dir", str(tmp_path), "--out", str(tmp_path / "page.md")]) == 2
    err = capsys.readouterr().err
    message, hint = err.rstrip("\n").split("\n")
    assert message.startswith(f"pdl-bench reference: error: invalid reference plan {tmp_path / 'plan.yaml'}: ")
    assert problem in message and "errors.pydantic.dev" not in err and hint.startswith("  -> ")


# ----------------------------------------------------------------- the committed page


def committed_points() -> list[Path]:
    root = REPO / "results" / "reference"
    return sorted(root.glob("*/*/*/metrics.json")) if root.is_dir() else []


@pytest.mark.skipif(not committed_points() or not (REPO / "docs" / "results.md").is_file(),
                    reason="results/reference holds no complete point or docs/results.md is not there yet")
def test_committed_page_is_rebuilt_byte_for_byte(tmp_path, monkeypatch):
    """`pdl-bench reference --no-run` from the committed tree gives the committed page and figures."""
    monkeypatch.chdir(REPO)
    results = Path("results/reference")
    built = verdict.build_verdict(results, read_plan(results), tmp_path / "docs" / "results.md",
                                  tmp_path / "docs" / "results")
    assert built.out.read_bytes() == (REPO / "docs" / "results.md").read_bytes()
    for figure in built.figures:
        assert figure.read_bytes() == (REPO / "docs" / "results" / figure.name).read_bytes(), figure.name


@pytest.mark.parametrize("marker, page_name", [("reference-headline", "results.md"),
                                               ("ablation-headline", "ablation.md")])
def test_readme_quotes_the_pages_headline_rows_verbatim(marker, page_name):
    """The README's quoted block (between its `marker` markers) is the generated page's whole
    `## Headline` table, row for row, so the README cannot drift from the committed results."""
    page_path = REPO / "docs" / page_name
    if not page_path.is_file():
        pytest.skip(f"docs/{page_name} is not there yet")

    def table_rows(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", readme, re.S)
    assert block, f"README.md lacks the <!-- {marker} --> block that quotes docs/{page_name}"
    headline = page_path.read_text(encoding="utf-8").split("## Headline", 1)[1].split("\n## ", 1)[0]
    quoted, expected = table_rows(block.group(1)), table_rows(headline)
    assert expected, f"docs/{page_name} has no headline table"
    missing = [row for row in expected if row not in quoted]
    assert quoted == expected, f"README's {marker} block differs from docs/{page_name}'s headline; missing: {missing}"


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_sampled_decoding_and_mechanism_are_read_by_the_same_rules(tmp_path, seeds):
    """A format-3 arm that lowers NLL on rare reference tokens and raises it on frequent ones gets
    the mechanism sentence with its CIs, the sampled sentence, the per-bucket figure and both
    headline cells; a point of the earlier format reads "not measured" there. With a second seed
    of the earlier format, each of them names the one seed it pairs."""
    import numpy as np

    from harness.report.synthetic import add_load_time_measurements

    plan = {**PLAN, "tasks": ["style"], "arms": [{"loss": "ce"}, {"loss": "pdl", "options": {"alpha": 0.25}},
                                                {"loss": "face"}], "seeds": seeds}
    for seed in seeds[1:]:  # earlier-format points: measured nothing at load time
        add_point(tmp_path, "style", "ce", {}, seed)
        add_point(tmp_path, "style", "pdl", {"alpha": 0.25}, seed)
    counts = np.array([400 - 6 * i for i in range(len(WORDS))] + [0], dtype=np.int64)
    rng = np.random.default_rng(1)
    example = np.repeat(np.arange(N_TEST), 8)
    token = rng.integers(0, len(WORDS), size=example.size)
    base_nll = rng.uniform(1.0, 3.0, size=example.size)
    rare = token >= 40  # the rarest ids of `counts` (the last mass bucket holds ids 39-49)
    for loss, options, shift in (("ce", {}, 0.0), ("pdl", {"alpha": 0.25}, 1.0)):
        path = add_point(tmp_path, "style", loss, options, 0)
        nll = base_nll - shift * np.where(rare, 0.8, -0.3)
        sampled = generations((loss, options.get("alpha")), 1 if loss == "ce" else 0)
        add_load_time_measurements(path, token_scores={"example": example, "token": token, "nll": nll,
                                                       "correct": nll < 1.2},
                                   train_counts=counts, decodings={"sampled": sampled})
    add_point(tmp_path, "style", "face", {}, 0)  # written by the earlier format: nothing measured at load time
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan), encoding="utf-8")
    built = build(tmp_path, tmp_path / "out")
    text = built.out.read_text(encoding="utf-8")
    body = section(text, "style")
    [result] = built.verdicts
    arm = verdict.resolved_arm(ReferenceArm(loss="pdl", options={"alpha": 0.25}))
    rarest, frequent = result.row("nll-rarest", arm), result.row("nll-most-frequent", arm)
    assert rarest.ci_high < 0 < frequent.ci_low
    one_of_two = ", seed 0" if len(seeds) > 1 else ""
    assert (f"  - Likelihood by frequency (teacher-forced{one_of_two}): lowers NLL on the rarest 10% of reference "
            f"tokens by {verdict.delta_text(rarest)}, raises NLL on the most frequent 10% by "
            f"{verdict.delta_text(frequent)}." in body)
    sampled = result.row("distinct-2", arm, verdict.SAMPLED)
    assert sampled.ci_low > 0 and sampled.paired_seeds == (0,)  # the sampled outputs are the diverse arm's
    assert (f"  - Sampled decoding{' (seed 0)' if one_of_two else ''}: raises distinct-2" in body
            and verdict.delta_text(sampled) in body)
    face = body.split("- `face`", 1)[1].split("\n- ", 1)[0]
    assert "Sampled decoding: not measured" in face and "Likelihood by frequency: not measured" in face
    assert any(p.name == "style__nll_by_bucket.png" for p in built.figures)
    headline = text.split("## Headline", 1)[1].split("\n## ", 1)[0]
    assert f"| {verdict.delta_text(rarest)}{' (seed 0)' if one_of_two else ''} |" in headline
    assert "| not measured | not measured |" in headline

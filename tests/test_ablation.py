"""The PDL ablation (results/reference/ablation.yaml, harness/report/ablation.py, `pdl-bench ablation`):
the committed plan is the ladder the issue asks for, an arm is placed on it from its options alone,
the page's sentences follow the numbers on a hand-made tree, a rebuild is byte-identical, the
verdict page of the same tree counts the ablation's folders instead of listing them, and the
committed page matches the committed tree."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import yaml

from harness.errors import HarnessError
from harness.losses import validate_options
from harness.losses.pdl import OFFICIAL_OPTIONS, official_choices
from harness.metrics import score
from harness.reference_plan import ABLATION_PLAN_FILE, PLAN_FILE, ReferencePlan, read_plan
from harness.report import ablation, verdict
from harness.report.synthetic import WORDS, task_config, write_point
from harness.report.tables import TableSettings
from harness.results import Provenance, read_provenance, write_record

REPO = Path(__file__).resolve().parents[1]
SETTINGS = TableSettings(n_boot=200)
N_TEST = 24
MODEL = "org/Tiny-LM"
METRICS = ["bleu", "distinct-2", "rarefied-distinct-2", "empty-share", "loop-share", "limit-share", "mean-length"]
FIX_UNSEEN = {**OFFICIAL_OPTIONS, "unseen_weight": "neutral"}
BREAK_UNSEEN = {"alpha": 1.0, "unseen_weight": "formula"}
BREAK_NORM = {"alpha": 1.0, "normalization": "batch_weight_sum"}
PLAN = {
    "tasks": ["style"],
    "arms": [{"loss": "ce"}, {"loss": "pdl-official"}, {"loss": "pdl", "options": FIX_UNSEEN},
             {"loss": "pdl", "options": BREAK_UNSEEN}, {"loss": "pdl", "options": BREAK_NORM},
             {"loss": "pdl", "options": {"alpha": 1.0}}],
    "seeds": [0, 1],
    "examples_per_arm": 0,
}


def rows(kind: str, seed: int) -> list[dict]:
    """`empty`: every output empty (the official arithmetic); `good`: the reference's words with the
    last two shifted by seed, so quality and diversity are defined and vary a little; `exact`: the
    reference itself; `half`: the first half of the outputs empty, the rest `good`; `loop`: `good`
    followed by its first four words three times over, cut off by the token limit; `poor`: words
    other than the reference's, ended in time; `half-loop`: the first half empty, the rest `loop`;
    `stub`: the first word of `good` alone, ended in time."""
    out = []
    for i in range(N_TEST):
        reference = " ".join(WORDS[(5 * i + k) % len(WORDS)] for k in range(8))
        good = " ".join(WORDS[(5 * i + k + (k > 5) * (seed + 1)) % len(WORDS)] for k in range(8))
        loop = good + (" " + " ".join(good.split()[:4])) * 3
        prediction = {"empty": "", "good": good, "exact": reference, "half": "" if i < N_TEST // 2 else good,
                      "loop": loop, "poor": " ".join(WORDS[(5 * i + k + 40) % len(WORDS)] for k in range(8)),
                      "half-loop": "" if i < N_TEST // 2 else loop, "stub": good.split()[0]}[kind]
        looping = kind == "loop" or (kind == "half-loop" and prediction)
        out.append({"id": f"t{i:02d}", "source": f"text {i}", "prediction": prediction, "reference": reference,
                    "stopped": "max_new_tokens" if looping else "eos"})
    return out


def add_point(root: Path, loss: str, options: dict, seed: int, kind: str, eos_weight: float) -> Path:
    resolved = validate_options(loss, options).model_dump(mode="json")
    generated = rows(kind, seed)
    results = score([r["prediction"] for r in generated], [r["reference"] for r in generated], metrics=METRICS,
                    n_boot=0, seed=seed, finished=[r["stopped"] == "eos" for r in generated])
    config = task_config("style", metrics=METRICS)
    config["training"].update(max_grad_norm=1.0, gradient_accumulation_steps=1)  # as a real point's dump has
    path = write_point(root, config, MODEL, loss, resolved, seed,
                       generations=generated, metric_values={k: r.value for k, r in results.items()},
                       validation_ce=2.0 + (kind == "empty"), global_steps=40, n_train=64,
                       train_log=[{"step": 4, "loss": 2.0, "grad_norm": 0.002 if kind == "empty" else 6.0 + seed},
                                  {"step": 8, "loss": 1.5, "grad_norm": 0.001 if kind == "empty" else 5.0 + seed}])
    record = read_provenance(path).model_dump(mode="json")
    weights = {"over": "token ids that occur as training targets, before the first update", "n_token_ids": 50,
               "min": 0.01, "max": max(eos_weight, 5.0), "max_token_id": 2, "max_token": "</s>", "eos": eos_weight}
    write_record(path, Provenance.model_validate({**record, "timings": {"train_s": 60.0}, "device": {"cuda": False},
                                                  "loss_weights": weights}))
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """ce, both ends, the unseen-weight fix (restores outputs) and put-back (empties them) at seeds
    0 and 1; the normalisation put-back not run; the verdict plan names only ce and pdl(alpha=1)."""
    root = tmp_path_factory.mktemp("tree")
    for seed in (0, 1):
        add_point(root, "ce", {}, seed, "good", 1.0)
        add_point(root, "pdl-official", {}, seed, "empty", 1e7)
        add_point(root, "pdl", FIX_UNSEEN, seed, "good", 1.0)
        add_point(root, "pdl", BREAK_UNSEEN, seed, "empty", 1e7)
        add_point(root, "pdl", {"alpha": 1.0}, seed, "good", 1.0)
    (root / ABLATION_PLAN_FILE).write_text(yaml.safe_dump(PLAN), encoding="utf-8")
    main = {"tasks": ["style"], "arms": [{"loss": "ce"}, {"loss": "pdl", "options": {"alpha": 1.0}}], "seeds": [0, 1]}
    (root / PLAN_FILE).write_text(yaml.safe_dump(main), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def page(tree, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("page")
    built = ablation.build_ablation(tree, read_plan(tree, ABLATION_PLAN_FILE), out / "ablation.md", out / "fig",
                                    settings=SETTINGS)
    assert (built.planned, built.complete) == (12, 10)
    return built.out.read_text(encoding="utf-8")


def page_of_plan(root: Path) -> str:
    """The ablation page of the points under `root`, planned by PLAN (written there first)."""
    (root / ABLATION_PLAN_FILE).write_text(yaml.safe_dump(PLAN), encoding="utf-8")
    built = ablation.build_ablation(root, read_plan(root, ABLATION_PLAN_FILE), root / "ablation.md", root / "fig",
                                    settings=SETTINGS)
    return built.out.read_text(encoding="utf-8")


def test_the_committed_plan_is_the_ladder_with_the_verdict_pages_ends():
    """Each of the four official choices flipped alone both ways, between the two ends, which are the
    verdict plan's own pdl-official and pdl(alpha=1) arms (same identity: run once, read twice)."""
    root = REPO / "results" / "reference"
    rungs = ablation.ladder(read_plan(root, ABLATION_PLAN_FILE))
    choices = set(official_choices())
    assert {r.choice for r in rungs if r.role == ablation.FIX} == choices
    assert {r.choice for r in rungs if r.role == ablation.BREAK} == choices
    assert len(rungs) == 2 * len(choices) + 3
    main_arms = set(verdict.planned_arms(read_plan(root, PLAN_FILE)))
    ends = {r.arm for r in rungs if r.role in (ablation.OFFICIAL, ablation.FIXED, ablation.BASELINE)}
    assert len(ends) == 3 and ends <= main_arms


def test_an_arm_off_the_ladder_is_an_error():
    two_flipped = {**PLAN, "arms": PLAN["arms"] + [{"loss": "pdl", "options": {"alpha": 1.0, "freq_source": "all_text",
                                                                            "unseen_weight": "formula"}}]}
    with pytest.raises(HarnessError, match="neither an end"):
        ablation.ladder(ReferencePlan.model_validate(two_flipped))
    no_end = {**PLAN, "arms": PLAN["arms"][:-1]}
    with pytest.raises(HarnessError, match="both ends"):
        ablation.ladder(ReferencePlan.model_validate(no_end))


def test_sentences_follow_the_numbers(page):
    assert "`unseen_weight`: Putting `unseen_weight=formula` back alone empties 100% of outputs (pdl(alpha=1): 0%)" in page
    assert "(EOS weight 10000000; largest 10000000 on '</s>')" in page
    assert "Fixing `unseen_weight` alone (`unseen_weight=neutral`) restores outputs: 0% empty against pdl-official's 100%" in page
    assert "Putting `normalization=batch_weight_sum` back alone: not compared yet (points missing)." in page
    assert "- `pdl + normalization=batch_weight_sum` seed 1: not run yet (no folder)" in page
    assert "**10 of 12 planned points are complete.**" in page
    # the smallest pre-clip gradient norm over seeds and logged steps, read against the task's clipping
    assert "| `pdl-official` | official end | 2 | 1 ± 0 |" in page
    assert next(line for line in page.splitlines() if line.startswith("| `pdl-official` |")).endswith("| 0.001 |")
    assert next(line for line in page.splitlines() if line.startswith("| `pdl(alpha=1)` |")).endswith("| 5 |")
    assert "gradients were clipped at 1 (training.max_grad_norm), so an arm above it had every logged step clipped, " \
           "and with one micro-batch per step" in page
    assert "![quality-diversity plane](fig/ablation_plane.png)" in page


def test_arms_with_identical_outputs_are_named_once_and_all_empty_ones_are_not(page, tmp_path):
    """ce, the unseen-weight fix and pdl(alpha=1) write the same `good` outputs at both seeds, with the
    same recorded weights: one sentence names the three. pdl-official and the put-back both leave every
    output empty, which the empty share already says: not named. Outputs that differ at one shared
    seed are not called identical."""
    line = next(line for line in page.splitlines() if line.startswith("Same outputs: "))
    assert line == ("Same outputs: `ce`, `official + unseen_weight=neutral` and `pdl(alpha=1)` give identical outputs "
                    "on every test example at every seed they share (0, 1), and recorded the same token weights "
                    "(EOS weight 1; largest 5 on '</s>'): the same model in effect.")
    for seed in (0, 1):
        add_point(tmp_path, "ce", {}, seed, "good", 1.0)
        add_point(tmp_path, "pdl-official", {}, seed, "empty", 1e7)
        add_point(tmp_path, "pdl", {"alpha": 1.0}, seed, "good" if seed == 0 else "exact", 1.0)
    plan = ReferencePlan.model_validate(PLAN)
    built = ablation.build_ablation(tmp_path, plan, tmp_path / "a.md", tmp_path / "fig", settings=SETTINGS)
    assert "Same outputs" not in built.out.read_text(encoding="utf-8")  # pdl(alpha=1) differs from ce at seed 1


def test_a_fix_is_not_called_restoring_before_the_fixed_end_has_run(tmp_path):
    """"Restores" compares with pdl(alpha=1) too: with that end not run, the sentence says so."""
    for seed in (0, 1):
        add_point(tmp_path, "ce", {}, seed, "good", 1.0)
        add_point(tmp_path, "pdl-official", {}, seed, "empty", 1e7)
        add_point(tmp_path, "pdl", FIX_UNSEEN, seed, "good", 1.0)
    page = page_of_plan(tmp_path)
    assert "restores outputs" not in page
    assert ("Fixing `unseen_weight` alone (`unseen_weight=neutral`) lowers the empty share to 0% (pdl-official: 100%); "
            "not compared with pdl(alpha=1) yet (points missing)") in page


def test_the_headline_gives_both_directions_of_a_choice(page):
    line = next(row for row in page.splitlines() if row.startswith("| `unseen_weight` | style |"))
    assert "| 100% (+1 [+1, +1]) | 0% (-1 [-1, -1]) |" in line


def test_rebuild_is_byte_identical(tree, page, tmp_path):
    again = ablation.build_ablation(tree, read_plan(tree, ABLATION_PLAN_FILE), tmp_path / "ablation.md",
                                    tmp_path / "fig", settings=SETTINGS)
    assert again.out.read_text(encoding="utf-8") == page


def test_the_verdict_page_counts_the_ablations_folders_and_does_not_list_them(tree, tmp_path):
    built = verdict.build_verdict(tree, read_plan(tree), tmp_path / "results.md", tmp_path / "fig", settings=SETTINGS)
    text = built.out.read_text(encoding="utf-8")
    assert "not in the plan" not in text
    assert "6 other complete points of this configuration belong to the tree's other plan (ablation.yaml)" in text
    # every planned point is there: the section says so first, then counts the other plan's
    assert ("### Missing points\n\nNone: every planned point of this task is complete.\n\n6 other complete points"
            in text)


def test_a_folder_only_an_other_tasks_plan_names_is_listed(tree, tmp_path):
    """The other plan covers the folder's arm but not its task: no page reads it, so it is listed."""
    import shutil

    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    (copy / ABLATION_PLAN_FILE).write_text(yaml.safe_dump({**PLAN, "tasks": ["another-task"]}), encoding="utf-8")
    built = verdict.build_verdict(copy, read_plan(copy), tmp_path / "results.md", tmp_path / "fig", settings=SETTINGS)
    text = built.out.read_text(encoding="utf-8")
    assert "other plan" not in text and text.count("not in the plan") == 6


def test_an_arm_may_run_fewer_seeds_than_the_plan():
    """The verdict plan runs pdl-official at three of five seeds: planned, run and counted that way,
    and a seed only some arm runs must be the baseline's too."""
    from harness.runner.reference import reference_points

    plan = ReferencePlan.model_validate({"tasks": ["style"], "arms": [{"loss": "ce"}, {"loss": "pdl-official", "seeds": [0]}],
                                         "seeds": [0, 1]})
    assert [(s["loss"], s["seed"]) for _, s in reference_points(plan)] == [("ce", 0), ("pdl-official", 0), ("ce", 1)]
    assert plan.points_per_task == 3 and plan.seeds_words(["ce", "pdl-official"]) == "0, 1 (pdl-official: 0)"
    with pytest.raises(ValueError, match="not for the baseline"):
        ReferencePlan.model_validate({"tasks": ["style"], "seeds": [0],
                                      "arms": [{"loss": "ce"}, {"loss": "face", "seeds": [0, 1]}]})


@pytest.mark.skipif(not (REPO / "docs" / "ablation.md").is_file(), reason="docs/ablation.md is not there yet")
def test_committed_ablation_page_is_rebuilt_byte_for_byte(tmp_path, monkeypatch):
    """`pdl-bench ablation --no-run` from the committed tree gives the committed page and figure."""
    monkeypatch.chdir(REPO)
    results = Path("results/reference")
    built = ablation.build_ablation(results, read_plan(results, ABLATION_PLAN_FILE), tmp_path / "docs" / "ablation.md",
                                    tmp_path / "docs" / "ablation")
    assert built.out.read_bytes() == (REPO / "docs" / "ablation.md").read_bytes()
    for figure in built.figures:
        assert figure.read_bytes() == (REPO / "docs" / "ablation" / figure.name).read_bytes(), figure.name


def test_the_command_rebuilds_the_page_and_refuses_a_plan_off_the_ladder_before_running(tree, tmp_path, capsys):
    from harness import cli

    out = tmp_path / "ablation.md"
    assert cli.main(["ablation", "--no-run", "--results-dir", str(tree), "--out", str(out),
                     "--figures-dir", str(tmp_path / "fig")]) == 0
    assert "(10 of 12 planned points complete)" in capsys.readouterr().out and out.is_file()
    bad = tmp_path / "bad"
    bad.mkdir()
    plan = {**PLAN, "arms": PLAN["arms"] + [{"loss": "pdl", "options": {"alpha": 0.5}}]}
    (bad / ABLATION_PLAN_FILE).write_text(yaml.safe_dump(plan), encoding="utf-8")
    assert cli.main(["ablation", "--results-dir", str(bad), "--out", str(tmp_path / "x.md")]) == 2
    assert "neither an end" in capsys.readouterr().err and not (tmp_path / "x.md").exists()


def unseen_weight_page(root: Path, *, put_back: str, fix: str) -> str:
    """The page of a tree whose two unseen_weight rungs give outputs of the named kinds (`rows`),
    between an all-empty pdl-official and a good pdl(alpha=1), at seeds 0 and 1."""
    for seed in (0, 1):
        add_point(root, "ce", {}, seed, "good", 1.0)
        add_point(root, "pdl-official", {}, seed, "empty", 1e7)
        add_point(root, "pdl", {"alpha": 1.0}, seed, "good", 1.0)
        add_point(root, "pdl", BREAK_UNSEEN, seed, put_back, 1e7)
        add_point(root, "pdl", FIX_UNSEEN, seed, fix, 1.0)
    return page_of_plan(root)


def test_a_change_for_the_better_is_named_as_one_and_a_partial_fix_is_not_called_a_restore(tmp_path):
    """Putting a choice back that raises quality says so (never "changes neither"); fixing a choice
    that halves the official arm's empty outputs, still above pdl(alpha=1)'s, "lowers" them."""
    text = unseen_weight_page(tmp_path, put_back="exact", fix="half")
    assert "Putting `unseen_weight=formula` back alone improves bleu +" in text
    assert ("Fixing `unseen_weight` alone (`unseen_weight=neutral`) lowers the empty share to 50% "
            "(pdl-official: 100%), still above pdl(alpha=1)'s 0%") in text


def test_both_ends_must_run_every_rungs_seeds():
    arms = [dict(arm) for arm in PLAN["arms"]]
    arms[1]["seeds"] = [0]  # pdl-official at seed 0 only, its rungs at 0 and 1
    with pytest.raises(HarnessError, match="seed 1 has no such end point"):
        ablation.ladder(ReferencePlan.model_validate({**PLAN, "arms": arms}))


def test_outputs_that_loop_to_the_token_limit_are_named_beside_the_change_they_explain(tmp_path):
    """An arm whose outputs are not empty but loop until max_new_tokens: putting its choice back says
    so (the share at the limit and looping, each against pdl(alpha=1)); a fix whose outputs loop so
    "brings the empty share down", it does not "restore" outputs; the headline and the arms table show both shares."""
    text = unseen_weight_page(tmp_path, put_back="loop", fix="loop")
    degenerate = "; outputs 100% at the token limit (pdl(alpha=1): 0%) and 100% looping (pdl(alpha=1): 0%) (EOS"
    assert "Putting `unseen_weight=formula` back alone costs bleu -" in text
    assert "Fixing `unseen_weight` alone (`unseen_weight=neutral`) brings the empty share down to pdl(alpha=1)'s, " \
           "but costs bleu and more outputs degenerate than under pdl(alpha=1): 0% empty against pdl-official's 100% (pdl(alpha=1): 0%); bleu -" in text
    assert "restores" not in text.split("## style")[1]  # outputs back, but broken, are not restored
    headline = next(line for line in text.splitlines() if line.startswith("| `unseen_weight` | style |"))
    assert headline.endswith("; 100% at the token limit; 100% looping | 0% (-1 [-1, -1]); 100% at the token limit; 100% looping |")
    assert text.count(degenerate) == 2
    header = next(line for line in text.splitlines() if line.startswith("| arm | role | seeds |"))
    assert "| empty-share | loop-share | limit-share |" in header


def test_a_sentence_sets_a_rung_beside_its_ends_on_the_seeds_it_ran(tmp_path):
    """While a rung has run seed 0 only, its sentence gives the ends' shares at seed 0 (the delta's
    pairing), not their mean over every seed they ran: pdl-official empties every output at seed 0
    and half of them at seed 1 (75% over both)."""
    for seed, official in ((0, "empty"), (1, "half")):
        add_point(tmp_path, "ce", {}, seed, "good", 1.0)
        add_point(tmp_path, "pdl-official", {}, seed, official, 1e7)
        add_point(tmp_path, "pdl", {"alpha": 1.0}, seed, "good", 1.0)
    add_point(tmp_path, "pdl", FIX_UNSEEN, 0, "good", 1.0)
    text = page_of_plan(tmp_path)
    assert "restores outputs: 0% empty against pdl-official's 100% (pdl(alpha=1): 0%)" in text
    assert "| `pdl-official` | official end | 2 | 0.75 ± 0.35 |" in text  # the table keeps each arm's own mean


def test_a_fix_that_costs_quality_brings_the_empty_share_down_but_does_not_restore_outputs(tmp_path):
    text = unseen_weight_page(tmp_path, put_back="good", fix="poor")
    assert ("Fixing `unseen_weight` alone (`unseen_weight=neutral`) brings the empty share down to "
            "pdl(alpha=1)'s, but costs bleu: "
            "0% empty against pdl-official's 100% (pdl(alpha=1): 0%); bleu -") in text


def test_a_partial_fix_names_its_degenerate_outputs_too(tmp_path):
    """Every fix sentence names the degenerate shares the headline shows and its quality against
    pdl(alpha=1), also one that leaves outputs empty: half empty, the other half looping to the
    token limit."""
    text = unseen_weight_page(tmp_path, put_back="good", fix="half-loop")
    assert ("Fixing `unseen_weight` alone (`unseen_weight=neutral`) lowers the empty share to 50% (pdl-official: "
            "100%), still above pdl(alpha=1)'s 0%; bleu -45.3 [-52.2, -44.7] against pdl(alpha=1); outputs 50% at the "
            "token limit (pdl(alpha=1): 0%) and 50% looping (pdl(alpha=1): 0%) (EOS weight 1;") in text


def test_outputs_cut_to_a_word_are_named_as_shorter_and_an_all_empty_arm_gets_no_such_clause(tmp_path, page):
    """A fix whose outputs are one word each is not empty, but its sentence says how short they are
    beside its quality cost (chitchat's corpus_mean fix at seed 1: "I'm", "Aunt"); an arm whose
    every output is empty gets neither clause: its length and quality say nothing more."""
    text = unseen_weight_page(tmp_path, put_back="good", fix="stub")
    fix = next(line for line in text.splitlines() if "Fixing `unseen_weight` alone" in line)
    assert "brings the empty share down to pdl(alpha=1)'s, but costs bleu: 0% empty against pdl-official's 100%" in fix
    assert "; outputs average 1 word (pdl(alpha=1): 8) (EOS weight 1;" in fix
    empty_put_back = next(line for line in page.splitlines() if "Putting `unseen_weight=formula` back alone" in line)
    assert "empties 100% of outputs" in empty_put_back and "words" not in empty_put_back


def test_a_fix_sentence_says_why_a_quality_delta_it_prints_is_not_a_cost(tmp_path):
    """A quality drop the test examples resolve at one seed only is printed with the reason it is
    not called a cost, as the put-back sentence does (seed_disagreement)."""
    for seed, fix in ((0, "poor"), (1, "good")):
        add_point(tmp_path, "ce", {}, seed, "good", 1.0)
        add_point(tmp_path, "pdl-official", {}, seed, "empty", 1e7)
        add_point(tmp_path, "pdl", {"alpha": 1.0}, seed, "good", 1.0)
        add_point(tmp_path, "pdl", FIX_UNSEEN, seed, fix, 1.0)
    fix = next(line for line in page_of_plan(tmp_path).splitlines() if "Fixing `unseen_weight` alone" in line)
    assert "restores outputs: 0% empty against pdl-official's 100% (pdl(alpha=1): 0%); bleu -" in fix
    assert "against pdl(alpha=1); not every seed agrees: seed 1 +0 (EOS weight 1;" in fix


def test_arms_drawn_at_one_place_share_one_legible_label(tree):
    """ce, the unseen-weight fix and pdl(alpha=1) write the same outputs at both seeds, so they sit at
    one place on the plane: one label names all three, one a line, instead of three labels printed
    over each other; the all-empty arms, whose diversity is undefined, are named under the panel."""
    plan = read_plan(tree, ABLATION_PLAN_FILE)
    rungs = ablation.ladder(plan)
    (axis,) = ablation.plane_figure(ablation.ablation_tasks(tree, plan, rungs, SETTINGS), rungs).axes
    texts = sorted(text.get_text() for text in axis.texts)
    assert texts == sorted(["ce\nofficial + unseen_weight=neutral\npdl(alpha=1)",
                            "not placed (diversity undefined):\npdl-official\npdl + unseen_weight=formula"])

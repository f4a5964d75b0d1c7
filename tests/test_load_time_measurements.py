"""What a point measures while its trained model is loaded: the teacher-forced likelihood of the test
references by training-frequency bucket, the further (sampled) decoding, how each output ended, and
the token weights the loss applied. Points keep no weights, so these cannot be added later."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_evaluation import _dataset, _reference_ce


@pytest.fixture(scope="module")
def causal(tiny_causal_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_causal_dir), AutoTokenizer.from_pretrained(tiny_causal_dir)


@pytest.mark.parametrize("chunked", [False, True])
def test_token_scores_are_each_tokens_own_nll_and_top1(causal, chunked):
    import torch

    from harness.runner.evaluation import token_scores

    model, tokenizer = causal
    tokenizer.padding_side = "right"
    scores = token_scores(model, tokenizer, _dataset(), is_encoder_decoder=False, batch_size=3, chunked=chunked)
    expected_nll, expected_hit, expected_example = [], [], []
    with torch.no_grad():  # each example alone, unpadded, from the full logits
        for row, (ids, labels) in enumerate(zip(*(_dataset()[c] for c in ("input_ids", "labels")))):
            logits = model(torch.tensor([ids])).logits[0, :-1]
            targets = torch.tensor(labels[1:])
            keep = targets != -100
            expected_nll += torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="none").tolist()
            expected_hit += (logits[keep].argmax(-1) == targets[keep]).tolist()
            expected_example += [row] * int(keep.sum())
    assert scores.example.tolist() == expected_example
    np.testing.assert_allclose(scores.nll, expected_nll, rtol=1e-5)
    assert scores.correct.tolist() == expected_hit
    assert scores.nll.mean() == pytest.approx(_reference_ce(model), rel=1e-5)


@pytest.mark.parametrize("chunked", [False, True])
def test_bucket_nlls_weighted_by_token_counts_average_to_the_test_ce(causal, chunked):
    """The done-when: per-bucket NLLs, weighted by the buckets' token counts, give the teacher-forced
    CE that validation_ce computes on the same split by its own code."""
    from harness.metrics.likelihood import bucket_sums, likelihood_summary
    from harness.runner.evaluation import token_scores, validation_ce

    model, tokenizer = causal
    tokenizer.padding_side = "right"
    data = _dataset()
    scores = token_scores(model, tokenizer, data, is_encoder_decoder=False, batch_size=2, chunked=chunked)
    test_ce = validation_ce(model, tokenizer, data, is_encoder_decoder=False, batch_size=4, chunked=not chunked).ce
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    counts[12:20] = [60, 40, 20, 10, 5, 3, 1, 1]  # reference ids 12-19 frequent to rare; 20-23 unseen
    summary = likelihood_summary(bucket_sums(scores.example, scores.token, scores.nll, scores.correct, counts,
                                             len(data), n_buckets=4))
    rows = [b for b in summary["buckets"] if b["n_tokens"]]
    assert len(rows) >= 3 and summary["buckets"][-1]["bucket"] == "unseen"
    weighted = sum(b["n_tokens"] * b["nll"] for b in rows) / sum(b["n_tokens"] for b in rows)
    assert weighted == pytest.approx(test_ce, rel=1e-5)
    assert summary["test_ce"] == pytest.approx(test_ce, rel=1e-5)  # what a point records, by its own code
    for b in rows:
        assert 0 <= b["accuracy"] <= 1 and 0 < b["probability"] <= 1


def test_bucket_sums_by_hand():
    from harness.metrics.likelihood import bucket_sums, likelihood_summary

    counts = np.array([0, 9, 1])  # id 1: the frequent bucket 0; id 2: bucket 1 (rare); id 0 unseen
    sums = bucket_sums(example=[0, 0, 1, 1], token=[1, 2, 2, 0], nll=[1.0, 2.0, 4.0, 3.0],
                       correct=[True, False, True, False], train_counts=counts, n_examples=2, n_buckets=2)
    assert sums.tokens.tolist() == [[1, 1, 0], [0, 1, 1]]
    summary = likelihood_summary(sums)
    assert summary["test_ce"] == 2.5  # (1 + 2 + 4 + 3) / 4: every token once
    by_bucket = {b["bucket"]: b for b in summary["buckets"]}
    assert by_bucket[0]["nll"] == 1.0 and by_bucket[0]["accuracy"] == 1.0
    assert by_bucket[1]["nll"] == 3.0 and by_bucket[1]["accuracy"] == 0.5
    assert by_bucket[1]["probability"] == pytest.approx((np.exp(-2.0) + np.exp(-4.0)) / 2)
    assert by_bucket["unseen"]["n_tokens"] == 1 and summary["n_tokens"] == 4


def test_paired_bucket_deltas_are_the_per_bucket_differences():
    from harness.metrics.likelihood import bucket_sums, paired_bucket_deltas

    rng = np.random.default_rng(0)
    n, tokens_per = 30, 8
    example = np.repeat(np.arange(n), tokens_per)
    token = rng.integers(1, 6, size=example.size)
    counts = np.array([0, 100, 50, 20, 5, 1])
    nll = rng.uniform(0.5, 3.0, size=example.size)
    correct = rng.random(example.size) < 0.5
    base = bucket_sums(example, token, nll, correct, counts, n, n_buckets=3)
    lower_rare = bucket_sums(example, token, np.where(token >= 3, nll - 0.5, nll), correct, counts, n, n_buckets=3)
    same = paired_bucket_deltas([(base, base)], "nll", n_boot=200, seed=0)
    assert all(row["delta"] == 0 and row["p_value"] == 1 for row in same if row["delta"] is not None)
    moved = {row["bucket"]: row for row in paired_bucket_deltas([(base, lower_rare)] * 2, "nll", n_boot=200, seed=0)}
    # training mass 100/176 | 50/176 | 26/176: id 1 is bucket 0, id 2 bucket 1, ids 3-5 the last
    assert moved[0]["delta"] == pytest.approx(0) and moved[1]["delta"] == pytest.approx(0)
    rare = moved[2]
    assert rare["delta"] == pytest.approx(-0.5) and rare["ci_high"] < 0
    assert moved["unseen"]["delta"] is None  # no reference token is unseen


def test_a_resample_without_a_buckets_tokens_is_dropped_not_a_zero_delta():
    """A bucket whose tokens all sit in one test example is missing from about a third of the
    resamples: those have no delta (dropped), so they neither pull the interval towards 0 nor make
    an interval out of too few replicates (stats.MIN_FINITE_SHARE): the bucket gets none."""
    from harness.metrics.likelihood import bucket_sums, paired_bucket_deltas

    n = 20
    example, token = np.repeat(np.arange(n), 2), np.ones(2 * n, dtype=np.int64)
    token[1] = 2  # the one rare token, in example 0
    counts, nll, correct = np.array([0, 100, 1]), np.full(2 * n, 1.0), np.zeros(2 * n, dtype=bool)
    a = bucket_sums(example, token, nll, correct, counts, n, n_buckets=2)
    b = bucket_sums(example, token, np.where(token == 2, 0.5, nll), correct, counts, n, n_buckets=2)
    rare = paired_bucket_deltas([(a, b)], "nll", n_boot=200, seed=0)[1]
    assert rare["delta"] == pytest.approx(-0.5)
    assert np.isnan(rare["ci_low"]) and np.isnan(rare["p_value"])


def test_endings_count_up_to_the_first_end_token():
    import torch

    from harness.runner.generation import _endings

    new = torch.tensor([[5, 6, 2, 2], [5, 6, 7, 8], [2, 2, 2, 2]])
    assert _endings(new, 2, 4) == [(3, "eos"), (4, "max_new_tokens"), (1, "eos")]
    assert _endings(new, [9, 7], 4) == [(4, "max_new_tokens"), (3, "eos"), (4, "max_new_tokens")]


def test_sampled_decoding_is_reproducible_under_its_seed_and_differs_from_greedy(causal):
    from harness.runner.generation import generate_outputs
    from harness.task import DecodingSettings, GenerationConfig, TaskConfig

    model, tokenizer = causal
    prompts = [list(range(10, 10 + n)) for n in (7, 12, 3, 5, 9)]
    greedy = GenerationConfig(max_new_tokens=12)
    sampled = TaskConfig.model_fields["decodings"].default_factory()["sampled"].on_top_of(greedy)
    assert (sampled.do_sample, sampled.top_p, sampled.temperature, sampled.max_new_tokens) == (True, 0.9, 1.0, 12)
    assert DecodingSettings(top_p=0.5).on_top_of(greedy).do_sample is False  # unset keys: the task's

    def run(settings, seed):
        return generate_outputs(model, tokenizer, prompts, settings, is_encoder_decoder=False, batch_size=2,
                                seed=seed, progress=False)

    first, again = run(sampled, 0), run(sampled, 0)
    assert first == again
    assert [o.text for o in first] != [o.text for o in run(greedy, 0)]
    assert [o.text for o in first] != [o.text for o in run(sampled, 1)]
    assert all(o.stopped in ("eos", "max_new_tokens") and 1 <= o.new_tokens <= 12 for o in first)


def test_applied_weights_show_the_official_eos_weight():
    from harness.frequency import TokenFrequencies
    from harness.losses import LossContext, applied_weights, build_loss

    counts = np.array([0, 0, 8, 2, 0])  # id 1 = EOS is never counted, as in the official code
    frequencies = TokenFrequencies(counts=counts.astype(np.int64), source="all_text", tokenizer_fingerprint="t",
                                   data_fingerprint="d")
    context = LossContext(vocab_size=5, base_vocab_size=5, special_ids=frozenset({1}), is_encoder_decoder=False,
                          frequencies=frequencies)
    official = applied_weights(build_loss("pdl-official", {}, context), [1, 2, 3], eos_id=1)
    assert official["eos"] == pytest.approx(1e7) and official["max_token_id"] == 1
    assert official["min"] == pytest.approx(1 / (8 + 1e-7), rel=1e-6)
    fixed = applied_weights(build_loss("pdl", {"alpha": 1.0, "freq_source": "all_text"}, context), [1, 2, 3], eos_id=1)
    assert fixed["eos"] == 1.0 and fixed["max"] < 1e3  # special tokens neutral
    assert applied_weights(build_loss("ce", {}, context), [1, 2, 3], eos_id=1)["max"] == 1.0
    assert applied_weights(build_loss("unlikelihood", {}, context), [1, 2, 3], eos_id=1) is None


@pytest.mark.slow
def test_a_point_records_both_measurements_under_its_unchanged_identity(tiny_causal_dir, tmp_path):
    from harness.results import GENERATIONS_FILE, generations_file, read_metrics, read_provenance, read_token_scores
    from harness.runner.config import RunConfig
    from harness.runner.point import resolve, run_point
    import tiny

    task = tiny.build_style_task(tmp_path / "task", tiny_causal_dir)
    run = RunConfig(task=str(task), loss="pdl", loss_options={"alpha": 1.0}, seed=0)
    result = run_point(run, tmp_path / "results", progress=False)
    metrics, provenance = read_metrics(result.path), read_provenance(result.path)
    assert metrics.measured_at_load and metrics.token_likelihood is not None
    likelihood = metrics.token_likelihood
    weighted = sum(b.n_tokens * b.nll for b in likelihood.buckets if b.n_tokens) / likelihood.n_tokens
    assert weighted == pytest.approx(likelihood.test_ce, rel=1e-5)  # the buckets cover every token once
    # the recorded test CE is the stored token scores' (validation_ce's code agrees: the test above)
    assert likelihood.test_ce == pytest.approx(float(read_token_scores(result.path)["nll"].mean()), rel=1e-9)
    assert set(metrics.decodings) == {"sampled"} and set(metrics.decodings["sampled"].metrics) == set(metrics.metrics)
    greedy = [json.loads(line) for line in (result.path / GENERATIONS_FILE).read_text().splitlines()]
    sampled = [json.loads(line) for line in (result.path / generations_file("sampled")).read_text().splitlines()]
    assert [r["id"] for r in greedy] == [r["id"] for r in sampled]
    assert [r["prediction"] for r in greedy] != [r["prediction"] for r in sampled]
    assert all(r["stopped"] in ("eos", "max_new_tokens") for r in greedy + sampled)
    assert len(read_token_scores(result.path)["nll"]) == likelihood.n_tokens
    weights = provenance.model_extra["loss_weights"]
    assert weights["eos"] == 1.0 and weights["min"] <= weights["max"]
    # the default decodings stay out of the identity (no committed point is renamed); others enter it
    off = resolve(run.model_copy(update={"overrides": ["decodings={}"]}), tmp_path / "results")
    assert off.store.path != result.path
    assert resolve(run, tmp_path / "results").store.path == result.path


def test_a_point_of_the_earlier_format_reads_as_not_measured(tmp_path):
    from harness.results import PointMetrics

    earlier = PointMetrics.model_validate({"format": 2, "metrics": {}, "n_test": 3})
    assert not earlier.measured_at_load
    assert earlier.token_likelihood is None and earlier.decodings is None

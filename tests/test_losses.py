"""Loss family: exact reductions to CE, hand-computed weights, accumulation, precision, bad input."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import HarnessError
from harness.frequency import TokenFrequencies, frequencies_from_token_ids
from harness.losses import LOSSES, LossContext, build_loss, frequency_source, loss_context
from harness.losses.pdl import OFFICIAL_OPTIONS, official_choices

# Toy vocabulary of 5: id 0 is special (EOS-like) and never counted.
COUNTS = np.array([0, 5, 3, 1, 1], dtype=np.int64)
TOTAL = 10


def toy_context(source="targets", counts=COUNTS, *, seq2seq=False, base=5, size=None, vocab=None):
    freqs = TokenFrequencies(np.asarray(counts, dtype=np.int64), source, "tok", "data")
    size = size or len(counts)
    return LossContext(
        vocab_size=vocab or size, base_vocab_size=base, special_ids=frozenset({0}),
        is_encoder_decoder=seq2seq, frequencies=freqs, tokenizer_size=size, tokenizer_fingerprint="tok",
    )


def batch(seed=0, b=2, t=6, v=5, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, t, v, generator=gen) * 2).to(dtype).requires_grad_(True)
    labels = torch.randint(0, v, (b, t), generator=gen)
    labels[:, :2] = -100  # masked prompt, as in the pipeline
    labels[0, -1] = -100  # padding
    return logits, labels


def value_and_grad(loss_fn, logits, labels, num_items=None):
    logits = logits.detach().clone().requires_grad_(True)
    value = loss_fn({"logits": logits}, labels, num_items_in_batch=num_items)
    value.backward()
    return value.detach(), logits.grad


def nll_reference(logits, labels, shift):
    """Independent per-token -log p in float64 (numpy), with the positions that count."""
    x, y = logits.detach().double().numpy(), labels.numpy()
    if shift:
        x, y = x[:, :-1], y[:, 1:]
    lse = np.log(np.exp(x).sum(-1))
    mask = y != -100
    picked = np.take_along_axis(x, np.where(mask, y, 0)[..., None], -1)[..., 0]
    return (lse - picked) * mask, y, mask


# ---- alpha = 0 is CE exactly ------------------------------------------------------------------


@pytest.mark.parametrize("seq2seq", [False, True])
@pytest.mark.parametrize("normalization", ["corpus_mean", "batch_weight_sum"])
@pytest.mark.parametrize("unseen", ["neutral", "max_seen", "formula"])
def test_alpha_zero_equals_ce_values_and_gradients(seq2seq, normalization, unseen):
    ctx = toy_context(seq2seq=seq2seq)
    ce = build_loss("ce", None, ctx)
    pdl = build_loss("pdl", {"alpha": 0, "normalization": normalization, "unseen_weight": unseen,
                             "special_weight": "formula"}, ctx)
    assert torch.equal(pdl.token_weights, torch.ones(5))
    logits, labels = batch()
    v_ce, g_ce = value_and_grad(ce, logits, labels)
    v_pdl, g_pdl = value_and_grad(pdl, logits, labels)
    assert torch.equal(v_ce, v_pdl) and torch.equal(g_ce, g_pdl)
    if normalization == "corpus_mean":
        v_ce, g_ce = value_and_grad(ce, logits, labels, num_items=17)
        v_pdl, g_pdl = value_and_grad(pdl, logits, labels, num_items=17)
        assert torch.equal(v_ce, v_pdl) and torch.equal(g_ce, g_pdl)


def test_ce_matches_torch_and_shift_semantics():
    logits, labels = batch()
    causal = build_loss("ce", None, toy_context())
    seq2seq = build_loss("ce", None, toy_context(seq2seq=True))
    expected_causal = F.cross_entropy(logits[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1))
    expected_seq2seq = F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1))
    assert torch.allclose(causal({"logits": logits}, labels), expected_causal)
    assert torch.allclose(seq2seq({"logits": logits}, labels), expected_seq2seq)


# ---- hand-computed PDL weights and losses ---------------------------------------------------


def test_pdl_default_weights_by_hand():
    # raw 1/count for ids 1..4 = [1/5, 1/3, 1, 1]; mean over the 10 counted tokens = 4/10 -> divide by 0.4
    weights = build_loss("pdl", None, toy_context()).token_weights.double().numpy()
    assert np.allclose(weights, [1.0, 0.5, 5 / 6, 2.5, 2.5], rtol=1e-6)
    assert math.isclose(float((COUNTS * weights).sum() / TOTAL), 1.0, rel_tol=1e-6)


def test_pdl_relative_unit_and_alpha_half_by_hand():
    loss = build_loss("pdl", {"alpha": 0.5, "freq_unit": "relative", "eps": 0.1}, toy_context())
    raw = 1 / np.sqrt(COUNTS[1:] / TOTAL + 0.1)
    scale = (COUNTS[1:] * raw).sum() / TOTAL
    assert np.allclose(loss.token_weights.numpy(), [1.0, *(raw / scale)], rtol=1e-6)


@pytest.mark.parametrize("seq2seq", [False, True])
def test_pdl_losses_by_hand_for_each_normalization(seq2seq):
    logits, labels = batch(seed=3)
    nll, y, mask = nll_reference(logits, labels, shift=not seq2seq)
    w = np.array([1.0, 0.5, 5 / 6, 2.5, 2.5])[np.where(mask, y, 0)] * mask
    corpus = build_loss("pdl", None, toy_context(seq2seq=seq2seq))
    per_batch = build_loss("pdl", {"normalization": "batch_weight_sum"}, toy_context(seq2seq=seq2seq))
    out = {"logits": logits}
    assert math.isclose(corpus(out, labels).item(), (w * nll).sum() / mask.sum(), rel_tol=1e-5)
    assert math.isclose(corpus(out, labels, num_items_in_batch=40).item(), (w * nll).sum() / 40, rel_tol=1e-5)
    assert math.isclose(per_batch(out, labels).item(), (w * nll).sum() / w.sum(), rel_tol=1e-5)
    assert math.isclose(per_batch(out, labels, num_items_in_batch=40).item(), (w * nll).sum() / w.sum(), rel_tol=1e-5)
    assert corpus.scaled_for_grad_accumulation and not per_batch.scaled_for_grad_accumulation


def test_special_unseen_and_added_token_policies():
    # id 2 never counted (unseen); id 0 special; id 4 added after training (>= base vocab 4)
    counts = [2, 4, 0, 1, 3]
    ctx = toy_context(counts=counts, base=4)
    default = build_loss("pdl", None, ctx).token_weights.double().numpy()
    # neutral: ids 0 and 4 weigh 1 and their 5 counts are fixed at 1; ids 1, 3 share the other 5 tokens
    scale = (4 * (1 / 4) + 1 * 1) / 5
    assert np.allclose(default, [1.0, 0.25 / scale, 1.0, 1 / scale, 1.0], rtol=1e-6)
    assert math.isclose(float((np.array(counts) * default).sum() / 10), 1.0, rel_tol=1e-6)
    max_seen = build_loss("pdl", {"unseen_weight": "max_seen"}, ctx).token_weights.numpy()
    assert math.isclose(max_seen[2], 1 / scale, rel_tol=1e-6)
    formula = build_loss("pdl", {"unseen_weight": "formula", "special_weight": "formula"}, ctx)
    raw = 1 / (np.array(counts) + 1e-7)
    f_scale = (np.array(counts) * raw).sum() / 10
    assert np.allclose(formula.token_weights.double().numpy(), raw / f_scale, rtol=1e-5)
    assert formula.token_weights[2] > 1e6  # the official eps^-alpha, only when asked for
    clipped = build_loss("pdl", {"unseen_weight": "formula", "max_weight": 3.0, "min_weight": 0.7}, ctx)
    assert np.allclose(clipped.token_weights.numpy(), [1.0, 0.7, 3.0, 1 / scale, 1.0], rtol=1e-6)


def test_padded_model_vocab_gets_neutral_weights():
    loss = build_loss("pdl", None, toy_context(vocab=8))
    assert loss.token_weights.shape == (8,) and torch.equal(loss.token_weights[5:], torch.ones(3))
    with pytest.raises(HarnessError, match="logits have 5 classes"):
        loss({"logits": torch.zeros(1, 3, 5)}, torch.tensor([[-100, 1, 2]]))


# ---- pdl-official -------------------------------------------------------------------------


@pytest.mark.parametrize("seq2seq", [False, True])
def test_pdl_official_matches_hand_reference(seq2seq):
    ctx = toy_context(source="all_text", seq2seq=seq2seq)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = build_loss("pdl-official", None, ctx)
    assert any("encoder-decoder" in str(w.message) for w in caught) == seq2seq
    expected_w = 1 / (COUNTS + 1e-7)
    assert math.isclose(float(loss.token_weights[0]), 1e7, rel_tol=1e-6)
    assert np.allclose(loss.token_weights.double().numpy(), expected_w, rtol=1e-6)
    logits, labels = batch(seed=5)
    labels[1, 3] = 0  # a never-counted token (EOS) in the targets: it dominates, as in the official code
    nll, y, mask = nll_reference(logits, labels, shift=True)  # always shifts, even for seq2seq
    w = expected_w[np.where(mask, y, 0)] * mask
    expected = (w * nll).sum() / w.sum()
    got = loss({"logits": logits}, labels, num_items_in_batch=1000)  # ignored, as official
    assert math.isclose(got.item(), expected, rel_tol=1e-5)
    assert not loss.scaled_for_grad_accumulation


# The official arithmetic as `pdl` options: the ablation's rungs are `pdl` with named options, and
# its "official" end must be pdl-official itself (docs/losses: "The official arithmetic as options").
def test_the_official_choices_are_the_four_the_ablation_flips():
    assert official_choices() == {"freq_source": ("all_text", "targets"),
                                  "normalization": ("batch_weight_sum", "corpus_mean"),
                                  "special_weight": ("formula", "neutral"), "unseen_weight": ("formula", "neutral")}


def test_pdl_with_the_official_options_is_pdl_official_on_a_decoder_only_model(tiny_tokenizer, tiny_causal_dir):
    """Same weights up to one constant (pdl rescales its table to mean 1 over the counted tokens;
    pdl-official never rescales), so the same loss and gradients: batch_weight_sum divides by the
    batch's own weight sum and the constant cancels. Not bit for bit: w / scale rounds differently
    in float32, so loss and gradients agree to float32 rounding (rtol 1e-6), which is tested."""
    from transformers import AutoModelForCausalLM

    from harness.frequency import count_token_ids, tokenizer_fingerprint

    gen = torch.Generator().manual_seed(0)
    text_ids = torch.randint(5, len(tiny_tokenizer), (40, 12), generator=gen).tolist()
    counts = count_token_ids(text_ids, len(tiny_tokenizer))
    freqs = TokenFrequencies(counts, "all_text", tokenizer_fingerprint(tiny_tokenizer), "data")
    ctx = loss_context(tiny_tokenizer, is_encoder_decoder=False, frequencies=freqs)
    official, as_options = build_loss("pdl-official", None, ctx), build_loss("pdl", OFFICIAL_OPTIONS, ctx)

    base = ctx.base_vocab_size
    ratio = official.token_weights[:base].double() / as_options.token_weights[:base].double()
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-6)  # one constant for every token
    eos = tiny_tokenizer.eos_token_id
    assert counts[eos] == 0 and official.token_weights[eos] == pytest.approx(1e7)  # never counted: eps^-alpha

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_dir)
    ids = torch.randint(5, len(tiny_tokenizer), (3, 10), generator=gen)
    labels = ids.clone()
    labels[:, :4] = -100
    labels[0, -1] = eos  # the token whose 1e7 weight the official code applies
    results = []
    for loss_fn in (official, as_options):
        model.zero_grad()
        value = loss_fn(model(input_ids=ids), labels, num_items_in_batch=99)  # ignored by both: per micro-batch
        value.backward()
        results.append((value.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (v_off, g_off), (v_opt, g_opt) = results
    assert torch.allclose(v_off, v_opt, rtol=1e-6)
    # per parameter tensor, relative to its norm: the 1e7 EOS weight makes the other tokens' parts of
    # the gradient tiny, so element-wise tolerances would test float32 noise, not the arithmetic
    assert len(g_off) == len(g_opt) > 0
    assert all(float((a - b).norm()) <= 1e-5 * float(a.norm()) for a, b in zip(g_off, g_opt))
    assert official.scaled_for_grad_accumulation == as_options.scaled_for_grad_accumulation is False


def test_pdl_official_errors_on_added_token_ids():
    loss = build_loss("pdl-official", None, toy_context(source="all_text", base=4))
    with pytest.raises(HarnessError, match="past tokenizer.vocab_size=4"):
        loss({"logits": torch.zeros(1, 3, 5)}, torch.tensor([[-100, 1, 4]]))
    assert torch.isfinite(loss({"logits": torch.zeros(1, 3, 5)}, torch.tensor([[-100, 1, 3]])))


# ---- gradient accumulation, the Trainer's way -------------------------------------------------


@pytest.mark.parametrize("name,options", [
    ("ce", None), ("pdl", None), ("pdl", {"alpha": 0.5, "unseen_weight": "max_seen"}), ("face", None),
    ("focal", {"gamma": 2.0}), ("label-smoothing", None), ("unlikelihood", None),
])
def test_four_micro_batches_equal_one_batch(name, options):
    loss = build_loss(name, options, toy_context())
    logits, labels = batch(seed=7, b=8, t=7)
    total_items = int((labels[:, 1:] != -100).sum())  # what Trainer counts for a causal LM
    full, full_grad = value_and_grad(loss, logits, labels)
    leaf = logits.detach().clone().requires_grad_(True)
    accumulated = sum(
        loss({"logits": leaf[i : i + 2]}, labels[i : i + 2], num_items_in_batch=torch.tensor(total_items))
        for i in range(0, 8, 2)
    )
    accumulated.backward()
    assert torch.allclose(accumulated, full, rtol=1e-5, atol=1e-7)
    assert torch.allclose(leaf.grad, full_grad, rtol=1e-5, atol=1e-8)


# ---- low precision ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["ce", "pdl", "pdl-official", "focal", "unlikelihood", "label-smoothing"])
def test_low_precision_logits_stay_finite(dtype, name):
    source = "all_text" if name == "pdl-official" else "targets"
    loss = build_loss(name, None, toy_context(source=source))
    logits, labels = batch(seed=9)
    big = (logits.detach().float() * 30).to(dtype)  # saturating logits: log-softmax in half would lose it
    value, grad = value_and_grad(loss, big, labels)
    reference, _ = value_and_grad(loss, big.float(), labels)
    assert torch.isfinite(value) and torch.isfinite(grad.float()).all()
    assert value.dtype == torch.float32 and torch.allclose(value, reference, rtol=1e-5)


# ---- peers --------------------------------------------------------------------------------


def test_label_smoothing_equals_torch():
    logits, labels = batch(seed=11)
    loss = build_loss("label-smoothing", {"epsilon": 0.2}, toy_context(seq2seq=True))
    expected = F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1), label_smoothing=0.2)
    assert torch.allclose(loss({"logits": logits}, labels), expected, rtol=1e-6)


def test_focal_by_hand_and_gamma_zero_is_ce():
    logits, labels = batch(seed=12)
    ce = build_loss("ce", None, toy_context())
    focal0 = build_loss("focal", {"gamma": 0}, toy_context())
    v_ce, g_ce = value_and_grad(ce, logits, labels)
    v_f, g_f = value_and_grad(focal0, logits, labels)
    assert torch.equal(v_ce, v_f) and torch.equal(g_ce, g_f)
    nll, _, mask = nll_reference(logits, labels, shift=True)
    expected = ((1 - np.exp(-nll)) ** 2 * nll).sum() / mask.sum()
    focal2 = build_loss("focal", {"gamma": 2}, toy_context())
    assert math.isclose(focal2({"logits": logits}, labels).item(), expected, rel_tol=1e-5)


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9])
def test_focal_gamma_below_one_stays_finite_at_a_saturated_target(gamma):
    # float32 p == 1 exactly at target 0: (1 - p)^gamma has an infinite slope there for gamma < 1,
    # and 0 * inf was a NaN gradient. The true gradient of (1-p)^gamma * nll at p -> 1 is 0.
    loss = build_loss("focal", {"gamma": gamma}, toy_context())
    logits = torch.zeros(2, 4, 5)
    logits[..., 0] = 100.0
    labels = torch.tensor([[-100, 0, 0, 2], [-100, 0, 3, -100]])
    value, grad = value_and_grad(loss, logits, labels)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    saturated = F.pad(labels[:, 1:] == 0, (0, 1))  # the logits predicting a target 0
    assert torch.equal(grad[saturated], torch.zeros_like(grad[saturated]))
    assert value.item() == pytest.approx(200 / 5, rel=1e-6)  # 5 targets, 2 unsaturated: nll 100, factor 1
    # ordinary inputs: the same value and gradient as the plain formula
    logits, labels = batch(seed=12)
    value, grad = value_and_grad(loss, logits, labels)
    plain = logits.detach().clone().requires_grad_(True)
    nll = F.cross_entropy(plain[:, :-1].reshape(-1, 5), labels[:, 1:].reshape(-1), reduction="none")
    expected = ((1 - torch.exp(-nll)).pow(gamma) * nll).sum() / (labels[:, 1:] != -100).sum()
    expected.backward()
    assert torch.allclose(value, expected, rtol=1e-6) and torch.allclose(grad, plain.grad, rtol=1e-5, atol=1e-6)


def test_unlikelihood_by_hand_and_alpha_zero_is_ce():
    logits, labels = batch(seed=13, t=8)
    labels[0, 2:6] = torch.tensor([3, 3, 1, 3])  # repeats: candidates are a set, never the target itself
    ce = build_loss("ce", None, toy_context(seq2seq=True))
    ul0 = build_loss("unlikelihood", {"alpha_ul": 0}, toy_context(seq2seq=True))
    v_ce, g_ce = value_and_grad(ce, logits, labels)
    v_ul, g_ul = value_and_grad(ul0, logits, labels)
    assert torch.equal(v_ce, v_ul) and torch.equal(g_ce, g_ul)

    x = logits.detach().double()
    probs = torch.softmax(x, -1).numpy()
    total, n = 0.0, 0
    for b in range(labels.shape[0]):
        seen = []
        for t in range(labels.shape[1]):
            target = int(labels[b, t])
            if target == -100:
                continue
            total += -math.log(probs[b, t, target])
            total += 0.5 * sum(-math.log(1 - probs[b, t, c]) for c in set(seen) - {target})
            seen.append(target)
            n += 1
    ul = build_loss("unlikelihood", {"alpha_ul": 0.5}, toy_context(seq2seq=True))
    assert math.isclose(ul({"logits": logits}, labels).item(), total / n, rel_tol=1e-5)


def test_face_static_weights_by_hand():
    # special id 0 uncounted; RF = [0, .5, .3, .1, .1]; 1 - RF/.5 = [1, 0, .4, .8, .8]; mean .6
    weights = build_loss("face", None, toy_context()).token_weights.double().numpy()
    assert np.allclose(weights, [5 / 3, 0.0, 2 / 3, 4 / 3, 4 / 3], rtol=1e-6)


def test_face_online_counts_only_training_calls():
    loss = build_loss("face-online", None, toy_context(seq2seq=True))
    assert torch.equal(loss.token_weights, torch.ones(5))  # nothing counted yet: plain CE
    logits = torch.full((1, 3, 5), -5.0)
    logits[0, :, 1] = 5.0  # the model predicts token 1 everywhere
    labels = torch.tensor([[2, 3, -100]])
    with torch.no_grad():
        loss({"logits": logits}, labels)
    assert loss.counts.sum() == 0
    loss({"logits": logits.requires_grad_(True)}, labels)
    assert loss.counts[1] == 2 and loss.counts.sum() == 2
    # RF(1) = 1 -> weight 0, the rest 1, rescaled to mean 1 over 5 ids
    assert torch.allclose(loss.token_weights, torch.tensor([1.25, 0, 1.25, 1.25, 1.25]))


def test_face_online_counts_predictions_only_before_the_first_predicted_end():
    # FACE's code (clean_preds) cuts each predicted sequence at its first end token; what follows is
    # never counted. A sequence is a run of labels; a packed row holds several (id 0 is EOS here).
    a, b, eos = 1, 2, 0

    def logits_for(predicted):
        return (F.one_hot(torch.tensor(predicted), 5).float() * 10).requires_grad_(True)

    seq2seq = build_loss("face-online", None, toy_context(seq2seq=True))
    labels = torch.tensor([[3, 4, 3, 0, -100], [4, 4, 3, 3, 0]])
    seq2seq({"logits": logits_for([[a, eos, b, b, b], [b, a, a, eos, b]])}, labels)
    assert seq2seq.counts.tolist() == [0, 3, 1, 0, 0]
    packed = build_loss("face-online", None, toy_context())  # causal: logits[t] predicts labels[t + 1]
    labels = torch.tensor([[-100, -100, 3, 0, -100, -100, 4, 3, 0, -100]])
    packed({"logits": logits_for([[b, eos, b, b, b, a, eos, b, b, b]])}, labels)
    assert packed.counts.tolist() == [0, 1, 0, 0, 0]


# ---- against real models and the tokenizer ----------------------------------------------------


def test_ce_equals_model_loss_for_causal_and_seq2seq(tiny_tokenizer, tiny_causal_dir, tiny_seq2seq_dir):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    gen = torch.Generator().manual_seed(0)
    for directory, auto, seq2seq in [
        (tiny_causal_dir, AutoModelForCausalLM, False), (tiny_seq2seq_dir, AutoModelForSeq2SeqLM, True),
    ]:
        model = auto.from_pretrained(directory).eval()
        ids = torch.randint(5, len(tiny_tokenizer), (2, 9), generator=gen)
        labels = ids.clone()
        labels[:, :3] = -100
        with torch.no_grad():
            out = model(input_ids=ids, labels=labels)
        ctx = loss_context(tiny_tokenizer, is_encoder_decoder=seq2seq, model_vocab_size=model.config.vocab_size)
        assert torch.allclose(build_loss("ce", None, ctx)(out, labels), out.loss, rtol=1e-5)


def test_loss_context_from_tokenizer(tiny_tokenizer):
    ctx = loss_context(tiny_tokenizer, is_encoder_decoder=False)
    assert ctx.vocab_size == ctx.tokenizer_size == len(tiny_tokenizer)
    assert {tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id, 1} <= ctx.special_ids
    with pytest.raises(HarnessError, match="resize_token_embeddings"):
        loss_context(tiny_tokenizer, is_encoder_decoder=False, model_vocab_size=len(tiny_tokenizer) - 1)
    freqs = frequencies_from_token_ids([[10, 11, 11]], tiny_tokenizer, data_fingerprint="d")
    ctx = loss_context(tiny_tokenizer, is_encoder_decoder=False, frequencies=freqs)
    weights = build_loss("pdl", None, ctx).token_weights
    assert weights[tiny_tokenizer.eos_token_id] == 1.0 and weights[10] > weights[11]


# ---- bad input: one clear HarnessError each -----------------------------------------------


@pytest.mark.parametrize("options,match", [
    ({"alpha": -0.5}, r"alpha: Input should be greater than or equal to 0"),
    ({"eps": 0}, r"eps: Input should be greater than 0"),
    ({"alphaa": 1}, r"unknown option\(s\) 'alphaa'.*\n.*valid options: alpha, eps"),
    ({"normalization": "mean"}, r"normalization: Input should be 'corpus_mean' or 'batch_weight_sum'"),
    ({"min_weight": 2, "max_weight": 1}, r"min_weight 2.0 is above max_weight 1.0"),
])
def test_bad_options(options, match):
    with pytest.raises(HarnessError, match=match):
        build_loss("pdl", options, toy_context())


def test_unknown_loss_did_you_mean():
    with pytest.raises(HarnessError, match="did you mean 'pdl'"):
        build_loss("pld", None, toy_context())


def test_frequency_table_problems():
    base = toy_context()
    with pytest.raises(HarnessError, match="needs token frequencies"):
        build_loss("pdl", None, LossContext(5, 5, frozenset(), False))
    other_tok = LossContext(5, 5, frozenset(), False, base.frequencies, tokenizer_fingerprint="other")
    with pytest.raises(HarnessError, match="counted with another tokenizer"):
        build_loss("pdl", None, other_tok)
    wrong_size = LossContext(6, 6, frozenset(), False, base.frequencies)
    with pytest.raises(HarnessError, match="counted with another tokenizer"):
        build_loss("pdl", None, wrong_size)
    with pytest.raises(HarnessError, match="wants frequencies over 'all_text'"):
        build_loss("pdl-official", None, base)
    assert build_loss("pdl", {"freq_source": "all_text"}, toy_context(source="all_text")).config.freq_source == "all_text"


def test_frequency_source_for_runner_and_registry():
    assert frequency_source("ce", None) is None
    assert frequency_source("pdl", None) == "targets"
    assert frequency_source("pdl-official", None) == "all_text"
    assert {"ce", "pdl", "pdl-official", "face", "unlikelihood", "focal", "label-smoothing"} <= set(LOSSES.names())
    for name, spec in LOSSES.items():
        assert spec.config_cls.model_config.get("extra") == "forbid", name
        built = build_loss(name, None, toy_context(source=frequency_source(name, None) or "targets"))
        assert built.name == name and built.config == spec.config_cls(), name


def test_cli_lists_losses(capsys):
    import json

    from harness import cli

    assert cli.main(["losses", "--format", "json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(LOSSES.names())
    alpha = next(o for o in listed["pdl"]["options"] if o["name"] == "alpha")
    assert alpha["default"] == 1.0 and alpha["type"] == "float" and alpha["description"]
    assert listed["pdl"]["needs_frequencies"] and not listed["ce"]["needs_frequencies"]
    assert cli.main(["losses", "focal"]) == 0
    assert "gamma: float = 1.0" in capsys.readouterr().out


def _one_trainer_step(model_dir, loss_fn, batch_size, accumulation, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    gen = torch.Generator().manual_seed(1)
    rows = []
    for prompt_len in (2, 5, 3, 6):  # different target counts per example: a per-micro-batch mean would differ
        ids = torch.randint(5, loss_fn.context.vocab_size, (10,), generator=gen).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * prompt_len + ids[prompt_len:]})
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
        max_steps=1, learning_rate=1.0, optim="sgd", weight_decay=0.0, max_grad_norm=0.0, lr_scheduler_type="constant",
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, seed=0, dataloader_drop_last=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(rows), compute_loss_func=loss_fn)
    trainer.train()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_trainer_gradient_accumulation_matches_one_batch(tiny_tokenizer, tiny_causal_dir, tmp_path):
    freqs = frequencies_from_token_ids([list(range(5, 300)) * 2 + [7] * 50], tiny_tokenizer, data_fingerprint="d")
    ctx = loss_context(tiny_tokenizer, is_encoder_decoder=False, frequencies=freqs)
    loss_fn = build_loss("pdl", {"alpha": 0.5}, ctx)
    from transformers import AutoModelForCausalLM

    start = dict(AutoModelForCausalLM.from_pretrained(tiny_causal_dir).named_parameters())
    one = _one_trainer_step(tiny_causal_dir, loss_fn, 4, 1, tmp_path / "a")
    accumulated = _one_trainer_step(tiny_causal_dir, loss_fn, 2, 2, tmp_path / "b")
    assert any(not torch.equal(one[n], start[n]) for n in one)  # the step did move the weights
    for name in one:
        assert torch.allclose(one[name], accumulated[name], rtol=1e-4, atol=1e-6), name

"""SFT examples, batching and loss: the prompt is masked, the response + EOS is trained."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from ringrl.data.prompts import render_prompt
from ringrl.sft.data import SFTExample, bucket_batches, collate, encode_example, encode_rows
from ringrl.sft.loss import sft_loss


@pytest.fixture(scope="module")
def tok(ringrl_moe_dir):
    from ringrl.models import load_tokenizer

    return load_tokenizer(ringrl_moe_dir)


def test_encode_example_masks_exactly_the_prompt(tok):
    row = {"prompt": "What is 2 + 3?", "domain": "math", "response": "2 + 3 = 5. The answer is \\boxed{5}."}
    ex = encode_example(tok, row)
    prompt = render_prompt(tok, row)
    assert prompt.startswith("<|im_start|>user\nWhat is 2 + 3?\nPlease reason step by step")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert ex.n_prompt == len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert ex.input_ids[-1] == tok.eos_token_id
    batch = collate([ex], tok.pad_token_id)
    mask = batch["loss_mask"][0]
    assert mask.tolist() == [False] * ex.n_prompt + [True] * ex.n_target
    trained = batch["input_ids"][0][mask].tolist()
    assert tok.decode(trained[:-1]) == row["response"] and trained[-1] == tok.eos_token_id
    assert tok.decode(batch["input_ids"][0][~mask].tolist()) == prompt


def test_collate_right_pads():
    exs = [SFTExample([5, 6, 7, 8, 9], 2), SFTExample([5, 6, 7], 1)]
    b = collate(exs, pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert b["loss_mask"].int().tolist() == [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]]


def test_encode_rows_skips_too_long(tok):
    rows = [{"prompt": "p", "response": "short"}, {"prompt": "p", "response": "long " * 200}]
    exs, skipped = encode_rows(tok, rows, max_length=60)
    assert skipped == 1 and len(exs) == 1 and len(exs[0].input_ids) <= 60


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bucket_batches_budget_and_coverage(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(5, 120) for _ in range(500)]
    batches = bucket_batches(lengths, 400, random.Random(seed))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(500))  # every index exactly once
    assert all(len(b) * max(lengths[i] for i in b) <= 400 for b in batches)
    assert all(b for b in batches)
    # buckets keep padding small: at most 25% padded tokens overall on this spread
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert sum(lengths) / padded > 0.75
    assert bucket_batches(lengths, 400, random.Random(seed)) == batches  # seeded
    assert bucket_batches(lengths, 400, random.Random(seed + 10)) != batches


def test_bucket_batches_single_long_example_gets_its_own_batch():
    batches = bucket_batches([10, 400, 10], 400, random.Random(0))
    assert [1] in batches and sorted(i for b in batches for i in b) == [0, 1, 2]


def test_sft_loss_hand_computed():
    # B=1, T=4, V=3; prompt = first 2 tokens, targets = positions 2 and 3
    logits = torch.tensor([[[9.0, -3.0, 4.0], [1.0, 2.0, 3.0], [0.0, 0.0, math.log(2.0)], [5.0, 5.0, 5.0]]])
    ids = torch.tensor([[0, 1, 2, 0]])
    mask = torch.tensor([[False, False, True, True]])
    loss, m = sft_loss(logits, ids, mask, denominator=4.0)
    # position 2 (token 2) predicted by logits[1] = (1, 2, 3); position 3 (token 0) by logits[2] = (0, 0, ln 2)
    nll2 = -(3.0 - math.log(math.e + math.e**2 + math.e**3))
    nll3 = -(0.0 - math.log(1 + 1 + 2))
    assert float(m["tokens"]) == 2
    assert float(m["nll_sum"]) == pytest.approx(nll2 + nll3, abs=1e-6)
    assert float(loss) == pytest.approx((nll2 + nll3) / 4.0, abs=1e-6)


def test_sft_loss_ignores_prompt_logits_and_matches_cross_entropy():
    torch.manual_seed(0)
    B, T, V = 3, 9, 11
    logits = torch.randn(B, T, V, requires_grad=True)
    ids = torch.randint(0, V, (B, T))
    n_prompt, n_len = [2, 4, 1], [9, 7, 5]
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b in range(B):
        mask[b, n_prompt[b] : n_len[b]] = True
    denom = 17.0
    loss, m = sft_loss(logits, ids, mask, denom)
    # reference: F.cross_entropy with ignore_index on the shifted targets
    targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    ref = (
        F.cross_entropy(logits[:, :-1].reshape(-1, V), targets.reshape(-1), ignore_index=-100, reduction="sum") / denom
    )
    torch.testing.assert_close(loss, ref)
    assert int(m["tokens"]) == sum(n_len[b] - n_prompt[b] for b in range(B))
    # logits that predict prompt tokens or padding get no gradient; those predicting targets do
    loss.backward()
    g = logits.grad.abs().sum(-1)
    for b in range(B):
        for t in range(T):
            predicts_target = t + 1 < T and bool(mask[b, t + 1])
            assert (g[b, t] > 0) == predicts_target, (b, t)
    # and changing them leaves the loss unchanged
    with torch.no_grad():
        changed = logits.detach().clone()
        changed[0, 0, ids[0, 1]] += 100.0  # predicts prompt token 1
        changed[1, 7:, 3] -= 50.0  # predicts padding
        changed[0, -1, 0] += 7.0  # last position predicts nothing
    assert float(sft_loss(changed, ids, mask, denom)[0]) == pytest.approx(float(loss.detach()), abs=1e-6)
    changed[2, 1, ids[2, 2]] += 3.0  # predicts the second response token of row 2
    assert float(sft_loss(changed, ids, mask, denom)[0]) < float(loss.detach()) - 1e-3


def test_train_step_accumulation_equals_one_batch(ringrl_dense_dir):
    """Micro-batches with the step's global denominator give the one-batch gradient."""
    from ringrl.config import load_config
    from ringrl.models import load_policy
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import train_step

    model, tok = load_policy(ringrl_dense_dir, device="cpu")
    cfg = load_config(SFTConfig)
    rng = random.Random(0)
    exs = [
        SFTExample([rng.randrange(5, 200) for _ in range(n)], p) for n, p in [(12, 3), (20, 5), (7, 2), (15, 15 - 1)]
    ]
    whole = [collate(exs, tok.pad_token_id)]
    parts = [
        collate(exs[:1], tok.pad_token_id),
        collate(exs[1:3], tok.pad_token_id),
        collate(exs[3:], tok.pad_token_id),
    ]
    denom = sum(int(g["loss_mask"][:, 1:].sum()) for g in parts)
    assert denom == sum(e.n_target for e in exs)
    grads = []
    for group in (whole, parts):
        model.zero_grad(set_to_none=True)
        out = train_step(model, group, denom, cfg, False, 1, torch.device("cpu"))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        assert out["nll"] > 0
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], atol=1e-6, rtol=1e-4, msg=n)

"""Entropy of the policy on its own samples against closed forms and an independent forward pass."""

from __future__ import annotations

import math

import pytest
import torch

from ringrl.rollout import HFEngine
from ringrl.sft.evaluate import evaluate_policy


@pytest.fixture()
def policy(ringrl_moe_dir):
    from ringrl.models import load_policy

    return load_policy(ringrl_moe_dir, device="cpu")


ROWS = [
    {"prompt": "What is 12 + 7?", "domain": "math", "answer": "19"},
    {"prompt": "Sort these numbers from smallest to largest: 5, 3, 9.", "domain": "logic", "answer": "3, 5, 9"},
]


def test_uniform_logits_give_log_vocab(policy, ringrl_util):
    model, tok = policy
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied to the embeddings: every logit is 0 -> uniform distribution
    V = model.config.vocab_size
    engine = HFEngine(model, tok, batch_size=8)
    groups = engine.generate(
        ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"], n=3, temperature=1.0, max_new_tokens=6, seed=0
    )
    comps = groups[0]
    assert len(comps) == 3
    for c in comps:
        assert len(c.entropies) == len(c.token_ids) == len(c.logprobs) >= 1
        for h, lp in zip(c.entropies, c.logprobs):
            assert h == pytest.approx(math.log(V), abs=1e-5)
            assert lp == pytest.approx(-math.log(V), abs=1e-5)
    # temperature does not change a uniform distribution
    for c in engine.generate(["x"], n=2, temperature=0.5, max_new_tokens=4, seed=1)[0]:
        assert all(h == pytest.approx(math.log(V), abs=1e-5) for h in c.entropies)
    ev = evaluate_policy(
        model, tok, ROWS, ringrl_util.zero_grader, samples=2, temperature=1.0, max_new_tokens=5, batch_size=8
    )
    assert ev.entropy == pytest.approx(math.log(V), abs=1e-5)
    assert ev.samples == 4 and ev.problems == 2 and ev.accuracy == 0.0 and 1 <= ev.mean_length <= 5


def test_engine_entropies_and_logprobs_match_a_plain_forward(policy):
    """Engine entropies/log-probs at temperature T equal softmax(logits / T) of a fresh forward pass."""
    model, tok = policy
    torch.manual_seed(3)
    with torch.no_grad():  # sharpen the random model so the distribution is far from uniform
        model.lm_head.weight.mul_(40.0)
    model.eval()
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 3 + 4?"}], tokenize=False, add_generation_prompt=True
    )
    T = 0.7
    comps = HFEngine(model, tok).generate([prompt], n=2, temperature=T, max_new_tokens=8, seed=0)[0]
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    hs = []
    for c in comps:
        ids = torch.tensor([p_ids + c.token_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(p_ids) - 1 : -1] / T
        logp = torch.log_softmax(logits.double(), -1)
        ent = -(logp.exp() * logp).sum(-1)
        tok_lp = logp.gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(c.entropies, dtype=torch.float64), ent, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.tensor(c.logprobs, dtype=torch.float64), tok_lp, atol=1e-4, rtol=1e-4)
        hs.extend(c.entropies)
    assert min(hs) > 0 and max(hs) < math.log(model.config.vocab_size) - 0.5  # not uniform: the test has teeth


def test_evaluate_policy_accuracy_is_the_graders_mean(policy):
    model, tok = policy
    calls = []

    def grader(rows, responses):
        calls.append((list(rows), list(responses)))
        return [1.0 if r["domain"] == "math" else 0.0 for r in rows]

    ev = evaluate_policy(model, tok, ROWS, grader, samples=3, max_new_tokens=3, batch_size=6)
    assert ev.accuracy == pytest.approx(0.5)
    rows, responses = calls[0]
    assert [r["domain"] for r in rows] == ["math"] * 3 + ["logic"] * 3 and len(responses) == 6

"""The rollout engine samples exactly softmax(logits / T) under top-p / top-k, ignores a model's
generation config (but its EOS ids), reports the trainer's log-probs, drops finished sequences,
and is what evaluation samples with."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from scipy.stats import chi2
from transformers import PretrainedConfig

from ringrl.algorithms.types import Sample, SelectedSample
from ringrl.models.loading import load_policy
from ringrl.rl.update import build_micro_batches, sequence_logprobs
from ringrl.rollout import HFEngine, ignored_sampling_settings

# six live tokens, everything else at -inf; probabilities at T = 1 are softmax of these
LIVE = {10: 2.0, 11: 1.2, 12: 0.7, 13: 0.0, 14: -0.5, 15: -1.5}


class FixedLogits(torch.nn.Module):
    """A causal LM whose next-token logits never depend on the input; it fills a real KV cache
    (one dummy layer) and records the batch size of every decode call."""

    def __init__(self, V: int, live: dict[int, float], eos: int | None = None):
        super().__init__()
        self.config = PretrainedConfig(max_position_embeddings=4096, num_hidden_layers=1)
        self.generation_config = SimpleNamespace(eos_token_id=eos)
        z = torch.full((V,), float("-inf"))
        for t, v in live.items():
            z[t] = v
        self.z = torch.nn.Parameter(z, requires_grad=False)
        self.batch_sizes: list[int] = []

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, **kw):
        B, S = input_ids.shape
        self.batch_sizes.append(B)
        past_key_values.update(torch.zeros(B, 1, S, 1), torch.zeros(B, 1, S, 1), 0)
        return SimpleNamespace(logits=self.z.expand(B, S, -1))


def hand_probs(live: dict[int, float], T: float, top_p: float = 1.0, top_k: int = 0) -> dict[int, float]:
    """The configured distribution, computed independently in plain Python."""
    w = {t: math.exp(v / T) for t, v in live.items()}
    order = sorted(w, key=lambda t: -w[t])
    if top_k:
        order = order[:top_k]
    Z = sum(w[t] for t in order)
    kept, mass = [], 0.0
    for t in order:
        if mass >= top_p:
            break
        kept.append(t)
        mass += w[t] / Z
    Zk = sum(w[t] for t in kept)
    return {t: w[t] / Zk if t in kept else 0.0 for t in live}


def chi_square(counts: Counter, probs: dict[int, float]) -> tuple[float, int]:
    n = sum(counts.values())
    assert all(probs.get(t, 0.0) > 0 for t in counts), f"sampled a token of probability 0: {counts}"
    live = [t for t, p in probs.items() if p > 0]
    stat = sum((counts[t] - n * probs[t]) ** 2 / (n * probs[t]) for t in live)
    return stat, len(live) - 1


@pytest.fixture(scope="module")
def tok(ringrl_moe_dir):
    return load_policy(ringrl_moe_dir, "cpu")[1]


@pytest.mark.parametrize(
    "T,top_p,top_k",
    [(1.0, 1.0, 0), (0.6, 1.0, 0), (1.5, 1.0, 0), (1.0, 0.8, 0), (0.7, 0.9, 0), (1.0, 1.0, 3), (1.2, 0.7, 4)],
)
def test_token_frequencies_match_the_configured_distribution(tok, T, top_p, top_k):
    model = FixedLogits(len(tok), LIVE)
    engine = HFEngine(model, tok, batch_size=4000)
    groups = engine.generate(["hi"], n=500, temperature=T, top_p=top_p, top_k=top_k, max_new_tokens=8, seed=7)
    counts = Counter(t for c in groups[0] for t in c.token_ids)
    assert sum(counts.values()) == 4000
    probs = hand_probs(LIVE, T, top_p, top_k)
    stat, df = chi_square(counts, probs)
    assert stat < chi2.ppf(0.999, df), (stat, counts, probs)
    # teeth: the plain T = 1 distribution (or the untruncated one) is rejected by the same test
    wrong = hand_probs(LIVE, 1.0) if (T, top_p, top_k) != (1.0, 1.0, 0) else hand_probs(LIVE, 0.7)
    if any(p == 0 for p in probs.values()):
        assert any(counts[t] == 0 for t, p in probs.items() if p == 0)
        assert all(counts[t] == 0 for t, p in probs.items() if p == 0)
    else:
        assert chi_square(counts, wrong)[0] > chi2.ppf(0.999, df)


def test_reported_logprobs_and_entropy_are_of_softmax_over_temperature(tok):
    model = FixedLogits(len(tok), LIVE)
    T = 0.8
    c = HFEngine(model, tok).generate(["hi"], n=3, temperature=T, top_p=0.9, max_new_tokens=5, seed=0)[0][0]
    p = hand_probs(LIVE, T)
    ent = -sum(q * math.log(q) for q in p.values())
    for t, lp, h in zip(c.token_ids, c.logprobs, c.entropies):
        assert lp == pytest.approx(math.log(p[t]), abs=1e-5)
        assert h == pytest.approx(ent, abs=1e-5)


def test_greedy_is_argmax_and_finished_sequences_leave_the_batch(tok):
    eos = tok.eos_token_id
    live = {**LIVE, eos: 1.0}
    model = FixedLogits(len(tok), live, eos=eos)
    engine = HFEngine(model, tok, batch_size=64)
    g = engine.generate(["a", "b"], n=3, temperature=0.0, max_new_tokens=6, seed=0)
    assert all(c.token_ids == [10] * 6 and not c.finished for grp in g for c in grp)
    assert [len(grp) for grp in g] == [3, 3]
    model.batch_sizes.clear()
    groups = engine.generate(["a", "b"], n=16, temperature=1.0, max_new_tokens=12, seed=3)
    comps = [c for grp in groups for c in grp]
    for c in comps:
        assert (eos in c.token_ids) == c.finished
        if c.finished:
            assert c.token_ids.index(eos) == len(c.token_ids) - 1
    # prefill over the 2 distinct prompts, then decode calls over the running sequences only
    assert model.batch_sizes[0] == 2
    running = [sum(len(c.token_ids) > t for c in comps) for t in range(1, 12)]
    assert model.batch_sizes[1:] == [r for r in running if r > 0]
    assert model.batch_sizes[-1] < 32  # some finished early: the test has teeth


def test_generation_config_changes_nothing(ringrl_moe_dir, tmp_path):
    model_dir = tmp_path / "gc"
    shutil.copytree(ringrl_moe_dir, model_dir)
    gc_path = model_dir / "generation_config.json"
    gc = json.loads(gc_path.read_text()) if gc_path.is_file() else {}
    plain_model, tok = load_policy(ringrl_moe_dir, "cpu")
    gc.update(repetition_penalty=1.8, suppress_tokens=list(range(20, 120)), no_repeat_ngram_size=1, top_k=3)
    gc_path.write_text(json.dumps(gc))
    model, _ = load_policy(model_dir, "cpu")
    assert ignored_sampling_settings(model.generation_config).keys() == {
        "repetition_penalty",
        "suppress_tokens",
        "no_repeat_ngram_size",
        "top_k",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = HFEngine(model, tok)
    assert sum("repetition_penalty" in str(w.message) for w in caught) == 1
    prompts = ["<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"]
    kw = dict(n=4, temperature=1.0, max_new_tokens=16, seed=11)
    a = engine.generate(prompts, **kw)
    b = HFEngine(plain_model, tok).generate(prompts, **kw)
    assert [c.token_ids for c in a[0]] == [c.token_ids for c in b[0]]
    # teeth: the settings are live for transformers' generate (it never emits a suppressed token), not for us
    suppressed = set(range(20, 120))
    assert any(t in suppressed for c in a[0] for t in c.token_ids)
    enc = tok(prompts * 4, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    hf = model.generate(**enc, do_sample=True, max_new_tokens=16, pad_token_id=tok.pad_token_id)
    assert not suppressed & set(hf[:, enc["input_ids"].shape[1] :].flatten().tolist())


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_engine_logprobs_equal_the_trainers_forward(ringrl_moe_dir, attn):
    model, tok = load_policy(ringrl_moe_dir, "cpu")
    model.set_attn_implementation(attn)
    assert model.config._attn_implementation == attn
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)  # sharper than uniform, so a wrong position would show
    prompts = ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>user\nWhat is 12 + 7?"]
    T = 0.9
    groups = HFEngine(model, tok, batch_size=8).generate(prompts, n=4, temperature=T, max_new_tokens=12, seed=5)
    comps = [c for grp in groups for c in grp]
    sel = [
        SelectedSample(Sample("g", i, c.prompt_ids, c.token_ids, rollout_logprobs=c.logprobs), len(c.token_ids), 1.0)
        for i, c in enumerate(comps)
    ]
    assert comps[0].prompt_ids == tok(prompts[0], add_special_tokens=False)["input_ids"]
    diffs = []
    for mb in build_micro_batches(sel, tok.pad_token_id, 1 << 20):
        lp_BT = sequence_logprobs(model, mb, T)  # the trainer's forward, fp32
        mask = mb.weights_BT != 0
        diffs.append((lp_BT - mb.rollout_logprobs_BT)[mask].abs().max())
        assert float(lp_BT[mask].mean()) < -0.05  # real log-probs, not zeros
    assert float(torch.stack(diffs).max()) < 5e-6  # measured 4.8e-7


def test_eval_generator_is_the_rollout_engine(ringrl_moe_dir):
    from ringrl.eval import TransformersGenerator

    model, tok = load_policy(ringrl_moe_dir, "cpu")
    gen = TransformersGenerator(model, tok)
    assert isinstance(gen.engine, HFEngine)
    prompts = ["What is 2 + 3?\n"]
    kw = dict(temperature=1.0, top_p=0.95, max_new_tokens=6, seed=3)
    a = gen.generate(prompts, 3, **kw)
    b = HFEngine(model, tok, add_special_tokens=None).generate(prompts, n=3, **kw)
    assert [x.token_ids for x in a[0]] == [c.token_ids for c in b[0]]

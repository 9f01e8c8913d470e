"""The bounded-memory token pass (:func:`ringrl.models.forward.token_stats`): log-probs, entropies,
router logits and gradients equal plain transformers' full-logit computation (fp32, 1e-6),
for any chunk size and temperature, and no ``[tokens, V]`` tensor larger than one chunk is
ever allocated, in forward or backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from ringrl.models.forward import set_compute, token_stats
from ringrl.models.loading import load_policy
from ringrl.sft.loss import sft_loss, sft_loss_from_logprobs

T_SAMPLE = 0.7


def batch(vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids_BT = torch.randint(4, vocab, (3, 20), generator=g)
    attn_BT = torch.ones_like(ids_BT)
    attn_BT[0, 14:] = 0  # a right-padded row
    sel_BT = attn_BT[:, 1:] != 0
    sel_BT[1, :5] = False  # a "prompt" that is not trained
    w_BT = torch.rand(3, 19, generator=g) * sel_BT / sel_BT.sum()  # realistic scale: weights sum to ~0.5
    return ids_BT, attn_BT, sel_BT, w_BT


def objective(lp_BT, ent_BT, router, w_BT):
    """A loss using every output: weighted log-probs, an entropy bonus and a router term."""
    aux = sum(r.float().pow(2).mean() for r in router) if router else 0.0
    return -(w_BT * lp_BT).sum() - 0.1 * (w_BT * ent_BT).sum() + 1e-2 * aux


def reference(model, ids_BT, attn_BT, sel_BT, w_BT, temperature):
    """Plain transformers: full logits, fp32 log-softmax over the whole vocabulary."""
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids_BT, attention_mask=attn_BT, use_cache=False, output_router_logits=True)
    logp_BTV = F.log_softmax(out.logits[:, :-1].float() / temperature, dim=-1)
    lp_BT = logp_BTV.gather(-1, ids_BT[:, 1:, None]).squeeze(-1) * sel_BT
    ent_BT = -(logp_BTV.exp() * logp_BTV).sum(-1) * sel_BT
    router = tuple(getattr(out, "router_logits", None) or ())
    objective(lp_BT, ent_BT, router, w_BT).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return lp_BT.detach(), ent_BT.detach(), [r.detach() for r in router], grads


def ours(model, ids_BT, attn_BT, sel_BT, w_BT, temperature, chunk):
    model.zero_grad(set_to_none=True)
    st = token_stats(model, ids_BT, attn_BT, temperature=temperature, targets_mask_BT=sel_BT, chunk_tokens=chunk)
    objective(st.logprobs_BT, st.entropy_BT, st.router_logits, w_BT).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return st.logprobs_BT.detach(), st.entropy_BT.detach(), [r.detach() for r in st.router_logits], grads


@pytest.fixture(scope="module", params=["moe", "dense"])
def model(request, ringrl_moe_dir, ringrl_dense_dir):
    path = ringrl_moe_dir if request.param == "moe" else ringrl_dense_dir
    m, _ = load_policy(path, "cpu", "float32")
    return m.train()


@pytest.mark.parametrize("chunk", [1, 7, 64, 0])
@pytest.mark.parametrize("temperature", [1.0, T_SAMPLE])
def test_equals_full_logits_with_gradients(model, chunk, temperature):
    ids_BT, attn_BT, sel_BT, w_BT = batch(model.config.vocab_size)
    lp_a, ent_a, router_a, g_a = reference(model, ids_BT, attn_BT, sel_BT, w_BT, temperature)
    lp_b, ent_b, router_b, g_b = ours(model, ids_BT, attn_BT, sel_BT, w_BT, temperature, chunk)
    assert (lp_a - lp_b).abs().max() <= 1e-6 and (ent_a - ent_b).abs().max() <= 1e-5
    assert bool((lp_b[~sel_BT] == 0).all()) and bool((lp_b[sel_BT] < 0).all())
    assert len(router_a) == len(router_b) == (2 if "Moe" in type(model).__name__ else 0)
    assert all(torch.equal(a, b) for a, b in zip(router_a, router_b))
    assert g_a.keys() == g_b.keys() and len(g_a) > 5
    worst = max((g_a[n] - g_b[n]).abs().max().item() for n in g_a)
    assert worst <= 1e-6, worst


def test_sft_loss_from_the_chunked_pass_equals_cross_entropy(ringrl_moe_dir):
    model, _ = load_policy(ringrl_moe_dir, "cpu", "float32")
    ids_BT, attn_BT, _, _ = batch(model.config.vocab_size, seed=1)
    loss_mask_BT = attn_BT.clone()
    loss_mask_BT[:, :6] = 0  # prompt positions
    grads = []
    for chunked in (False, True):
        model.zero_grad(set_to_none=True)
        if chunked:
            st = token_stats(model, ids_BT, attn_BT, targets_mask_BT=loss_mask_BT[:, 1:] != 0, chunk_tokens=5)
            loss, m = sft_loss_from_logprobs(st.logprobs_BT, loss_mask_BT, denominator=40.0)
        else:
            logits = model(input_ids=ids_BT, attention_mask=attn_BT, use_cache=False).logits
            loss, m = sft_loss(logits, ids_BT, loss_mask_BT, denominator=40.0)
        loss.backward()
        grads.append(
            ({n: p.grad.clone() for n, p in model.named_parameters()}, float(loss.detach()), float(m["tokens"]))
        )
    (ga, la, na), (gb, lb, nb) = grads
    assert la == pytest.approx(lb, abs=1e-6) and na == nb
    assert max((ga[n] - gb[n]).abs().max().item() for n in ga) <= 1e-6


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator returns (forward and backward alike)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_full_vocabulary_tensor_in_forward_or_backward(ringrl_dense_dir):
    model, _ = load_policy(ringrl_dense_dir, "cpu", "float32")
    V = model.config.vocab_size
    ids_BT, attn_BT, sel_BT, w_BT = batch(V)
    n_tokens = int(sel_BT.sum())  # 44 trained targets
    sizes = {}
    for chunk in (4, 0):
        set_compute(model, head_chunk_tokens=chunk)
        with LargestTensor() as probe:
            st = token_stats(model, ids_BT, attn_BT, targets_mask_BT=sel_BT)
            objective(st.logprobs_BT, st.entropy_BT, (), w_BT).backward()
        sizes[chunk] = probe.largest
    embed = V * model.config.hidden_size  # the largest weight (and its gradient)
    assert sizes[4] <= max(embed, 4 * V)  # one chunk's [4, V] at most, never [tokens, V]
    assert sizes[0] >= n_tokens * V  # the full-logits path does allocate [B, T, V]: the probe sees it


def test_soft_capped_logits_are_detected(tmp_path, ringrl_moe_dir):
    """A model whose logits are not its head's output (Gemma-2 soft-caps them) is refused in one
    line naming model.head_chunk_tokens; with 0 (the model's own full logits) it is exact."""
    from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM

    from ringrl.errors import UserError

    tok = AutoTokenizer.from_pretrained(ringrl_moe_dir)
    cfg = Gemma2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        final_logit_softcapping=2.0,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(cfg)
    ids_BT, attn_BT, sel_BT, _ = batch(len(tok))
    with pytest.raises(UserError, match=r"model\.head_chunk_tokens=0"):
        token_stats(model, ids_BT, attn_BT, targets_mask_BT=sel_BT, chunk_tokens=8)
    st = token_stats(model, ids_BT, attn_BT, targets_mask_BT=sel_BT, chunk_tokens=0)
    with torch.no_grad():
        logits = model(input_ids=ids_BT, attention_mask=attn_BT, use_cache=False).logits
    ref = F.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids_BT[:, 1:, None]).squeeze(-1) * sel_BT
    assert (st.logprobs_BT.detach() - ref).abs().max() <= 1e-6


def test_a_pass_with_no_target_gives_every_parameter_a_zero_gradient(model):
    """A zero-weight pass (a data-parallel rank with no sequence, or padding the shorter ranks under
    FSDP) still back-propagates into every parameter the full pass reaches, the output head included
    (FSDP reduces only gradients that exist, so every rank must produce the same set); all are 0."""
    ids_BT, attn_BT, sel_BT, w_BT = batch(model.config.vocab_size)
    _, _, _, full = ours(model, ids_BT, attn_BT, sel_BT, w_BT, 1.0, 7)
    none_BT = torch.zeros_like(sel_BT)
    model.zero_grad(set_to_none=True)
    st = token_stats(model, ids_BT, attn_BT, targets_mask_BT=none_BT, chunk_tokens=7, router=False)
    (st.logprobs_BT.sum() + st.entropy_BT.sum()).backward()
    got = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    head = model.get_output_embeddings().weight
    assert head.grad is not None and torch.count_nonzero(head.grad) == 0
    assert set(full) <= set(got), set(full) - set(got)
    assert all(torch.count_nonzero(g) == 0 for g in got.values())

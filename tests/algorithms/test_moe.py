"""Eq. 5 (load balance) and Eq. 6 (router z-loss) against hand-computed values."""

import math

import pytest
import torch

from ringrl.algorithms.moe import expert_load, load_balance_loss, moe_aux_loss, router_z_loss

LN3, LN9 = math.log(3.0), math.log(9.0)
# 3 tokens, 2 experts. softmax rows: [3/4, 1/4], [1/4, 3/4], [9/10, 1/10]; top-1: e0, e1, e0.
LOGITS_TE = torch.tensor([[LN3, 0.0], [0.0, LN3], [LN9, 0.0]])


def test_load_balance_by_hand():
    # P = [(0.75+0.25+0.9)/3, (0.25+0.75+0.1)/3] = [1.9/3, 1.1/3]; F = [2/3, 1/3]
    # B = 2 * (1.9/3 * 2/3 + 1.1/3 * 1/3) = 2 * 4.9/9
    got = load_balance_loss([LOGITS_TE], top_k=1)
    assert got.item() == pytest.approx(2 * 4.9 / 9, abs=1e-6)


def test_load_balance_mask_excludes_padding():
    # Only tokens 0 and 1: P = [1/2, 1/2], F = [1/2, 1/2] -> B = 1.
    mask = torch.tensor([True, True, False])
    assert load_balance_loss([LOGITS_TE], 1, mask).item() == pytest.approx(1.0, abs=1e-6)
    assert load_balance_loss([LOGITS_TE], 1, torch.tensor([1, 1, 0])).item() == pytest.approx(1.0, abs=1e-6)
    # A [B, T] mask against [B*T, E] logits is flattened.
    assert load_balance_loss([LOGITS_TE[:2]], 1, torch.ones(1, 2)).item() == pytest.approx(1.0, abs=1e-6)


def test_load_balance_top_k_all_experts_is_one_and_layers_average():
    assert load_balance_loss([LOGITS_TE], top_k=2).item() == pytest.approx(1.0, abs=1e-6)
    both = load_balance_loss([LOGITS_TE, LOGITS_TE[:2]], top_k=1)
    assert both.item() == pytest.approx((2 * 4.9 / 9 + 1.0) / 2, abs=1e-6)


def test_load_balance_balanced_is_one_and_batch_size_independent():
    logits_TE = 3.0 * torch.eye(4)  # token i prefers expert i, symmetric probabilities
    assert load_balance_loss([logits_TE], 1).item() == pytest.approx(1.0, abs=1e-6)
    assert load_balance_loss([LOGITS_TE.repeat(5, 1)], 1).item() == pytest.approx(2 * 4.9 / 9, abs=1e-6)


def test_load_balance_gradient_flows_through_P_only():
    logits = LOGITS_TE.clone().requires_grad_(True)
    load_balance_loss([logits], 1).backward()
    # dB/dz_t = (N_e/M) * J_softmax(z_t) @ F, with F = [2/3, 1/3] held constant.
    f_E = torch.tensor([2 / 3, 1 / 3])
    p_TE = torch.softmax(LOGITS_TE, -1)
    expected = 2 / 3 * p_TE * (f_E - (p_TE * f_E).sum(-1, keepdim=True))
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_router_z_loss_by_hand():
    # logsumexp rows: ln 4, ln 4, ln 10
    expected = (2 * math.log(4) ** 2 + math.log(10) ** 2) / 3
    assert router_z_loss([LOGITS_TE]).item() == pytest.approx(expected, abs=1e-5)
    mask = torch.tensor([0, 1, 0])
    assert router_z_loss([LOGITS_TE], mask).item() == pytest.approx(math.log(4) ** 2, abs=1e-5)
    assert router_z_loss([LOGITS_TE, torch.zeros(2, 2)]).item() == pytest.approx(
        (expected + math.log(2) ** 2) / 2, abs=1e-5
    )


def test_expert_load_and_aux_loss():
    load = expert_load([LOGITS_TE, LOGITS_TE], top_k=1)
    assert load.shape == (2, 2)
    assert torch.allclose(load, torch.tensor([[2 / 3, 1 / 3]] * 2), atol=1e-6)
    loss, m = moe_aux_loss([LOGITS_TE], 1, alpha_balance=0.5, alpha_zloss=0.25)
    z = (2 * math.log(4) ** 2 + math.log(10) ** 2) / 3
    assert loss.item() == pytest.approx(0.5 * 2 * 4.9 / 9 + 0.25 * z, abs=1e-5)
    assert m["moe/max_expert_load"].item() == pytest.approx(2 / 3, abs=1e-6)


def test_dense_model_gives_zero():
    assert load_balance_loss([], 2).item() == 0.0
    assert router_z_loss([]).item() == 0.0
    loss, m = moe_aux_loss([], 2, alpha_balance=1.0, alpha_zloss=1.0)
    assert loss.item() == 0.0 and m["moe/max_expert_load"].item() == 0.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        load_balance_loss([LOGITS_TE], top_k=3)
    with pytest.raises(ValueError):
        load_balance_loss([LOGITS_TE], 1, torch.ones(4))


def test_matches_hugging_face_times_top_k():
    """Independent reference: HF's Mixtral load_balancing_loss_func is ours times top_k."""
    from transformers.models.mixtral import modeling_mixtral as mixtral

    g = torch.Generator().manual_seed(0)
    logits_TE = torch.randn(10, 6, generator=g)
    mask_BT = torch.tensor([[1] * 4 + [0], [1] * 5])
    for mask in (None, mask_BT):
        hf = mixtral.load_balancing_loss_func((logits_TE,), 6, 2, mask)
        ours = load_balance_loss([logits_TE], 2, mask)
        assert ours.item() * 2 == pytest.approx(float(hf), rel=1e-5)


def test_router_logits_of_a_tiny_hf_moe():
    """Shape contract with a real model: per-layer [B*T, E] logits and a [B, T] attention mask."""
    import transformers

    cfg = transformers.Qwen2MoeConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=16,
        moe_intermediate_size=8,
        shared_expert_intermediate_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2MoeForCausalLM(cfg)
    ids_BT = torch.randint(0, 32, (2, 5))
    mask_BT = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    out = model(input_ids=ids_BT, attention_mask=mask_BT, output_router_logits=True)
    assert len(out.router_logits) == 2 and out.router_logits[0].shape == (10, 4)
    loss, m = moe_aux_loss(out.router_logits, 2, mask_BT, alpha_balance=1.0, alpha_zloss=1.0)
    assert m["moe/expert_load"].shape == (2, 4)
    assert torch.allclose(m["moe/expert_load"].sum(-1), torch.ones(2))
    loss.backward()
    gate = model.model.layers[0].mlp.gate.weight
    assert gate.grad is not None and gate.grad.abs().sum() > 0

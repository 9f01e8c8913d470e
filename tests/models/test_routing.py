"""Routing capture and replay (ringrl.models.routing) on tiny random HF MoE models of four families.

Truth is independent of the module under test: the top-k of the router logits the model
returns, softmax/gather/normalise written out here per family, a hand-computed expert
mixture, and plain un-replayed forwards.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ringrl.algorithms.moe import load_balance_loss, moe_aux_loss
from ringrl.models.forward import forward as packed_forward
from ringrl.models.routing import (
    ROUTER_ADAPTERS,
    RoutingMismatchError,
    SoftmaxTopKRouter,
    moe_routers,
    num_moe_layers,
    record,
    register_router,
    replay,
    routing_agreement,
    routing_rows,
    split_rows,
)

VOCAB, HIDDEN, LAYERS, EXPERTS, TOP_K = 96, 64, 2, 6, 2
FAMILIES = ["qwen2_moe", "qwen3_moe", "olmoe", "mixtral"]
# Whether the family renormalises its top-k weights (written out here, not read from the adapter).
NORMALISES = {"qwen2_moe": True, "qwen3_moe": True, "olmoe": False, "mixtral": True}


class _Tok:
    """The three things ringrl.models.tiny.build_model reads from a tokenizer."""

    pad_token_id = 0
    eos_token_id = 1

    def __len__(self) -> int:
        return VOCAB


def _build(family: str) -> nn.Module:
    import transformers as tf

    common = dict(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_experts_per_tok=TOP_K,
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    if family == "qwen2_moe":
        from ringrl.models.tiny import TinyModelConfig, build_model

        cfg = TinyModelConfig(
            hidden_size=HIDDEN,
            num_layers=LAYERS,
            num_heads=4,
            num_kv_heads=2,
            num_experts=EXPERTS,
            experts_per_token=TOP_K,
            expert_size=32,
            shared_expert_size=64,
            max_positions=128,
        )
        model = build_model(cfg, _Tok())
    elif family == "qwen3_moe":
        model = tf.Qwen3MoeForCausalLM(
            tf.Qwen3MoeConfig(
                **common,
                intermediate_size=64,
                moe_intermediate_size=32,
                head_dim=16,
                num_experts=EXPERTS,
                norm_topk_prob=True,
                decoder_sparse_step=1,
            )
        )
    elif family == "olmoe":
        model = tf.OlmoeForCausalLM(
            tf.OlmoeConfig(**common, intermediate_size=32, num_experts=EXPERTS, norm_topk_prob=False)
        )
    else:
        model = tf.MixtralForCausalLM(tf.MixtralConfig(**common, intermediate_size=32, num_local_experts=EXPERTS))
    model.eval()
    return model


_MODELS: dict[str, nn.Module] = {}


@pytest.fixture(params=FAMILIES)
def family_model(request: pytest.FixtureRequest) -> tuple[str, nn.Module]:
    """One tiny model per family, built once per test session (tests only read or re-zero grads)."""
    if request.param not in _MODELS:
        _MODELS[request.param] = _build(request.param)
    model = _MODELS[request.param]
    model.zero_grad(set_to_none=True)
    return request.param, model


def _ids(rows: int, cols: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, VOCAB, (rows, cols), generator=g)


def _shifted(routing: torch.Tensor) -> torch.Tensor:
    """Every token routed to a different expert set: each index + 1 mod E (k < E, so the set changes)."""
    return (routing.long() + 1) % EXPERTS


def _experts_of_layer0(model: nn.Module) -> nn.Module:
    return model.model.layers[0].mlp.experts


def _same_sets(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.long().sort(-1).values, b.long().sort(-1).values)


def test_four_families_have_routers(family_model):
    _, model = family_model
    assert num_moe_layers(model) == LAYERS
    assert [type(m).__name__ for m, _ in moe_routers(model)] == [type(moe_routers(model)[0][0]).__name__] * LAYERS


def test_record_equals_topk_of_returned_router_logits(family_model):
    _, model = family_model
    ids = _ids(2, 7)
    with torch.no_grad(), record(model) as rec:
        out = model(input_ids=ids, output_router_logits=True)
    calls = rec.calls()
    assert len(calls) == 1
    routing = calls[0]
    assert routing.shape == (LAYERS, 2 * 7, TOP_K) and routing.dtype == torch.int16
    for layer, logits_NE in enumerate(out.router_logits):
        assert logits_NE.shape == (14, EXPERTS)
        # no ties: the top-k is well defined (tiny random routers could in principle tie)
        top = logits_NE.topk(TOP_K + 1, dim=-1).values
        assert bool((top[:, TOP_K - 1] > top[:, TOP_K]).all())
        assert _same_sets(routing[layer], logits_NE.topk(TOP_K, dim=-1).indices)


def test_replay_of_recorded_routing_is_identity(family_model):
    _, model = family_model
    ids = _ids(3, 6)
    with torch.no_grad(), record(model) as rec:
        plain = model(input_ids=ids, output_router_logits=True)
    routing = rec.calls()[0]
    with torch.no_grad(), replay(model, routing) as handle, record(model) as rec2:
        again = model(input_ids=ids, output_router_logits=True)
    assert torch.equal(rec2.calls()[0], routing)  # the routing in force is the recorded one
    assert torch.equal(handle.natural_calls()[0].to(routing.dtype), routing)
    assert torch.equal(again.logits, plain.logits)
    for a, b in zip(again.router_logits, plain.router_logits):
        assert torch.equal(a, b)


def test_replay_of_free_rows_is_identity(family_model):
    _, model = family_model
    ids = _ids(2, 5)
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        free = torch.full((LAYERS, 10, TOP_K), -1)
        with replay(model, free):
            again = model(input_ids=ids).logits
    assert torch.equal(again, plain)


def test_different_routing_changes_output_and_gate_weights_are_recomputed(family_model):
    family, model = family_model
    ids = _ids(2, 6)
    with torch.no_grad(), record(model) as rec:
        plain = model(input_ids=ids, output_router_logits=True)
    forced = _shifted(rec.calls()[0])  # [L, N, k]

    seen: dict[str, torch.Tensor] = {}

    def grab(module, args, kwargs, output):
        hidden, idx, weights = (list(args) + [kwargs.get(k) for k in ("top_k_index", "top_k_weights")])[:3]
        seen.update(hidden=hidden, idx=idx, weights=weights, output=output)

    h = _experts_of_layer0(model).register_forward_hook(grab, with_kwargs=True)
    try:
        # record entered before replay still records the routing in force
        with torch.no_grad(), record(model) as rec_outer, replay(model, forced):
            out = model(input_ids=ids, output_router_logits=True)
    finally:
        h.remove()
    assert torch.equal(rec_outer.calls()[0].long(), forced)

    assert (out.logits - plain.logits).abs().max() > 1e-4  # other experts, other output
    # layer 0 sees the same input, so its router logits are the un-replayed ones
    assert torch.equal(out.router_logits[0], plain.router_logits[0])

    # the experts of layer 0 got exactly the replayed experts ...
    assert torch.equal(seen["idx"].long(), forced[0])
    # ... with weights softmax(current logits) gathered there, normalised as the family does
    probs = torch.softmax(out.router_logits[0].float(), dim=-1)
    want = probs.gather(-1, forced[0])
    if NORMALISES[family]:
        want = want / want.sum(-1, keepdim=True)
    torch.testing.assert_close(seen["weights"].float(), want, rtol=0, atol=1e-6)
    if not NORMALISES[family]:
        assert bool((seen["weights"].sum(-1) < 1 - 1e-3).all())  # the un-normalised branch really ran

    # hand-computed mixture: sum_j w_j * SwiGLU-expert_{S_j}(x)
    experts = _experts_of_layer0(model)
    x = seen["hidden"]
    mix = torch.zeros_like(x)
    for n in range(x.shape[0]):
        for j in range(TOP_K):
            e = int(forced[0, n, j])
            gate, up = (experts.gate_up_proj[e] @ x[n]).chunk(2)
            mix[n] += want[n, j] * (experts.down_proj[e] @ (F.silu(gate) * up))
    torch.testing.assert_close(seen["output"], mix, rtol=1e-5, atol=1e-6)


def test_gradients_reach_the_router_under_replay(family_model):
    _, model = family_model
    ids = _ids(2, 6)
    targets = _ids(2, 6, seed=2)
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    routing = rec.calls()[0]
    routers = [m for m, _ in moe_routers(model)]

    def router_grads(forced: torch.Tensor | None) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        if forced is None:
            logits = model(input_ids=ids).logits
        else:
            with replay(model, forced):
                logits = model(input_ids=ids).logits
        F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)).backward()
        return [m.weight.grad.clone() for m in routers]

    plain = router_grads(None)
    same = router_grads(routing)
    for a, b in zip(same, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    for g in router_grads(_shifted(routing)):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_replay_composes_with_load_balance_term(family_model):
    _, model = family_model
    ids = _ids(2, 6)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[0, :2] = 0
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    forced = _shifted(rec.calls()[0])
    model.zero_grad(set_to_none=True)
    with replay(model, forced):
        out = model(input_ids=ids, attention_mask=mask, output_router_logits=True)
        aux, metrics = moe_aux_loss(out.router_logits, TOP_K, mask, alpha_balance=1.0, alpha_zloss=1e-2)
        aux.backward()
    assert torch.isfinite(aux) and aux > 0
    assert metrics["moe/balance_loss"] == load_balance_loss(out.router_logits, TOP_K, mask).detach()
    for m, _ in moe_routers(model):
        assert m.weight.grad is not None and torch.isfinite(m.weight.grad).all() and m.weight.grad.abs().sum() > 0


def test_kv_cache_generation_record_equals_full_forward(family_model):
    _, model = family_model
    prompts = _ids(3, 5, seed=3)
    prompt_mask = torch.ones(3, 5, dtype=torch.long)
    prompt_mask[1, :2] = 0  # left padding
    prompts[1, :2] = 0
    new = 6
    with torch.no_grad(), record(model) as rec:
        seqs = model.generate(
            input_ids=prompts,
            attention_mask=prompt_mask,
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=1,
        )
    assert seqs.shape == (3, 5 + new)
    assert len(rec.calls()) == new  # prefill + (new - 1) decode steps; the last token is never fed
    gen_LBTk = rec.by_row(3)
    assert gen_LBTk.shape == (LAYERS, 3, 5 + new - 1, TOP_K)

    full_mask = torch.cat([prompt_mask, torch.ones(3, new, dtype=torch.long)], dim=1)
    with torch.no_grad(), record(model) as rec_full:
        model(input_ids=seqs, attention_mask=full_mask)
    full_LBTk = rec_full.by_row(3)[:, :, :-1]
    keep_BT = full_mask[:, :-1].bool()
    assert routing_agreement(gen_LBTk, full_LBTk, keep_BT) == 1.0

    # per-sequence routing (padding dropped) replays on the un-padded sequence
    per_seq = split_rows(gen_LBTk, keep_BT)
    assert [r.shape[1] for r in per_seq] == [10, 8, 10]
    seq1 = seqs[1:2, 2:]  # [1, 9]
    with torch.no_grad():
        plain = model(input_ids=seq1).logits
        with replay(model, routing_rows([per_seq[1]], [(0, 0)], (1, 9))) as handle:
            again = model(input_ids=seq1).logits
    torch.testing.assert_close(again, plain, rtol=1e-5, atol=1e-5)
    assert routing_agreement(per_seq[1], handle.natural_calls()[0][:, :8]) == 1.0


def test_micro_batch_replays_rows_of_the_recorded_batch(family_model):
    _, model = family_model
    ids = _ids(4, 6, seed=4)
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    forced_LBTk = _shifted(rec.by_row(4))  # a routing the model would not choose, so alignment matters
    with torch.no_grad():
        with replay(model, forced_LBTk):
            whole = model(input_ids=ids).logits
        rows = [1, 3]
        with replay(model, forced_LBTk[:, rows]), record(model) as rec_mb:
            part = model(input_ids=ids[rows]).logits
    assert torch.equal(rec_mb.by_row(2), forced_LBTk[:, rows].to(torch.int16))
    torch.testing.assert_close(part, whole[rows], rtol=1e-5, atol=1e-5)


def test_padded_and_packed_rows_replay_per_sequence_routing():
    model = _MODELS.get("qwen2_moe") or _MODELS.setdefault("qwen2_moe", _build("qwen2_moe"))
    a, b = _ids(1, 5, seed=5), _ids(1, 4, seed=6)
    ref, routings = [], []
    with torch.no_grad():
        for seq in (a, b):
            with record(model) as rec:
                model(input_ids=seq)
            forced = _shifted(rec.by_row(1))[:, 0]  # [L, T_i, k]
            with replay(model, forced[:, None]):
                ref.append(model(input_ids=seq).logits[0])
            routings.append(forced)

        # left-padded batch [2, 5]: b sits at columns 1..4, column 0 of row 1 is free padding
        ids = torch.cat([a, torch.cat([torch.zeros(1, 1, dtype=torch.long), b], 1)])
        mask = torch.ones(2, 5, dtype=torch.long)
        mask[1, 0] = 0
        with replay(model, routing_rows(routings, [(0, 0), (1, 1)], (2, 5))):
            padded = model(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(padded[0], ref[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(padded[1, 1:], ref[1], rtol=1e-5, atol=1e-5)

        # packed row [1, 9]: a then b, positions restart at b
        packed_ids = torch.cat([a, b], 1)
        pos = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])
        with replay(model, routing_rows(routings, [(0, 0), (0, 5)], (1, 9))):
            packed, _ = packed_forward(model, packed_ids, torch.ones_like(packed_ids), pos)
        torch.testing.assert_close(packed[0, :5], ref[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(packed[0, 5:], ref[1], rtol=1e-5, atol=1e-5)


def test_mismatches_are_clear_errors():
    model = _MODELS.get("qwen2_moe") or _MODELS.setdefault("qwen2_moe", _build("qwen2_moe"))
    ids = _ids(2, 7)
    good = torch.zeros(LAYERS, 14, TOP_K, dtype=torch.long)
    good[..., 1] = 1
    with pytest.raises(RoutingMismatchError, match="routes 12 tokens .* has 14"), torch.no_grad(), replay(model, good):
        model(input_ids=ids[:, :6])
    with pytest.raises(RoutingMismatchError, match="3 MoE layers but the model has 2"), replay(model, good[[0, 1, 0]]):
        pass
    three = torch.stack([good[..., 0], good[..., 1], good[..., 1] + 1], -1)
    with pytest.raises(RoutingMismatchError, match="k=3"), replay(model, three):
        pass
    bad = good.clone()
    bad[1, 3, 0] = EXPERTS
    with pytest.raises(RoutingMismatchError, match="out of range"), replay(model, bad):
        pass
    bad = good.clone()
    bad[0, 2] = 4
    with pytest.raises(RoutingMismatchError, match="same expert twice"), replay(model, bad):
        pass
    bad = good.clone()
    bad[0, 2, 0] = -1
    with pytest.raises(RoutingMismatchError, match="some but not all"), replay(model, bad):
        pass
    with pytest.raises(RoutingMismatchError, match="does not fit the batch 1x4"):
        routing_rows([good[:, :3]], [(0, 2)], (1, 4))
    # hooks are removed after an error: the model routes freely again
    with torch.no_grad():
        model(input_ids=ids[:, :6])


def test_dense_model_is_refused_by_name():
    import transformers as tf

    dense = tf.Qwen2ForCausalLM(
        tf.Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1)
    )  # fmt: skip
    with pytest.raises(RoutingMismatchError, match="no supported MoE router in Qwen2ForCausalLM"), record(dense):
        pass


def test_routing_agreement_by_hand():
    recorded = torch.tensor([[[0, 1], [2, 3], [-1, -1], [4, 5]]])  # [L=1, N=4, k=2]
    current = torch.tensor([[[1, 0], [2, 0], [3, 1], [4, 5]]])
    assert routing_agreement(recorded, current) == pytest.approx(2 / 3)  # free row 2 not counted
    assert routing_agreement(recorded, current, torch.tensor([1, 1, 1, 0])) == pytest.approx(1 / 2)
    assert torch.isnan(torch.tensor(routing_agreement(recorded, current, torch.tensor([0, 0, 1, 0]))))
    with pytest.raises(RoutingMismatchError, match="differ in shape"):
        routing_agreement(recorded, current[:, :3])


class ToyRouter(nn.Module):
    """A router outside the registry: dense [N, E] scores, no renormalisation."""

    def __init__(self) -> None:
        super().__init__()
        self.top_k, self.num_experts = 2, 4
        self.weight = nn.Parameter(torch.randn(4, 8))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = x.reshape(-1, 8) @ self.weight.T
        probs = logits.softmax(-1)
        val, idx = probs.topk(2, -1)
        return logits, torch.zeros_like(probs).scatter(-1, idx, val), idx


def test_register_router_for_another_family(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(ROUTER_ADAPTERS, "ToyRouter", ROUTER_ADAPTERS["OlmoeTopKRouter"])  # cleaned up after
    register_router("ToyRouter", SoftmaxTopKRouter(normalize_attr=None))
    torch.manual_seed(0)
    model = nn.Sequential(ToyRouter())
    x = torch.randn(5, 8)
    forced = torch.tensor([[[0, 3]] * 5])
    with replay(model, forced):
        logits, scores, idx = model(x)
    assert torch.equal(idx, forced[0])
    want = torch.zeros(5, 4).scatter(-1, forced[0], logits.softmax(-1).gather(-1, forced[0]))
    torch.testing.assert_close(scores, want)


def test_record_refuses_a_dtype_too_small_for_the_experts():
    model = _MODELS.get("olmoe") or _MODELS.setdefault("olmoe", _build("olmoe"))
    with pytest.raises(RoutingMismatchError, match="cannot hold expert indices"), record(model, dtype=torch.float32):
        pass
    with pytest.raises(RoutingMismatchError, match="must be integers"), replay(model, torch.zeros(LAYERS, 4, TOP_K)):
        pass


def test_dense_layers_are_not_counted():
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.Qwen2MoeConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=32, moe_intermediate_size=16,
        shared_expert_intermediate_size=32, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
        num_experts=4, num_experts_per_tok=2, mlp_only_layers=[1],
    )  # fmt: skip
    model = tf.Qwen2MoeForCausalLM(cfg).eval()
    ids = _ids(1, 5)
    with torch.no_grad(), record(model) as rec:
        out = model(input_ids=ids, output_router_logits=True)
    assert num_moe_layers(model) == 2 and len(out.router_logits) == 2
    routing = rec.calls()[0]
    for layer in range(2):  # MoE layer 1 is decoder layer 2
        assert _same_sets(routing[layer], out.router_logits[layer].topk(2, dim=-1).indices)


def _replayed_router_grads(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor, forced: torch.Tensor):
    """Sum-reduced cross-entropy under replay of ``forced`` ([L, B, T, k]); the routers' gradients."""
    model.zero_grad(set_to_none=True)
    with replay(model, forced):
        logits = model(input_ids=ids).logits
        F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1), reduction="sum").backward()
    return [m.weight.grad.clone() for m, _ in moe_routers(model)]


def test_gradient_accumulation_over_micro_batches_equals_the_whole_batch(family_model):
    _, model = family_model
    ids, targets = _ids(4, 6, seed=7), _ids(4, 6, seed=8)
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    forced = _shifted(rec.by_row(4))
    whole = _replayed_router_grads(model, ids, targets, forced)
    parts = [_replayed_router_grads(model, ids[r], targets[r], forced[:, r]) for r in ([0, 2], [1, 3])]
    for w, a, b in zip(whole, *parts):
        torch.testing.assert_close(a + b, w, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_recomputation_is_replayed():
    model = _MODELS.get("qwen2_moe") or _MODELS.setdefault("qwen2_moe", _build("qwen2_moe"))
    ids, targets = _ids(2, 6, seed=9), _ids(2, 6, seed=10)
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    forced = _shifted(rec.by_row(2))
    want = _replayed_router_grads(model, ids, targets, forced)
    model.train()  # checkpointing only runs in training mode (no dropout in these configs)
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        got = _replayed_router_grads(model, ids, targets, forced)
        # backward outside the context recomputes with free routing: torch notices the different graph
        with replay(model, forced):
            logits = model(input_ids=ids).logits
        with pytest.raises(torch.utils.checkpoint.CheckpointError):
            F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)).backward()
    finally:
        getattr(model, "activation_checkpointing_disable", model.gradient_checkpointing_disable)()
        model.eval()
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def _ddp_rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One data-parallel rank: replay its rows' routing under DDP, save the all-reduced router grads.

    The DDP wrapper lives only inside ``_ddp_step``: freed there, while the group is alive, and then
    ``close_distributed`` (barrier, destroy). A wrapper still alive at teardown aborted a rank in CI
    (``terminate called without an active exception``)."""
    import torch.distributed as dist

    from ringrl.distributed import close_distributed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    ok = False
    try:
        _ddp_step(rank, world, out_dir)
        ok = True
    finally:
        close_distributed(clean=ok)


def _ddp_step(rank: int, world: int, out_dir: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    model = _build("qwen2_moe")
    ids, targets = _ids(4, 6, seed=11), _ids(4, 6, seed=12)
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    forced = _shifted(rec.by_row(4))
    rows = list(range(rank, 4, world))
    ddp = DistributedDataParallel(model)
    with replay(ddp, forced[:, rows]):  # the wrapper is searched like the model
        logits = ddp(input_ids=ids[rows]).logits
        # sum over this rank's tokens times world: DDP's mean all-reduce then gives the sum over all rows
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets[rows].reshape(-1), reduction="sum") * world
        loss.backward()
    torch.save([m.weight.grad for m, _ in moe_routers(model)], f"{out_dir}/rank{rank}.pt")
    del ddp, logits, loss


def test_data_parallel_ranks_replaying_their_rows_give_the_one_process_gradient(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.fail("torch.distributed is not available")
    # spawn, not fork: forking the test process (its torch, tokenizer and reward-pool threads) can
    # deadlock a child on a lock held at fork time; it hung a full-suite run until the timeout
    mp.start_processes(
        _ddp_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True, start_method="spawn"
    )
    model = _build("qwen2_moe")
    ids, targets = _ids(4, 6, seed=11), _ids(4, 6, seed=12)
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    want = _replayed_router_grads(model, ids, targets, _shifted(rec.by_row(4)))
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("replay_routing", [True, False])
def test_routing_pass_reports_agreement_with_and_without_replay(replay_routing: bool):
    from ringrl.models.routing import routing_pass

    model = _MODELS.get("qwen3_moe") or _MODELS.setdefault("qwen3_moe", _build("qwen3_moe"))
    prompts = _ids(2, 4, seed=13)
    with torch.no_grad(), record(model) as rec:
        seqs = model.generate(
            input_ids=prompts, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=1
        )
    per_seq = rec.sequences(torch.ones(2, 7, dtype=torch.bool))  # [L, 7, k] each: all but the last token
    assert [tuple(r.shape) for r in per_seq] == [(LAYERS, 7, TOP_K)] * 2
    # a routing half of whose tokens (in every layer) the routers would not choose
    forced = [r.clone() for r in per_seq]
    forced[0][:, ::2] = _shifted(forced[0][:, ::2]).to(forced[0].dtype)
    placed = routing_rows(forced, [(0, 0), (1, 0)], (2, 8))  # the last column stays free
    with torch.no_grad(), routing_pass(model, placed, replay_routing=replay_routing) as rp:
        model(input_ids=seqs)
    shifted_share = LAYERS * 4 / (LAYERS * 14)  # 4 of row 0's 7 recorded tokens, every layer, of 14 tokens
    assert rp.router_agreement() == pytest.approx(1 - shifted_share)  # the routers' own choice
    assert rp.agreement() == (1.0 if replay_routing else pytest.approx(1 - shifted_share))


def test_routing_pass_under_partial_checkpointing_reports_the_first_forward():
    from ringrl.models.routing import routing_pass

    model = _MODELS.get("qwen2_moe") or _MODELS.setdefault("qwen2_moe", _build("qwen2_moe"))
    if not hasattr(model, "activation_checkpointing_enable"):
        pytest.fail("this transformers has no activation_checkpointing_enable(every_n_layers=...)")
    ids, targets = _ids(2, 6, seed=14), _ids(2, 6, seed=15)
    with torch.no_grad(), record(model) as rec:
        model(input_ids=ids)
    forced = _shifted(rec.by_row(2))
    model.train()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False}, every_n_layers=2)
    try:
        with routing_pass(model, forced, replay_routing=True) as rp:
            logits = model(input_ids=ids).logits
            F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)).backward()
    finally:
        model.activation_checkpointing_disable()
        model.eval()
    assert [len(layer) for layer in rp.in_force.per_layer] == [2, 1]  # only layer 0 was checkpointed and re-run
    assert rp.agreement() == 1.0
    # layer 0 forced every token off its router's own choice (layer 1's inputs changed, so no claim there)
    assert routing_agreement(forced[:1].reshape(1, 12, TOP_K), rp.replay.natural_call(0)[:1]) == 0.0
    assert rp.router_agreement() <= 0.5

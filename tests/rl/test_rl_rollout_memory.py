"""The rollout engine never materialises a stacked ``[N, T, V]`` logits tensor: every tensor an
operation allocates during ``HFEngine.generate`` (recorded below the autograd layer by a
``TorchDispatchMode``) is at most a small multiple of one decode step's ``[N, V]`` logits."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ringrl.models.tiny import TinyModelConfig, build_model
from ringrl.rollout.hf import HFEngine

V = 8192  # vocabulary: one decode step's [N, V] logits dwarf everything else the tiny model allocates
P, K, T = 4, 8, 48  # prompts, samples per prompt, new tokens


class LargestAllocation(TorchDispatchMode):
    """Records the largest storage (bytes) that any non-view operation returns while active."""

    def __init__(self) -> None:
        super().__init__()
        self.nbytes, self.where = 0, ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:  # a view (a transposed weight, an expanded mask) allocates nothing
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes() > self.nbytes:
                    self.nbytes, self.where = t.untyped_storage().nbytes(), f"{func} -> {tuple(t.shape)} {t.dtype}"
        return out


def test_the_instrument_sees_a_stacked_logits_tensor():
    with LargestAllocation() as mode:
        torch.stack([torch.zeros(P * K, V) for _ in range(T)])
    assert mode.nbytes == P * K * T * V * 4


def test_generate_allocates_nothing_near_n_t_v(ringrl_moe_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ringrl_moe_dir)
    tok.add_tokens([f"~w{i}" for i in range(V - len(tok))])
    assert len(tok) == V
    model = build_model(TinyModelConfig(vocab_size=V, hidden_size=32, max_positions=256, seed=0), tok).eval()
    assert model.config.vocab_size == V
    engine = HFEngine(model, tok, batch_size=P * K)
    prompts = [f"What is {a} + {a}?" for a in range(P)]
    with LargestAllocation() as mode:
        groups = engine.generate(prompts, n=K, temperature=1.0, max_new_tokens=T, seed=0)
    lengths = [len(c.token_ids) for g in groups for c in g]
    assert len(lengths) == P * K and max(lengths) == T  # a random model rarely ends early: T decode steps
    # one decode step's float32 [N, V] logits (and their same-sized fp32 copies in sampling) are the
    # largest allocation; stacking the steps would be T = 48 times that
    step_logits = P * K * V * 4
    assert step_logits <= mode.nbytes <= 2 * step_logits, (mode.nbytes, mode.where)

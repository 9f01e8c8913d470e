"""On CUDA only (marked ``gpu``; skipped, with the reason shown by ``-ra``, without a CUDA
device): bf16 autocast over float32 masters on the real device type, the chunked head
against full logits there, and a bf16 RL loss pass at lr 3e-6 that moves the weights."""

from __future__ import annotations

import pytest
import torch

from ringrl.models.forward import set_compute, token_stats
from ringrl.models.loading import load_policy

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_chunked_head_matches_full_logits_in_bf16_on_cuda(ringrl_moe_dir):
    model, _ = load_policy(ringrl_moe_dir, "cuda", "float32")
    set_compute(model, torch.bfloat16, 7)
    ids = torch.randint(4, model.config.vocab_size, (3, 40), device="cuda")
    attn = torch.ones_like(ids)
    st = token_stats(model, ids, attn)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits
    ref = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert (st.logprobs_BT - ref).abs().max() < 1e-3  # same bf16 matmuls, float32 softmax


def test_bf16_training_moves_float32_masters_on_cuda(ringrl_moe_dir):
    from ringrl.common_config import ModelConfig, OptimConfig, make_optimizer
    from ringrl.models.loading import load_for_training

    model, _ = load_for_training(ModelConfig(device="cuda", dtype="bfloat16"), ringrl_moe_dir)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    opt, _ = make_optimizer(model, OptimConfig(lr=3e-6, warmup_ratio=0, weight_decay=0), 3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(4, model.config.vocab_size, (4, 64), device="cuda")
    for _ in range(3):
        st = token_stats(model, ids, torch.ones_like(ids))
        (-st.logprobs_BT.mean()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    changed = sum(int((before[n] != p).sum()) for n, p in model.named_parameters())
    assert changed / sum(t.numel() for t in before.values()) > 0.9


@pytest.mark.parametrize("offload", [False, True])
def test_fsdp_rl_steps_on_one_gpu(tmp_path, ringrl_moe_dir, offload):
    """``parallel.strategy=fsdp`` on one CUDA device (a process group of one rank), with and without
    ``parallel.cpu_offload`` (shards in host memory, gathered onto the GPU): 2 RL steps and a checkpoint
    that plain transformers loads."""
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ringrl", "rl", f"model.path={ringrl_moe_dir}", f"out={out}", "model.device=cuda"]
    cmd += ["model.dtype=bfloat16", "parallel.strategy=fsdp", f"parallel.cpu_offload={str(offload).lower()}"]
    cmd += ["steps=2", "rollout.prompts_per_step=2", "rollout.samples_per_prompt=4", "rollout.max_new_tokens=16"]
    cmd += ["former.budget_tokens=32", "data.train_size=8", "progress=false", "tensorboard=false", "reward_workers=1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    model = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "final")
    assert all(torch.isfinite(p).all() for p in model.parameters())

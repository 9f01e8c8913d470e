"""Mixed precision: float32 master weights and Adam moments under a bf16 compute dtype, so that
the paper's learning rate (3e-6) moves the weights; checkpoints in ``model.save_dtype`` with the
float32 masters kept for an exact resume; activation checkpointing leaves gradients unchanged."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from ringrl.config import load_config
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer
from ringrl.sft.config import SFTConfig
from ringrl.sft.trainer import train_sft
from ringrl.utils.checkpoint import MASTER_WEIGHTS, restore_weights


def rl_cfg(model_dir, out, *extra):
    return load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            "model.device=cpu",
            f"out={out}",
            "steps=3",
            "rollout.prompts_per_step=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "former.budget_tokens=29",
            "data.train_size=8",
            "optim.lr=3e-6",
            "optim.warmup_ratio=0",
            "progress=false",
            "threads=1",
            "tensorboard=false",
            *extra,
        ],
    )


def changed_fraction(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    changed = sum(int((before[n] != after[n]).sum()) for n in before)
    return changed / sum(p.numel() for p in before.values())


def params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_rl_bf16_compute_updates_weights_at_lr_3e6(tmp_path, ringrl_moe_dir, ringrl_util):
    before = ringrl_util.load_weights(ringrl_moe_dir)
    fractions = {}
    for dtype in ("float32", "bfloat16"):
        trainer = RLTrainer(
            rl_cfg(ringrl_moe_dir, tmp_path / dtype, f"model.dtype={dtype}"), score=ringrl_util.parity_score
        )
        trainer.fit()
        # the masters and Adam's moments are float32 whatever the compute dtype; the reference is in the compute dtype
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
        moments = [t for st in trainer.optimizer.state.values() for k, t in st.items() if k.startswith("exp_avg")]
        assert moments and all(t.dtype == torch.float32 for t in moments)
        assert {p.dtype for p in trainer.ref_model.parameters()} == {getattr(torch, dtype)}
        fractions[dtype] = changed_fraction(before, params(trainer.model))
        # save_dtype auto: the source's float32, so the checkpoint holds the masters themselves
        saved = ringrl_util.load_weights(tmp_path / dtype / "checkpoints" / "final")
        assert all(torch.equal(saved[n], p) for n, p in params(trainer.model).items())
    # the bf16 run really computed in bf16 (autocast): its log-probs differ from the fp32 run's
    entropy = {d: [json.loads(x)["train/entropy"] for x in (tmp_path / d / "metrics.jsonl").open()] for d in fractions}
    assert entropy["float32"] != entropy["bfloat16"]
    assert entropy["float32"] == pytest.approx(entropy["bfloat16"], rel=0.05)
    assert fractions["float32"] > 0.5
    assert fractions["bfloat16"] >= 0.9 * fractions["float32"], fractions
    print("RL fraction of weight elements changed after 3 steps at lr 3e-6:", fractions)
    # what a bf16 copy of the weights would keep of those updates: almost nothing (the bug this fixes)
    moved_bf16 = changed_fraction(
        {n: t.bfloat16() for n, t in before.items()}, {n: t.bfloat16() for n, t in params(trainer.model).items()}
    )
    assert moved_bf16 < 0.5 * fractions["bfloat16"]


def test_sft_bf16_compute_updates_weights_at_lr_3e6(tmp_path, ringrl_moe_dir, ringrl_util):
    before = ringrl_util.load_weights(ringrl_moe_dir)
    fractions, steps = {}, {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        cfg = load_config(
            SFTConfig,
            overrides=[
                f"model.path={ringrl_moe_dir}",
                "model.device=cpu",
                f"model.dtype={dtype}",
                f"out={out}",
                "data.train_size=12",
                "data.eval_size=2",
                "epochs=1",
                "batch_tokens=600",
                "optim.lr=3e-6",
                "optim.warmup_ratio=0",
                "entropy.max_new_tokens=4",
                "progress=false",
                "threads=1",
            ],
        )
        train_sft(cfg, grader=ringrl_util.zero_grader)
        steps[dtype] = len((out / "metrics.jsonl").read_text().splitlines())
        fractions[dtype] = changed_fraction(before, ringrl_util.load_weights(out / "checkpoints" / "epoch-1"))
    print("SFT fraction of weight elements changed at lr 3e-6:", fractions, steps)
    assert steps["float32"] == steps["bfloat16"] >= 3
    assert fractions["float32"] > 0.5
    assert fractions["bfloat16"] >= 0.9 * fractions["float32"], fractions


def test_bf16_checkpoints_keep_the_masters_and_resume_exactly(tmp_path, ringrl_moe_dir, ringrl_util):
    extra = ("model.save_dtype=bfloat16", "optim.lr=1e-3", "save_every=1", "steps=2")
    whole = RLTrainer(rl_cfg(ringrl_moe_dir, tmp_path / "whole", *extra), score=ringrl_util.parity_score)
    whole.fit()
    ckpt = tmp_path / "whole" / "checkpoints" / "final"
    assert json.loads((ckpt / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118
    assert (ckpt / MASTER_WEIGHTS).is_file()
    # restore_weights gives back the float32 masters bit for bit, not their bf16 rounding
    fresh = RLTrainer(rl_cfg(ringrl_moe_dir, tmp_path / "scratch", *extra), score=ringrl_util.parity_score)
    restore_weights(ckpt, fresh.model)
    final = params(whole.model)
    assert all(torch.equal(p, final[n]) for n, p in fresh.model.named_parameters())
    assert any(not torch.equal(p.bfloat16().float(), p) for p in final.values())
    fresh.close()

    # stop after step 1 and resume from its bf16 checkpoint: the same final masters as the whole run
    part = RLTrainer(rl_cfg(ringrl_moe_dir, tmp_path / "part", *extra, "steps=1"), score=ringrl_util.parity_score)
    part.fit()
    resumed = RLTrainer(
        rl_cfg(ringrl_moe_dir, tmp_path / "part", *extra, "resume=true"), score=ringrl_util.parity_score
    )
    resumed.fit()
    for n, p in resumed.model.named_parameters():
        assert torch.equal(p, final[n]), n


def test_save_dtype_auto_follows_the_source(tmp_path, ringrl_moe_dir):
    from ringrl.models.loading import resolve_save_dtype, source_dtype

    assert source_dtype(ringrl_moe_dir) == "float32"
    bf = tmp_path / "bf"
    bf.mkdir()
    (bf / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert resolve_save_dtype("auto", bf) == torch.bfloat16
    assert resolve_save_dtype("float32", bf) == torch.float32
    assert resolve_save_dtype("auto", ringrl_moe_dir) == torch.float32


@pytest.mark.parametrize(
    "key, value", [("model.save_dtype", "int8"), ("model.dtype", "fp8"), ("model.head_chunk_tokens", "-1")]
)
def test_model_keys_validated(key, value):
    from ringrl.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(RLConfig, overrides=[f"{key}={value}"])


def test_activation_checkpointing_leaves_gradients_unchanged(ringrl_moe_dir, ringrl_util):
    from ringrl.common_config import ModelConfig
    from ringrl.models.loading import load_for_training
    from ringrl.rl.config import LossConfig
    from ringrl.rl.update import accumulate_gradients, build_micro_batches

    groups = ringrl_util.random_groups(3, 300)
    from ringrl.algorithms.types import SelectedSample

    selected = [SelectedSample(s, s.n_response, 1.0 / 100) for g in groups for s in g.samples]
    loss_cfg = LossConfig(beta=0.0, alpha_entropy=1e-2, alpha_balance=1e-2, alpha_zloss=1e-3)
    grads = {}
    for ac in (False, True):
        model, tok = load_for_training(ModelConfig(device="cpu", activation_checkpointing=ac), ringrl_moe_dir)
        model.train()
        layers = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
        assert layers and all(m.gradient_checkpointing == ac for m in layers)
        mbs = build_micro_batches(selected, tok.pad_token_id, 200)
        accumulate_gradients(model, None, mbs, loss_cfg, 1.0, 2)
        grads[ac] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads[False].keys() == grads[True].keys() and len(grads[False]) > 10
    for n, g in grads[False].items():
        assert (g - grads[True][n]).abs().max() <= 1e-6, n


def test_sft_activation_checkpointing_leaves_gradients_unchanged(ringrl_moe_dir):
    """The SFT twin of the test above: ``train_step`` (two micro-batches, padding, router terms on)
    gives the same gradients with ``model.activation_checkpointing`` on as off."""
    from ringrl.common_config import ModelConfig
    from ringrl.models.loading import is_moe, load_for_training, moe_top_k
    from ringrl.sft.trainer import train_step

    cfg = load_config(SFTConfig, overrides=["alpha_balance=1e-2", "alpha_zloss=1e-3"])
    gen = torch.Generator().manual_seed(0)
    group = []
    for rows, length in ((3, 40), (2, 56)):
        ids = torch.randint(4, 300, (rows, length), generator=gen)
        attn = torch.ones_like(ids)
        attn[-1, length - 9 :] = 0  # a right-padded row
        loss_mask = attn.clone()
        loss_mask[:, :12] = 0  # the prompt is no target
        group.append({"input_ids": ids, "attention_mask": attn, "loss_mask": loss_mask})
    denominator = sum(int(g["loss_mask"][:, 1:].sum()) for g in group)
    grads = {}
    for ac in (False, True):
        model, _ = load_for_training(ModelConfig(device="cpu", activation_checkpointing=ac), ringrl_moe_dir)
        model.train()
        layers = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
        assert layers and all(m.gradient_checkpointing == ac for m in layers)
        out = train_step(model, group, denominator, cfg, is_moe(model), moe_top_k(model), torch.device("cpu"))
        assert out["moe/balance_loss"] > 0  # the router terms are in the gradient
        grads[ac] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads[False].keys() == grads[True].keys() and len(grads[False]) > 10
    assert any("gate" in n and g.abs().max() > 0 for n, g in grads[False].items())
    for n, g in grads[False].items():
        assert (g - grads[True][n]).abs().max() <= 1e-6, n


def test_sft_bf16_checkpoints_resume_to_the_uninterrupted_masters(tmp_path, ringrl_moe_dir, ringrl_util, monkeypatch):
    """The SFT twin of ``test_bf16_checkpoints_keep_the_masters_and_resume_exactly``: with
    ``model.save_dtype=bfloat16`` a run stopped in the middle of optimizer step 3 (after the step-2
    checkpoint, whose HF weights are bf16) and resumed ends with float32 master weights equal, bit for
    bit, to an uninterrupted run's."""
    from sft.test_sft_resume import _args  # tests/ is on sys.path (rootdir insertion), as for test_fsdp

    def cfg(out, *extra):
        return load_config(SFTConfig, overrides=_args(ringrl_moe_dir, out, "model.save_dtype=bfloat16", *extra)[1:])

    whole, part = tmp_path / "whole", tmp_path / "part"
    train_sft(cfg(whole), grader=ringrl_util.zero_grader)

    class Stop(Exception):
        pass

    real_step, calls = torch.optim.AdamW.step, []

    def step(self, *a, **k):  # the run dies in the middle of its third optimizer step
        calls.append(1)
        if len(calls) == 3:
            raise Stop
        return real_step(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(torch.optim.AdamW, "step", step)
        with pytest.raises(Stop):
            train_sft(cfg(part), grader=ringrl_util.zero_grader)
    ckpt = part / "checkpoints" / "step-2"
    assert sorted(p.name for p in (part / "checkpoints").iterdir()) == ["step-2"]
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118
    assert (ckpt / MASTER_WEIGHTS).is_file()
    train_sft(cfg(part, "resume=true"), grader=ringrl_util.zero_grader)

    final = {d: torch.load(d / "checkpoints" / "epoch-2" / MASTER_WEIGHTS, weights_only=True) for d in (whole, part)}
    assert final[whole].keys() == final[part].keys() and len(final[whole]) > 10
    for n, w in final[whole].items():
        assert w.dtype == torch.float32 and torch.equal(w, final[part][n]), n
    # the masters are not bf16 values: resuming from the bf16 weights instead would not give them
    assert any(not torch.equal(w.bfloat16().float(), w) for w in final[whole].values())

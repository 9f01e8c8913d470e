"""LoRA through PEFT: only adapter weights train, the reference is the base with adapters off
(no copy), checkpoints are plain HF directories with the adapters merged (plus the adapter
alone), and resume continues exactly."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from ringrl.models.lora import ADAPTER_DIR, AdapterDisabled
from ringrl.rl.trainer import RLTrainer

from .test_rl_trainer import rl_config

LORA = ("model.lora.rank=4", "model.lora.alpha=8")


def run(ringrl_moe_dir, out, ringrl_util, *extra):
    trainer = RLTrainer(rl_config(ringrl_moe_dir, out, *LORA, *extra), score=ringrl_util.parity_score)
    trainer.fit()
    return trainer


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, ringrl_moe_dir, ringrl_util):
    out = tmp_path_factory.mktemp("lora") / "run"
    return run(ringrl_moe_dir, out, ringrl_util), out


def test_only_adapters_train_and_the_reference_is_the_base(lora_run, ringrl_moe_dir, ringrl_util):
    trainer, out = lora_run
    named = dict(trainer.model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    opt_params = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert opt_params == {id(named[n]) for n in trainable}  # AdamW holds state for the adapters only
    # lora_B starts at 0: after training it moved, so the adapters received gradients
    assert any(n.endswith("lora_B.default.weight") and named[n].abs().sum() > 0 for n in trainable)
    # the reference is the same model with its adapters off: no second copy of any weight
    assert isinstance(trainer.ref_model, AdapterDisabled)
    assert {id(p) for p in trainer.ref_model.parameters()} == {id(p) for p in trainer.model.parameters()}
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["trainable_fraction"] < 0.5 and summary["trainable_params"] == sum(
        named[n].numel() for n in trainable
    )
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert m[0]["train/kl"] == pytest.approx(0.0, abs=1e-6) and m[-1]["train/kl"] > 0


def test_merged_checkpoint_reproduces_the_adapted_model(lora_run, ringrl_moe_dir, ringrl_util):
    trainer, out = lora_run
    ckpt = out / "checkpoints" / "final"
    merged = AutoModelForCausalLM.from_pretrained(ckpt)  # plain transformers, no PEFT
    ids = torch.tensor([[5, 17, 33, 9, 12, 40]])
    trainer.model.eval()
    with torch.no_grad():
        want = trainer.model(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    base = ringrl_util.load_weights(ringrl_moe_dir)
    after = ringrl_util.load_weights(ckpt)
    changed = {n for n in base if not torch.equal(base[n], after[n])}
    assert changed and all(
        n.endswith(
            (
                "q_proj.weight",
                "k_proj.weight",
                "v_proj.weight",
                "o_proj.weight",
                "gate_proj.weight",
                "up_proj.weight",
                "down_proj.weight",
            )
        )
        for n in changed
    )
    # embeddings, routers and the fused routed experts were not adapted
    assert not any("embed" in n or ".gate.weight" in n or "experts" in n for n in changed)
    assert (ckpt / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    assert (ckpt / ADAPTER_DIR / "adapter_config.json").is_file()


def test_resume_continues_exactly(tmp_path, ringrl_moe_dir, ringrl_util):
    whole = run(ringrl_moe_dir, tmp_path / "whole", ringrl_util, "steps=3")
    run(ringrl_moe_dir, tmp_path / "cut", ringrl_util, "steps=2", "save_every=1")
    resumed = run(ringrl_moe_dir, tmp_path / "cut", ringrl_util, "steps=3", "resume=true")
    a = {n: p for n, p in whole.model.named_parameters() if p.requires_grad}
    b = {n: p for n, p in resumed.model.named_parameters() if p.requires_grad}
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_lora_without_a_matching_module_is_one_line(tmp_path, ringrl_moe_dir, capsys):
    from ringrl.cli import main

    code = main(
        [
            "rl",
            f"model.path={ringrl_moe_dir}",
            f"out={tmp_path / 'r'}",
            "model.lora.rank=4",
            "model.lora.target_modules=[nothing_here]",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (
        "ringrl rl: error: config key 'model.lora.target_modules': none of ['nothing_here'] is a module of this model"
    )


def test_sft_with_lora_writes_merged_checkpoints(tmp_path, ringrl_moe_dir, ringrl_util, capsys):
    from ringrl.cli import main

    out = tmp_path / "sft"
    args = ["sft", f"model.path={ringrl_moe_dir}", f"out={out}", "epochs=1", "data.train_size=16", "data.eval_size=2"]
    args += ["entropy.max_new_tokens=8", "progress=false", "tensorboard=false", "threads=1", *LORA]
    assert main(args) == 0, capsys.readouterr().err
    ckpt = out / "checkpoints" / "epoch-1"
    base, after = ringrl_util.load_weights(ringrl_moe_dir), ringrl_util.load_weights(ckpt)
    assert base.keys() == after.keys()  # a plain HF directory: the base's own parameter names
    assert any(not torch.equal(base[n], after[n]) for n in base if n.endswith("q_proj.weight"))
    assert all(torch.equal(base[n], after[n]) for n in base if "embed" in n or "experts" in n)
    assert (ckpt / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trainable_fraction"] < 0.5
    assert f"ringrl: note: LoRA: {summary['trainable_params']:,} trainable parameters (" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["rl", "sft"])
def test_lora_with_fsdp_is_one_line(tmp_path, ringrl_moe_dir, capsys, command):
    from ringrl.cli import main

    code = main(
        [
            command,
            f"model.path={ringrl_moe_dir}",
            f"out={tmp_path / 'r'}",
            "model.lora.rank=4",
            "parallel.strategy=fsdp",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"ringrl {command}: error: config key 'parallel.strategy': fsdp does not shard LoRA adapters" in err
    assert not (tmp_path / "r").exists()


def test_sft_with_lora_resumes_exactly(tmp_path, ringrl_moe_dir, monkeypatch, capsys):
    """An SFT run with LoRA that dies in optimizer step 3 (after the step-2 checkpoint) and is
    resumed ends with the uninterrupted run's adapter weights, bit for bit."""
    from safetensors.torch import load_file

    from ringrl.cli import main

    def args(out, *extra):
        return [
            *("sft", f"model.path={ringrl_moe_dir}", "model.dtype=float32", f"out={out}", "epochs=2"),
            *("data.train_size=20", "data.eval_size=2", "batch_tokens=800", "grad_accum=2", "save_every=2"),
            *("optim.lr=1e-2", "entropy.max_new_tokens=4", "progress=false", "tensorboard=false", "threads=1"),
            *LORA,
            *extra,
        ]

    assert main(args(tmp_path / "whole")) == 0, capsys.readouterr().err
    real_step, calls = torch.optim.AdamW.step, [0]

    def dying_step(self, *a, **k):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt  # the run ends mid-step, as a kill would
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", dying_step)
    assert main(args(tmp_path / "cut")) != 0  # "interrupted"
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["step-2"]
    assert main(args(tmp_path / "cut", "resume=true")) == 0, capsys.readouterr().err
    for epoch in (1, 2):
        a, b = (
            load_file(d / "checkpoints" / f"epoch-{epoch}" / ADAPTER_DIR / "adapter_model.safetensors")
            for d in (tmp_path / "whole", tmp_path / "cut")
        )
        assert a.keys() == b.keys() and a and all(torch.equal(a[n], b[n]) for n in a), epoch

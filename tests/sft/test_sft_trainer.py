"""A few SFT steps on the tiny MoE and on a tiny dense Llama: every parameter moves, the loss
falls, a checkpoint per epoch loads with plain transformers, summary.json is complete."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ringrl.config import load_config
from ringrl.sft.config import SFTConfig
from ringrl.sft.trainer import train_sft

EXPERT_KEYS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def sft_config(model_dir, out, *extra):
    return load_config(
        SFTConfig,
        overrides=[
            f"model.path={model_dir}",
            "model.device=cpu",
            f"out={out}",
            "data.train_size=16",
            "data.eval_size=4",
            "epochs=3",
            "batch_tokens=1200",
            "optim.lr=1e-2",
            "optim.weight_decay=0",
            "optim.warmup_ratio=0",
            "entropy.max_new_tokens=8",
            "entropy.batch_size=8",
            "progress=false",
            "threads=1",
            "alpha_balance=1e-2",
            "alpha_zloss=1e-3",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def moe_run(tmp_path_factory, ringrl_moe_dir, ringrl_util):
    out = tmp_path_factory.mktemp("sft") / "run"
    cfg = sft_config(ringrl_moe_dir, out)
    summary = train_sft(cfg, grader=ringrl_util.zero_grader)
    return cfg, out, summary


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_every_param_moved(base_dir, ckpt_dir, util):
    before, after = util.load_weights(base_dir), util.load_weights(ckpt_dir)
    names = list(before)
    assert names == list(after) and len(names) > 10
    assert not util.unchanged_params(before, after, names)
    # fused expert tensors [E, ...]: every routed expert moved, not just some of them
    for n in names:
        if n.endswith(EXPERT_KEYS):
            for e in range(before[n].shape[0]):
                assert not torch.equal(before[n][e], after[n][e]), f"{n} expert {e} did not move"
    return names


def mean_response_nll(model_dir, rows):
    """Independent check: plain transformers forward + F.cross_entropy over response+EOS tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    total, count = 0.0, 0
    with torch.no_grad():
        for r in rows:
            prompt = tok.apply_chat_template(
                [{"role": "user", "content": r["_user"]}], tokenize=False, add_generation_prompt=True
            )
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            y = tok(r["response"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            ids = torch.tensor([p + y])
            logits = model(ids).logits[0, len(p) - 1 : -1]
            total += float(F.cross_entropy(logits, torch.tensor(y), reduction="sum"))
            count += len(y)
    return total / count


def train_rows(cfg):
    from ringrl.data.prompts import user_message
    from ringrl.sft.trainer import load_sft_data

    rows, _ = load_sft_data(cfg)
    return [{**r, "_user": user_message(r)} for r in rows]


def test_moe_every_trainable_parameter_changes(moe_run, ringrl_moe_dir, ringrl_util):
    _, out, _ = moe_run
    names = assert_every_param_moved(ringrl_moe_dir, out / "checkpoints" / "epoch-3", ringrl_util)
    assert any(".mlp.gate." in n for n in names) and any("shared_expert_gate" in n for n in names)
    assert any("shared_expert.down_proj" in n for n in names) and any(n.endswith(EXPERT_KEYS) for n in names)


def test_moe_loss_falls(moe_run, ringrl_moe_dir):
    cfg, out, _ = moe_run
    m = metrics(out)
    assert len(m) >= 9
    assert m[0]["train/loss"] == pytest.approx(math.log(300), abs=0.3)  # untrained: about uniform
    assert m[-1]["train/loss"] < m[0]["train/loss"] - 1.0
    rows = train_rows(cfg)
    before, after = mean_response_nll(ringrl_moe_dir, rows), mean_response_nll(out / "checkpoints" / "epoch-3", rows)
    assert after < before - 1.0
    # the logged losses of epoch 3 (each batch under the weights before its update) lie between the
    # independently measured NLL of the training rows at the start (epoch-2) and end (epoch-3) of that epoch
    logged = [r["train/loss"] * r["train/tokens"] for r in m if r["train/epoch"] == 3]
    tokens = sum(r["train/tokens"] for r in m if r["train/epoch"] == 3)
    mean_logged = sum(logged) / tokens
    assert after - 0.1 < mean_logged < mean_response_nll(out / "checkpoints" / "epoch-2", rows) + 0.1


def test_checkpoint_per_epoch_loads_with_plain_transformers(moe_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, out, summary = moe_run
    dirs = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert dirs == ["epoch-1", "epoch-2", "epoch-3"]  # no temporary names left behind
    for d in dirs:
        model = AutoModelForCausalLM.from_pretrained(out / "checkpoints" / d)
        tok = AutoTokenizer.from_pretrained(out / "checkpoints" / d)
        assert type(model).__name__ == "Qwen2MoeForCausalLM" and tok.chat_template
        state = json.loads((out / "checkpoints" / d / "trainer_state.json").read_text())
        rec = next(c for c in summary["checkpoints"] if c["name"] == d)
        assert {k: state[k] for k in ("epoch", "step", "tokens_seen")} == {
            "epoch": rec["epoch"],
            "step": rec["step"],
            "tokens_seen": rec["tokens_seen"],
        }
        # what resume needs: the run id, and the measured checkpoints before this one
        assert state["run_id"] == json.loads((out / "run.json").read_text())["run_id"]
        assert [c["name"] for c in state["checkpoints"]] == [f"epoch-{e}" for e in range(1, rec["epoch"])]
        assert (out / "checkpoints" / d / "optimizer.pt").is_file()


def test_summary_records_entropy_accuracy_tokens_seen(moe_run):
    from ringrl.models import load_tokenizer
    from ringrl.sft.data import encode_example

    cfg, out, summary = moe_run
    assert json.loads((out / "summary.json").read_text()) == summary
    ck = summary["checkpoints"]
    assert [c["epoch"] for c in ck] == [1, 2, 3]
    m = metrics(out)
    # tokens_seen: independently, every epoch trains each row's response + EOS once
    tok = load_tokenizer(out / "checkpoints" / "epoch-1")
    per_epoch = sum(encode_example(tok, r).n_target for r in train_rows(cfg))
    for c in ck:
        assert c["tokens_seen"] == c["epoch"] * per_epoch
        assert c["tokens_seen"] == sum(r["train/tokens"] for r in m if r["step"] <= c["step"])
        assert 0 < c["entropy"] <= math.log(300) + 1e-6
        assert c["accuracy"] == 0.0  # the zero grader
        assert c["eval_problems"] == 4 and c["samples"] == 4
        assert 1 <= c["mean_length"] <= 8
    assert summary["tokens_seen"] == ck[-1]["tokens_seen"]
    assert ck[-1]["step"] == len(m)


def test_sft_metrics_schema_and_config_saved(moe_run):
    cfg, out, _ = moe_run
    for rec in metrics(out):
        for key in (
            "step",
            "time",
            "train/loss",
            "train/lr",
            "train/grad_norm",
            "train/tokens",
            "throughput/tokens_per_s",
            "moe/balance_loss",
            "moe/z_loss",
            "moe/max_expert_load",
        ):
            assert key in rec, key
        assert 0.25 <= rec["moe/max_expert_load"] <= 1.0  # 4 experts: the busiest one has at least a quarter
        assert rec["moe/z_loss"] > 0 and rec["moe/balance_loss"] > 0
    assert load_config(SFTConfig, path=out / "config.yaml") == cfg
    assert list((out / "tb").glob("events.out.tfevents*"))


def test_dense_model_trains_too(tmp_path, ringrl_dense_dir, ringrl_util):
    out = tmp_path / "dense"
    cfg = sft_config(
        ringrl_dense_dir,
        out,
        "epochs=2",
        "data.train_size=8",
        "data.eval_size=2",
        "batch_tokens=800",
        "tensorboard=false",
    )
    summary = train_sft(cfg, grader=ringrl_util.zero_grader)
    assert [c["name"] for c in summary["checkpoints"]] == ["epoch-1", "epoch-2"]
    assert_every_param_moved(ringrl_dense_dir, out / "checkpoints" / "epoch-2", ringrl_util)
    m = metrics(out)
    assert m[-1]["train/loss"] < m[0]["train/loss"] - 0.5
    assert not any(k.startswith("moe/") for k in m[0])  # dense: no router terms
    rows = train_rows(cfg)
    assert mean_response_nll(out / "checkpoints" / "epoch-2", rows) < mean_response_nll(ringrl_dense_dir, rows) - 0.5


GOLDEN = Path(__file__).parent / "golden" / "sft_tiny_moe.json"


def test_loss_curve_matches_the_golden_curve(moe_run):
    """The short MoE run reproduces a stored curve (torchtitan-style). A change of the objective,
    masking, batching or model factory moves it. After an intended change, regenerate with
    ``RINGRL_REGEN_GOLDEN=1 pytest tests/sft/test_sft_trainer.py`` and commit the file."""
    import os

    import tokenizers
    import transformers

    _, out, _ = moe_run
    m = metrics(out)
    curve = {
        "loss": [r["train/loss"] for r in m],
        "tokens": [r["train/tokens"] for r in m],
        "grad_norm": [r["train/grad_norm"] for r in m],
        "made_with": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
    }
    if os.environ.get("RINGRL_REGEN_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(curve, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    hint = f"golden curve made with {golden['made_with']}; see this test's docstring to regenerate"
    assert curve["tokens"] == golden["tokens"], hint
    assert curve["loss"] == pytest.approx(golden["loss"], rel=2e-3), hint
    assert curve["grad_norm"] == pytest.approx(golden["grad_norm"], rel=2e-2), hint


def test_grad_accum_groups_micro_batches_into_steps(tmp_path, ringrl_moe_dir, ringrl_util):
    one = sft_config(
        ringrl_moe_dir,
        tmp_path / "a1",
        "epochs=1",
        "data.train_size=8",
        "data.eval_size=1",
        "batch_tokens=700",
        "entropy.max_new_tokens=2",
        "tensorboard=false",
    )
    two = sft_config(
        ringrl_moe_dir,
        tmp_path / "a2",
        "epochs=1",
        "data.train_size=8",
        "data.eval_size=1",
        "batch_tokens=700",
        "entropy.max_new_tokens=2",
        "tensorboard=false",
        "grad_accum=3",
    )
    s1, s2 = train_sft(one, grader=ringrl_util.zero_grader), train_sft(two, grader=ringrl_util.zero_grader)
    m1, m2 = metrics(tmp_path / "a1"), metrics(tmp_path / "a2")
    assert len(m1) >= 4 and len(m2) == math.ceil(len(m1) / 3)
    assert s1["tokens_seen"] == s2["tokens_seen"] == sum(r["train/tokens"] for r in m2)
    # the first accumulated step's loss, independently: the untrained model's NLL over the
    # examples of the step's first three length-bucketed batches (the trainer's own batching)
    import random

    from ringrl.models import load_tokenizer
    from ringrl.sft.data import bucket_batches, encode_rows

    rows = train_rows(two)
    exs, _ = encode_rows(load_tokenizer(ringrl_moe_dir), rows, two.data.max_length)
    batches = bucket_batches([len(e.input_ids) for e in exs], two.batch_tokens, random.Random(two.seed))
    first = [rows[i] for b in batches[:3] for i in b]
    assert (
        m2[0]["train/tokens"]
        == sum(r["train/tokens"] for r in m1[:3])
        == sum(exs[i].n_target for b in batches[:3] for i in b)
    )
    assert m2[0]["train/loss"] == pytest.approx(mean_response_nll(ringrl_moe_dir, first), rel=1e-4)
    assert m1[0]["train/loss"] == pytest.approx(
        mean_response_nll(ringrl_moe_dir, [rows[i] for i in batches[0]]), rel=1e-4
    )

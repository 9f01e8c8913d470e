"""The RL trainer on the tiny MoE with a deterministic fake verifier (no reward pool):
every algo moves every parameter, C3PO trains exactly Phi tokens, the metric schema is
complete, and the run directory holds loadable checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from ringrl.config import load_config
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer

DESIGN_RL_KEYS = (
    "reward/mean",
    "reward/accuracy",
    "response_length/mean",
    "response_length/max",
    "response_length/std",
    "train/tokens",
    "train/responses",
    "train/grad_norm",
    "train/entropy",
    "train/kl",
    "train/clip_fraction",
    "train/logprob_mismatch",
    "moe/balance_loss",
    "moe/z_loss",
    "moe/max_expert_load",
    "time/rollout",
    "time/reward",
    "time/train",
    "time/step",
    "throughput/tokens_per_s",
)
EXPERT_KEYS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def rl_config(model_dir, out, *extra):
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
            "rollout.batch_size=16",
            "former.budget_tokens=29",
            "data.train_size=16",
            "optim.lr=1e-2",
            "optim.warmup_ratio=0",
            "loss.beta=0.1",
            "loss.alpha_balance=1e-2",
            "loss.alpha_zloss=1e-3",
            "progress=false",
            "threads=1",
            "tensorboard=false",
            *extra,
        ],
    )


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ringrl_moe_dir, ringrl_util):
    """``runs(algo)``: a 3-step run of ``algo`` on the tiny MoE, made once per module."""
    done = {}

    def get(algo):
        if algo not in done:
            out = tmp_path_factory.mktemp(f"rl-{algo}") / "run"
            cfg = rl_config(ringrl_moe_dir, out, f"algo={algo}")
            summary = RLTrainer(cfg, score=ringrl_util.parity_score).fit()
            done[algo] = (algo, cfg, out, summary)
        return done[algo]

    return get


@pytest.fixture(params=["c3po", "grpo", "dapo"])
def algo_run(request, runs):
    return runs(request.param)


def test_every_trainable_parameter_changes(algo_run, ringrl_moe_dir, ringrl_util):
    algo, _, out, _ = algo_run
    before = ringrl_util.load_weights(ringrl_moe_dir)
    after = ringrl_util.load_weights(out / "checkpoints" / "final")
    names = list(before)
    assert names == list(after)
    assert not ringrl_util.unchanged_params(before, after, names), algo
    for n in names:
        if n.endswith(EXPERT_KEYS):
            for e in range(before[n].shape[0]):
                assert not torch.equal(before[n][e], after[n][e]), f"{algo}: {n} expert {e} did not move"
    assert all(torch.isfinite(p).all() for p in after.values())


def test_metric_schema_and_consistency(algo_run):
    algo, cfg, out, summary = algo_run
    m = read_metrics(out)
    assert [r["step"] for r in m] == [1, 2, 3]
    for r in m:
        missing = [k for k in DESIGN_RL_KEYS if k not in r]
        assert not missing, missing
        for k in DESIGN_RL_KEYS:
            assert isinstance(r[k], (int, float)), (k, r[k])
        assert all(f"moe/load/layer{i}/expert{j}" in r for i in range(2) for j in range(4))
        assert sum(r[f"moe/load/layer0/expert{j}"] for j in range(4)) == pytest.approx(1.0, abs=1e-5)
        assert 0 <= r["reward/accuracy"] <= 1 and r["response_length/max"] <= 8
        assert r["train/skipped_nonfinite"] == 0 and r["train/grad_norm"] > 0
        assert r["train/entropy"] > 0 and r["moe/z_loss"] > 0 and 0.25 <= r["moe/max_expert_load"] <= 1
        assert r["time/step"] >= r["time/train"] > 0
        # on-policy fp32: the engine's log-probs (left-padded generate) equal the trainer's forward
        assert r["train/logprob_mismatch"] < 1e-4
    assert m[0]["train/kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the initial policy
    assert m[-1]["train/kl"] > 0
    # the fake verifier gives mixed rewards, so the policy gradient is not zero
    assert 0 < sum(r["reward/mean"] for r in m) / 3 < 1
    if algo == "grpo":  # every response enters the loss
        for r in m:
            assert r["train/responses"] == r["rollout/responses"] == 8
            assert r["train/tokens"] == round(r["response_length/mean"] * 8)
    assert (
        summary["steps"] == 3 and summary["algo"] == algo and summary["rl_tokens"] == sum(r["train/tokens"] for r in m)
    )
    assert json.loads((out / "summary.json").read_text()) == summary
    assert load_config(RLConfig, path=out / "config.yaml") == cfg


def test_c3po_trains_exactly_phi_tokens(runs):
    _, cfg, out, _ = runs("c3po")
    for r in read_metrics(out):
        assert r["rollout/responses"] * r["response_length/mean"] >= cfg.former.budget_tokens  # the pool suffices
        assert r["train/tokens"] == cfg.former.budget_tokens == 29  # 29 = 3 x 8 + 5: the last response is cut
        assert r["train/shortfall_tokens"] == 0
        assert r["train/responses"] == 4


def test_final_checkpoint_loads_with_plain_transformers(algo_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, _, out, _ = algo_run
    final = out / "checkpoints" / "final"
    assert type(AutoModelForCausalLM.from_pretrained(final)).__name__ == "Qwen2MoeForCausalLM"
    assert AutoTokenizer.from_pretrained(final).chat_template
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["position"] >= 6 and (final / "optimizer.pt").is_file()


def test_c3po_fills_the_budget_by_sampling_more(tmp_path, ringrl_moe_dir, ringrl_util):
    # one round gives 1 prompt x 2 responses <= 16 tokens; Phi = 40 needs two more rounds
    cfg = rl_config(
        ringrl_moe_dir,
        tmp_path / "fill",
        "steps=2",
        "rollout.prompts_per_step=1",
        "rollout.samples_per_prompt=2",
        "former.budget_tokens=40",
        "max_fill_rounds=3",
        "loss.beta=0",
    )
    RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    for r in read_metrics(tmp_path / "fill"):
        assert r["rollout/extra_rounds"] >= 2 and r["rollout/responses"] == 2 * (1 + r["rollout/extra_rounds"])
        assert r["train/tokens"] == 40 and r["train/shortfall_tokens"] == 0


def test_c3po_train_fewer_logs_the_shortfall(tmp_path, ringrl_moe_dir, ringrl_util):
    cfg = rl_config(
        ringrl_moe_dir,
        tmp_path / "few",
        "steps=2",
        "rollout.prompts_per_step=1",
        "rollout.samples_per_prompt=2",
        "former.budget_tokens=40",
        "former.fill=train_fewer",
        "loss.beta=0",
    )
    RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    for r in read_metrics(tmp_path / "few"):
        pool = round(r["response_length/mean"] * 2)
        assert r["rollout/extra_rounds"] == 0
        assert r["train/tokens"] == pool < 40 and r["train/shortfall_tokens"] == 40 - pool


def test_dense_policy_runs_without_router_terms(tmp_path, ringrl_dense_dir, ringrl_util):
    cfg = rl_config(ringrl_dense_dir, tmp_path / "dense", "steps=2", "algo=grpo")
    RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    before = ringrl_util.load_weights(ringrl_dense_dir)
    after = ringrl_util.load_weights(tmp_path / "dense" / "checkpoints" / "final")
    assert not ringrl_util.unchanged_params(before, after, list(before))
    r = read_metrics(tmp_path / "dense")[-1]
    assert r["moe/balance_loss"] == 0 and r["moe/z_loss"] == 0 and not any(k.startswith("moe/load/") for k in r)


def test_ppo_epochs_and_mini_batches(tmp_path, ringrl_moe_dir, ringrl_util):
    """Several optimizer steps per rollout: pi_old is fixed before the first update (so later passes
    see ratios != 1 and clip), and the lr schedule still counts RL steps."""
    common = [
        "algo=grpo",
        "steps=4",
        "rollout.max_new_tokens=4",
        "optim.warmup_ratio=0.5",
        "optim.schedule=cosine",
        "loss.beta=0",
    ]
    RLTrainer(rl_config(ringrl_moe_dir, tmp_path / "one", *common), score=ringrl_util.parity_score).fit()
    RLTrainer(
        rl_config(ringrl_moe_dir, tmp_path / "ppo", *common, "ppo_epochs=2", "mini_batches=2"),
        score=ringrl_util.parity_score,
    ).fit()
    one, ppo = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "ppo")
    # warm-up over 2 of 4 RL steps, then cosine to 0.1 * lr, whatever the optimizer steps per RL step
    assert [r["train/lr"] for r in ppo] == [r["train/lr"] for r in one]
    assert [r["train/lr"] for r in one] == pytest.approx([1e-2, 1e-2, 5.5e-3, 1e-3])
    assert all(r["train/ratio"] == pytest.approx(1.0, abs=1e-6) and r["train/clip_fraction"] == 0 for r in one)
    assert all(abs(r["train/ratio"] - 1.0) > 1e-4 for r in ppo)  # the last pass runs after 3 updates
    assert max(r["train/clip_fraction"] for r in ppo) > 0
    assert all(r["train/tokens"] == round(r["response_length/mean"] * 8) for r in ppo)


def test_rl_from_an_sft_checkpoint_records_sft_tokens(tmp_path, ringrl_moe_dir, ringrl_util):
    """The SFT -> RL hand-off: an SFT checkpoint's tokens_seen lands in the RL summary (Figure 7's x axis)."""
    from ringrl.models import load_policy
    from ringrl.utils.checkpoint import save_checkpoint

    model, tok = load_policy(ringrl_moe_dir, device="cpu")
    sft = save_checkpoint(
        tmp_path / "sft" / "checkpoints" / "epoch-2", model, tok, {"epoch": 2, "step": 9, "tokens_seen": 12345}
    )
    summary = RLTrainer(rl_config(sft, tmp_path / "rl", "steps=1", "algo=grpo"), score=ringrl_util.parity_score).fit()
    assert summary["sft_tokens"] == 12345 and summary["init"] == str(sft)
    assert summary["rl_tokens"] == read_metrics(tmp_path / "rl")[0]["train/tokens"]


def test_explicit_reference_model_is_used(tmp_path, ringrl_moe_dir, ringrl_util):
    """ref_model=DIR (same tokenizer, other weights): the KL is measured against it from step 1."""
    from ringrl.models import load_policy
    from ringrl.utils.checkpoint import save_checkpoint

    model, tok = load_policy(ringrl_moe_dir, device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ref = save_checkpoint(tmp_path / "ref", model, tok)
    cfg = rl_config(ringrl_moe_dir, tmp_path / "rl", "steps=1", "algo=grpo", f"ref_model={ref}")
    RLTrainer(cfg, score=ringrl_util.parity_score).fit()
    assert read_metrics(tmp_path / "rl")[0]["train/kl"] > 1e-4  # the implicit reference (the policy) would give 0


def test_cli_rl_success(tmp_path, ringrl_moe_dir, ringrl_util, monkeypatch, capsys):
    import ringrl.rl.trainer as trainer_mod
    from ringrl.cli import main

    real = trainer_mod.train_rl
    monkeypatch.setattr(trainer_mod, "train_rl", lambda cfg, score=None: real(cfg, score=ringrl_util.parity_score))
    out = tmp_path / "cli"
    code = main(
        [
            "rl",
            f"model.path={ringrl_moe_dir}",
            "model.device=cpu",
            f"out={out}",
            "steps=2",
            "algo=grpo",
            "rollout.prompts_per_step=1",
            "rollout.samples_per_prompt=2",
            "rollout.max_new_tokens=4",
            "data.train_size=4",
            "progress=false",
            "tensorboard=false",
        ]
    )
    assert code == 0
    assert "over 2 steps" in capsys.readouterr().out
    assert (out / "checkpoints" / "final" / "config.json").is_file() and (out / "config.yaml").is_file()

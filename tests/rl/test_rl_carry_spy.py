"""C3PO ``leftover: carry`` seen from the loss pass: a carried response's pi_old is the one
stored at the step that sampled it, so after an update its PPO ratio is not 1."""

from __future__ import annotations

import pytest
import torch

import ringrl.rl.update as update
from ringrl.config import load_config
from ringrl.rl.config import RLConfig
from ringrl.rl.trainer import RLTrainer


def _cfg(tmp_path, model_dir, *extra: str) -> RLConfig:
    return load_config(
        RLConfig,
        overrides=[
            f"model.path={model_dir}",
            "model.device=cpu",
            f"out={tmp_path / 'carry'}",
            "steps=3",
            "rollout.prompts_per_step=2",
            "rollout.samples_per_prompt=4",
            "rollout.max_new_tokens=8",
            "former.budget_tokens=20",
            "former.leftover=carry",
            "former.max_age=1",
            "data.train_size=16",
            "optim.lr=5e-2",
            "loss.beta=0",
            "progress=false",
            "tensorboard=false",
            *extra,
        ],
    )


class LossSpy:
    """Records every micro-batch the loss pass sees with the pi_old and log-probs handed to the loss."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[update.MicroBatch, torch.Tensor, torch.Tensor]] = []
        self._mb: update.MicroBatch | None = None
        real_backward, real_loss = update._micro_batch_backward, update.policy_loss

        def backward(model, ref_model, mb, *a, **k):
            self._mb = mb
            return real_backward(model, ref_model, mb, *a, **k)

        def loss(lp_BT, old_BT, *a, **k):
            assert self._mb is not None
            self.calls.append((self._mb, lp_BT.detach().clone(), old_BT.detach().clone()))
            return real_loss(lp_BT, old_BT, *a, **k)

        monkeypatch.setattr(update, "_micro_batch_backward", backward)
        monkeypatch.setattr(update, "policy_loss", loss)

    def rows_of(self, sample) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
        """(log-probs, pi_old, trained tokens) of ``sample`` in each loss call where it appears.

        A padded row holds one sequence; a packed row several, each starting at position 0."""
        seq = sample.prompt_ids + sample.response_ids
        p = len(sample.prompt_ids)
        found = []
        for mb, lp, old in self.calls:
            for b in range(mb.input_ids_BT.shape[0]):
                row = mb.input_ids_BT[b].tolist()
                length = int(mb.attention_mask_BT[b].sum())
                pos = mb.position_ids_BT[b].tolist() if mb.position_ids_BT is not None else None
                starts = [i for i in range(length) if pos[i] == 0] if pos is not None else [0]
                for j, at in enumerate(starts):
                    end = starts[j + 1] if j + 1 < len(starts) else length
                    n = end - at - p
                    if n > 0 and row[at:end] == seq[: p + n]:
                        t = slice(at + p - 1, at + p - 1 + n)
                        assert bool(mb.weights_BT[b, t].ne(0).all())
                        found.append((lp[b, t], old[b, t], n))
        return found


@pytest.mark.parametrize(
    "extra",
    [(), ("ppo_epochs=2",), ("mini_batches=2",), ("pack_sequences=true",)],
    ids=["one-epoch", "two-epochs", "two-mini-batches", "packed"],
)
def test_carried_sample_trains_against_its_own_steps_pi_old(tmp_path, ringrl_moe_dir, ringrl_util, monkeypatch, extra):
    t = RLTrainer(_cfg(tmp_path, ringrl_moe_dir, *extra), score=ringrl_util.parity_score)
    try:
        t.step()
        carry = list(t.state.carry)
        assert carry and all(s.old_logprobs is not None and s.age == 1 for s in carry)
        stored = {(s.group_id, s.index): list(s.old_logprobs) for s in carry}
        spy = LossSpy(monkeypatch)
        m2 = t.step()
        assert m2["batch/carried_trained"] > 0, "the seed must put a carried sample in step 2's batch"
        trained_carried = [s for s in carry if spy.rows_of(s)]
        assert trained_carried, "a carried sample must be found in the loss pass"
        for s in trained_carried:
            for lp, old, n in spy.rows_of(s):
                want = torch.tensor(stored[(s.group_id, s.index)][:n])
                assert torch.allclose(old, want, atol=0, rtol=0), "pi_old of a carried sample is its own step's"
                # the policy moved since the sample's step: the ratio is not 1
                assert (lp - old).abs().max() > 1e-4
            assert len(spy.rows_of(s)) == t.cfg.ppo_epochs  # once per PPO epoch
    finally:
        t.close()


def test_a_micro_batch_never_mixes_stored_and_missing_pi_old():
    """Falling back to the loss pass's own log-probs for the whole micro-batch would put a carried
    sample at ratio 1: building such a micro-batch is an error, not a silent fallback."""
    from ringrl.algorithms.types import Sample, SelectedSample

    carried = Sample("g0", 0, [5, 6], [7, 8, 9], old_logprobs=[-1.0, -2.0, -3.0], age=1)
    fresh = Sample("g1", 0, [5, 6], [10, 11])
    with pytest.raises(ValueError, match="pi_old"):
        update.build_micro_batches([SelectedSample(carried, 3, 0.1), SelectedSample(fresh, 2, 0.1)], 0, 1 << 20)
    # apart (or all with pi_old) they build, and the stored values land on the trained targets
    (mb,) = update.build_micro_batches([SelectedSample(carried, 2, 0.1)], 0, 1 << 20)
    assert mb.old_logprobs_BT is not None and mb.old_logprobs_BT[0].tolist() == [
        0.0,
        -1.0,
        -2.0,
    ]  # T = 2 + 2, targets t = 1, 2
    (mb,) = update.build_micro_batches([SelectedSample(fresh, 2, 0.1)], 0, 1 << 20)
    assert mb.old_logprobs_BT is None

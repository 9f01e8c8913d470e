"""GRPO advantages by hand: unbiased std, all-equal groups, K = 1, ragged groups."""

import math

import pytest
import torch

from ringrl.algorithms.advantages import assign_advantages, grpo_advantages

from .helpers import group


def test_grpo_advantages_by_hand_unbiased_std():
    # [1, 0, 0, 1]: mean 1/2, unbiased var = 4 * 1/4 / 3 = 1/3 -> A = +-(1/2) * sqrt(3)
    # [1, 0, 0, 0]: mean 1/4, unbiased var = (9/16 + 3/16) / 3 = 1/4 -> A = [3/2, -1/2, -1/2, -1/2]
    rewards_GK = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    got = grpo_advantages(rewards_GK, eps=0.0)
    h = math.sqrt(3) / 2
    expected = torch.tensor([[h, -h, -h, h], [1.5, -0.5, -0.5, -0.5]])
    assert torch.allclose(got, expected, atol=1e-6)
    # with eps: divided by (std + eps)
    got_eps = grpo_advantages(rewards_GK, eps=0.1)
    assert got_eps[1, 0].item() == pytest.approx(0.75 / 0.6, abs=1e-6)


def test_all_equal_group_and_single_sample_give_zero():
    got = grpo_advantages(torch.tensor([[0.3, 0.3, 0.3], [1.0, 1.0, 1.0], [0.0, 1.0, 0.5]]))
    assert got[:2].abs().max().item() == 0.0
    assert got[2].abs().max().item() > 0
    assert grpo_advantages(torch.tensor([[1.0], [0.0]])).abs().max().item() == 0.0


def test_assign_advantages_on_ragged_groups():
    groups = [
        group(0, [2, 3, 4, 5], rewards=[1.0, 0.0, 0.0, 0.0]),
        group(1, [1, 1], rewards=[1.0, 1.0]),
        group(2, [2, 2], rewards=[0.0, 1.0]),
    ]
    out = assign_advantages(groups, eps=0.0)
    assert [s.advantage for s in out[0].samples] == pytest.approx([1.5, -0.5, -0.5, -0.5])
    assert [s.advantage for s in out[1].samples] == [0.0, 0.0]
    # K = 2, [0, 1]: mean 1/2, unbiased std = sqrt(1/2) -> A = -+ 1/sqrt(2)
    assert [s.advantage for s in out[2].samples] == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert groups[0].samples[0].advantage == 0.0  # inputs untouched (frozen records, copies out)

"""Train-inference correction (TIS, IcePop) on crafted log-probs, against hand-derived weights."""

from __future__ import annotations

import math

import pytest
import torch

from ringrl.algorithms.correction import correction_weights
from ringrl.errors import ConfigError
from ringrl.rl.config import LossConfig


def lp(*xs: float) -> torch.Tensor:
    return torch.tensor([list(xs)], dtype=torch.float32)


def test_none_is_one():
    w = correction_weights(lp(-1.0, -2.0), lp(-3.0, -0.1), "none")
    assert w.tolist() == [[1.0, 1.0]]


def test_tis_is_min_k_high_by_hand():
    # k = exp(old - engine): 1, e^0.5 = 1.6487, e^1 = 2.718 (-> 2), e^-2 = 0.1353
    old = lp(-1.0, -1.0, -1.0, -3.0)
    eng = lp(-1.0, -1.5, -2.0, -1.0)
    w = correction_weights(old, eng, "tis")
    assert w[0].tolist() == pytest.approx([1.0, math.exp(0.5), 2.0, math.exp(-2.0)], rel=1e-6)
    assert correction_weights(old, eng, "tis", high=1.5)[0, 2].item() == pytest.approx(1.5, rel=1e-6)


@pytest.mark.parametrize("bound", ["low", "high"])
def test_icepop_boundaries(bound):
    low, high = 0.5, 5.0
    edge = math.log(low if bound == "low" else high)
    eps = 1e-4
    # engine 0, old = log k: exactly at the bound, just inside, just outside
    old = lp(edge, edge + eps if bound == "low" else edge - eps, edge - eps if bound == "low" else edge + eps)
    eng = lp(0.0, 0.0, 0.0)
    w = correction_weights(old, eng, "icepop", low, high)
    assert w[0].tolist() == [1.0, 1.0, 0.0]


def test_icepop_defaults_by_hand():
    # k = 1 (kept), 0.4 (< 0.5 dropped), 4.9 (kept), 6 (> 5 dropped)
    k = [1.0, 0.4, 4.9, 6.0]
    old = lp(*[math.log(x) - 2.0 for x in k])
    eng = lp(-2.0, -2.0, -2.0, -2.0)
    assert correction_weights(old, eng, "icepop")[0].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_tis_boundary_at_high():
    high = 2.0
    old = lp(math.log(high) - 1e-4, math.log(high), math.log(high) + 1e-4)
    w = correction_weights(old, lp(0.0, 0.0, 0.0), "tis", high=high)[0].tolist()
    assert w[0] == pytest.approx(high * math.exp(-1e-4), rel=1e-6) and w[0] < high
    assert w[1] == pytest.approx(high, rel=1e-6) and w[2] == pytest.approx(high, rel=1e-6)


def test_loss_config_bounds_depend_on_the_mode():
    assert LossConfig().correction_bounds() == (None, None)
    assert LossConfig(correction="tis").correction_bounds() == (None, 2.0)
    assert LossConfig(correction="icepop").correction_bounds() == (0.5, 5.0)
    assert LossConfig(correction="icepop", correction_high=3.0).correction_bounds() == (0.5, 3.0)
    for kw, key in [
        (dict(correction="icepop", correction_low=5.0), "loss.correction_low"),
        (dict(correction="icepop", correction_low=0.0), "loss.correction_low"),
        (dict(correction="tis", correction_high=float("nan")), "loss.correction_high"),
        (dict(correction="tis", correction_low=0.5), "loss.correction_low"),
    ]:
        with pytest.raises(ConfigError, match=key):
            LossConfig(**kw).validate()

"""Config values: bounds declared on fields, no NaN or infinity anywhere, and every error naming
the full dotted key (the section prefix added by validation, not written by hand)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ringrl.cli import main
from ringrl.config import check_bounds, doc, load_config, qualify, validate_all
from ringrl.errors import ConfigError
from ringrl.rl.config import RLConfig
from ringrl.sft.config import SFTConfig


@pytest.mark.parametrize(
    "cls, override, key, message",
    [
        (SFTConfig, "optim.betas=[0.9, 1.0]", "optim.betas[1]", "must be in [0, 1), got 1.0"),
        (SFTConfig, "optim.betas=[-0.1, 0.9]", "optim.betas[0]", "must be in [0, 1), got -0.1"),
        (RLConfig, "optim.weight_decay=nan", "optim.weight_decay", "must be a finite number, got nan"),
        (RLConfig, "optim.lr=inf", "optim.lr", "must be a finite number, got inf"),
        (RLConfig, "optim.lr=0", "optim.lr", "must be > 0, got 0.0"),
        (SFTConfig, "optim.eps=0", "optim.eps", "must be > 0, got 0.0"),
        (SFTConfig, "optim.grad_clip=-1", "optim.grad_clip", "must be >= 0, got -1.0"),
        (SFTConfig, "optim.warmup_ratio=1", "optim.warmup_ratio", "must be in [0, 1), got 1.0"),
        (SFTConfig, "optim.min_lr_ratio=1.5", "optim.min_lr_ratio", "must be in [0, 1], got 1.5"),
        (SFTConfig, "optim.schedule=linear", "optim.schedule", "must be 'cosine' or 'constant'"),
        (SFTConfig, "model.device=tpu", "model.device", "must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
        (RLConfig, "model.device=gpu0", "model.device", "got 'gpu0'"),
        (SFTConfig, "model.dtype=fp8", "model.dtype", "must be one of auto, float32"),
        (SFTConfig, "entropy.max_new_tokens=-5", "entropy.max_new_tokens", "must be >= 1"),
        (
            RLConfig,
            "former.budget_tokens=0",
            "former.budget_tokens",
            "must be >= 1, got 0",
        ),  # raised as 'budget_tokens'
        (RLConfig, "loss.beta=-1", "loss.beta", "must be >= 0"),
        (RLConfig, "rollout.temperature=nan", "rollout.temperature", "must be a finite number"),
        (SFTConfig, "save_every=-1", "save_every", "must be >= 0"),
    ],
)
def test_bad_values_name_the_full_dotted_key(cls, override, key, message):
    with pytest.raises(ConfigError) as e:
        load_config(cls, overrides=[override])
    assert e.value.key == key
    assert message in str(e.value)


def test_a_bad_value_on_the_command_line_is_one_line_and_exit_2(capsys):
    assert main(["sft", "optim.betas=[0.9, 1.5]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ringrl sft: error: config key 'optim.betas[1]': must be in [0, 1), got 1.5"


def test_qualify_adds_the_section_prefix_once():
    assert qualify("former.", "budget_tokens") == "former.budget_tokens"
    assert qualify("data.", "data.train_size") == "data.train_size"  # already written in full
    assert qualify("model.tiny.", "tiny.num_layers") == "model.tiny.num_layers"
    assert qualify("stage.optim.", "lr") == "stage.optim.lr"
    assert qualify("", "steps") == "steps"


def test_declared_bounds_are_checked_in_nested_sections_with_their_prefix():
    @dataclasses.dataclass(frozen=True)
    class Inner:
        rate: float = doc("a rate", 0.5, ge=0, le=1)
        sizes: tuple[int, int] = doc("two sizes", (1, 2), gt=0)

        def validate(self) -> None:
            if self.sizes[0] > self.sizes[1]:
                raise ConfigError("sizes", "first must not exceed second")

    @dataclasses.dataclass(frozen=True)
    class Outer:
        inner: Inner = doc("a section", default_factory=Inner)

    validate_all(Outer())
    for value, key, message in [
        (Inner(rate=1.01), "inner.rate", "must be in [0, 1], got 1.01"),
        (Inner(rate=float("nan")), "inner.rate", "got nan"),
        (Inner(sizes=(0, 2)), "inner.sizes[0]", "must be > 0, got 0"),
        (Inner(sizes=(3, 2)), "inner.sizes", "first must not exceed second"),
    ]:
        with pytest.raises(ConfigError) as e:
            validate_all(Outer(inner=value))
        assert e.value.key == key and message in str(e.value)
    check_bounds("x", None, {"gt": 0})  # an optional field left unset is not checked
    check_bounds("x", 0.0, {"ge": 0})  # exactly on an inclusive bound


def test_rl_help_shows_rls_own_defaults_and_no_embedded_model(capsys):
    with pytest.raises(SystemExit):
        main(["rl", "--help"])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert "(default 3e-06)" in lines["optim.lr"] and "(default 0.0)" in lines["optim.weight_decay"]
    assert "(default 'constant')" in lines["optim.schedule"]
    assert "null builds" not in out and "required" in lines["model.path"]
    sft = load_config(SFTConfig)
    assert sft.optim.lr == 3e-4  # SFT's defaults are untouched


def test_an_update_that_makes_weights_non_finite_stops_with_one_line():
    """A finite gradient, an optimizer whose step writes NaN (a numeric blow-up): the shared
    optimizer_step stops rather than train on (or save) such weights."""
    from ringrl.common_config import NonFiniteUpdate, optimizer_step, weights_finite

    model = torch.nn.Linear(3, 2)
    model(torch.ones(1, 3)).sum().backward()

    class Blowup(torch.optim.SGD):
        def step(self, closure=None):
            with torch.no_grad():
                model.weight[0, 0] = float("inf")

    with pytest.raises(NonFiniteUpdate, match="made the weights non-finite"):
        optimizer_step(model, Blowup(model.parameters(), lr=0.1), grad_clip=1.0)
    assert not weights_finite(model.parameters())
    good = torch.nn.Linear(3, 2)
    good(torch.ones(1, 3)).sum().backward()
    norm, ok = optimizer_step(good, torch.optim.SGD(good.parameters(), lr=0.1), grad_clip=1.0)
    assert ok and norm > 0 and weights_finite(good.parameters())

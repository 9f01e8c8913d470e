"""Config loading: YAML + dotted overrides, errors that name the key, partial sections."""

from __future__ import annotations

import pytest

from ringrl.config import load_config, parse_overrides, save_config
from ringrl.errors import ConfigError, UserError
from ringrl.rl.config import RLConfig
from ringrl.sft.config import SFTConfig


def test_overrides_parse_nested_and_typed():
    got = parse_overrides(["a.b=1", "a.c=2.5", "d=true", "e=[1, 2]", "f=null", "g=text", "h.i.j=0.5", "k="])
    assert got == {
        "a": {"b": 1, "c": 2.5},
        "d": True,
        "e": [1, 2],
        "f": None,
        "g": "text",
        "h": {"i": {"j": 0.5}},
        "k": "",
    }


def test_override_without_equals_is_user_error():
    with pytest.raises(UserError, match="key=value"):
        parse_overrides(["optim.lr"])


def test_overrides_reach_nested_fields_with_types():
    cfg = load_config(
        SFTConfig,
        overrides=[
            "optim.lr=1e-4",
            "epochs=2",
            "optim.betas=[0.8, 0.9]",
            "data.tasks=[math]",
            "model.path=/some/dir",
            "tensorboard=false",
        ],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(
        cfg.optim.lr, float
    )  # YAML reads "1e-4" as a string; the field type makes it a float
    assert cfg.epochs == 2
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.data.tasks == ["math"]
    assert cfg.model.path == "/some/dir"
    assert cfg.tensorboard is False
    # untouched fields keep their defaults
    assert cfg.optim.weight_decay == 0.1 and cfg.data.train_size == SFTConfig().data.train_size


def test_unknown_key_names_the_dotted_key():
    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, overrides=["optim.lrr=1e-4"])
    assert e.value.key == "optim.lrr"
    assert "optim.lrr" in str(e.value) and "unknown key" in str(e.value)
    with pytest.raises(ConfigError, match="'bogus'"):
        load_config(RLConfig, overrides=["bogus=1"])


@pytest.mark.parametrize(
    "item, key",
    [
        ("epochs=abc", "epochs"),
        ("optim.lr=fast", "optim.lr"),
        ("tensorboard=3", "tensorboard"),
        ("optim.betas=[0.9]", "optim.betas"),
        ("data.tasks=5", "data.tasks"),
        ("optim=3", "optim"),
    ],
)
def test_wrong_type_names_the_key(item, key):
    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, overrides=[item])
    assert e.value.key == key
    assert str(e.value).startswith(f"config key '{key}'")
    assert "\n" not in str(e.value)


def test_literal_and_validate_errors_name_the_key():
    with pytest.raises(ConfigError) as e:
        load_config(RLConfig, overrides=["algo=ppo"])
    assert e.value.key == "algo"
    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, overrides=["optim.lr=0"])
    assert e.value.key == "optim.lr"
    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, overrides=["model.tiny.hidden_size=30", "model.tiny.num_heads=4"])
    assert e.value.key == "model.tiny.hidden_size"


def test_bad_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("epochs: 2\noptim:\n  lr: 1e-4\n  betas: [0.9, 0.95\nout: x\n")
    with pytest.raises(UserError) as e:
        load_config(SFTConfig, path=p)
    msg = str(e.value)
    assert "\n" not in msg and "invalid YAML" in msg
    line = int(msg.split(f"{p}:")[1].split(":")[0])
    assert line in (4, 5)  # the unclosed list starts on line 4; the parser notices on line 5


def test_missing_yaml_and_non_mapping(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(SFTConfig, path=tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(SFTConfig, path=p)


def test_yaml_then_overrides_precedence_and_unknown_yaml_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 5\noptim:\n  lr: 0.001\n  grad_clip: 0.5\n")
    cfg = load_config(SFTConfig, path=p, overrides=["optim.lr=0.002"])
    assert (cfg.epochs, cfg.optim.lr, cfg.optim.grad_clip) == (5, 0.002, 0.5)
    p.write_text("optim:\n  learning_rate: 0.001\n")
    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, path=p)
    assert e.value.key == "optim.learning_rate"


def test_partial_section_merges_into_the_fields_own_default():
    """RL's optimizer default differs from the generic OptimConfig: overriding only lr keeps it."""
    default = RLConfig().optim
    cfg = load_config(RLConfig, overrides=["optim.lr=1e-2"])
    assert cfg.optim.lr == 1e-2
    assert cfg.optim.weight_decay == default.weight_decay == 0.0
    assert cfg.optim.schedule == default.schedule == "constant"
    assert cfg.optim.warmup_ratio == default.warmup_ratio
    # the same through a YAML section
    cfg2 = load_config(RLConfig, base={"optim": {"lr": 1e-2}})
    assert cfg2.optim == cfg.optim


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(
        RLConfig,
        overrides=[
            "algo=dapo",
            "former.budget_tokens=8192",
            "optim.betas=[0.8, 0.99]",
            "data.tasks=[math, logic]",
            "model.path=/x",
        ],
    )
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(RLConfig, path=tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("cls_path", ["ringrl.sft.config:SFTConfig", "ringrl.rl.config:RLConfig"])
@pytest.mark.parametrize(
    "override, key",
    [
        ("data.weights={physics: 2}", "data.weights"),
        ("data.levels={physics: [1]}", "data.levels"),
        ("data.weights={math: -1}", "data.weights"),
    ],
)
def test_task_mix_errors_name_the_key(cls_path, override, key):
    import importlib

    from ringrl.config import load_config
    from ringrl.errors import ConfigError

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(cls, overrides=["data.tasks=[math]", override])


def test_parallel_shard_size_needs_fsdp_and_a_divisor_of_the_world_size(monkeypatch):
    from ringrl.config import load_config
    from ringrl.errors import ConfigError
    from ringrl.rl.config import RLConfig

    with pytest.raises(ConfigError, match=r"'parallel.shard_size': needs parallel.strategy=fsdp"):
        load_config(RLConfig, overrides=["parallel.shard_size=2"])
    with pytest.raises(ConfigError, match=r"'parallel.shard_size'"):
        load_config(RLConfig, overrides=["parallel.strategy=fsdp", "parallel.shard_size=-1"])
    with pytest.raises(ConfigError, match=r"'parallel.shard_size': must divide the world size 1, got 8"):
        load_config(RLConfig, overrides=["parallel.strategy=fsdp", "parallel.shard_size=8"])
    monkeypatch.setenv("WORLD_SIZE", "16")  # as torchrun sets it
    assert load_config(RLConfig, overrides=["parallel.strategy=fsdp", "parallel.shard_size=8"]).parallel.shard_size == 8
    with pytest.raises(ConfigError, match=r"must divide the world size 16, got 6"):
        load_config(RLConfig, overrides=["parallel.strategy=fsdp", "parallel.shard_size=6"])

"""``ringrl --help`` and every sub-command's ``--help`` exit 0."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ringrl.cli import build_parser, main

EXPECTED = {"sft", "select-checkpoint", "rl", "verify", "eval", "curate", "report"}


def subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_expected_subcommands_are_registered():
    assert set(subcommands()) >= EXPECTED


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in subcommands():
        assert name in out


@pytest.mark.parametrize("name", subcommands())
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ringrl " + name)


def test_config_commands_list_their_fields(capsys):
    for name, field in (("sft", "optim.lr"), ("rl", "former.budget_tokens")):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert "config fields:" in out and field in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: ringrl" in capsys.readouterr().out


def test_console_script_help():
    script = shutil.which("ringrl") or str(Path(sys.executable).parent / "ringrl")
    cmd = (
        [script]
        if os.path.exists(script)
        else [sys.executable, "-c", "import sys; from ringrl.cli import main; sys.exit(main())"]
    )
    run = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "usage: ringrl" in run.stdout


def test_overrides_after_an_option_reach_the_command(tmp_path, capsys):
    """argparse fills a positional list once: key=value items after an option used to be
    'unrecognized arguments'; they now join the command's overrides, in order."""
    parser_args = ["pipeline", "p.yaml", "a.x=1", "--out", str(tmp_path), "--wandb", "b.y=2", "c.z=3"]
    build = build_parser()
    ns, extra = build.parse_known_args(parser_args)
    assert ns.overrides == ["a.x=1"] and extra == ["b.y=2", "c.z=3"]  # what argparse alone gives
    config = tmp_path / "p.yaml"
    config.write_text("out: x\nstages:\n  - {name: a, kind: report}\n")
    code = main(["pipeline", str(config), "--out", str(tmp_path / "o"), "nostage.steps=1"])
    assert code == 2 and "override for stage 'nostage': no such stage" in capsys.readouterr().err
    code = main(["rl", "--config", str(tmp_path / "none.yaml"), "steps=1"])
    assert code == 2 and "none.yaml: config file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # anything else left over is still argparse's error
        main(["rl", "steps=1", "--config", "c.yaml", "--bogus"])

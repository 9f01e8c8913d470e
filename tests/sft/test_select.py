"""select-checkpoint: the paper's rule on fabricated summaries, its table and selection.json."""

from __future__ import annotations

import json
import math

import pytest

from ringrl.cli import main
from ringrl.sft.select import band_distance, select_checkpoint


def ck(epoch, entropy, tokens=None, accuracy=0.5):
    return {
        "name": f"epoch-{epoch}",
        "path": f"checkpoints/epoch-{epoch}",
        "epoch": epoch,
        "tokens_seen": tokens if tokens is not None else 1000 * epoch,
        "entropy": entropy,
        "accuracy": accuracy,
    }


def test_in_band_takes_the_most_trained():
    cks = [ck(1, 0.70), ck(2, 0.45), ck(3, 0.38), ck(4, 0.25)]
    sel = select_checkpoint(cks, 0.3, 0.5)
    assert sel.in_band and sel.chosen["name"] == "epoch-3" and sel.band == (0.3, 0.5)
    # band edges are inside
    assert select_checkpoint([ck(1, 0.5), ck(2, 0.3), ck(3, 0.29)], 0.3, 0.5).chosen["name"] == "epoch-2"
    # most-trained is by tokens_seen, not by list order or accuracy
    cks = [ck(3, 0.4, tokens=500, accuracy=0.9), ck(1, 0.45, tokens=900, accuracy=0.1)]
    assert select_checkpoint(cks, 0.3, 0.5).chosen["name"] == "epoch-1"


@pytest.mark.parametrize("edge", ["high", "low"])
def test_band_edges_are_inside_and_their_neighbours_outside(edge):
    """The band is closed: [low, high]. A checkpoint exactly on an edge is in band (and, being the
    most trained, chosen over one well inside); one ``math.nextafter`` step outside the edge is not."""
    low, high = 0.3, 0.5
    at = high if edge == "high" else low
    beyond = math.nextafter(at, math.inf if edge == "high" else -math.inf)
    inside = ck(1, 0.4, tokens=100)
    sel = select_checkpoint([inside, ck(2, at, tokens=200)], low, high)
    assert sel.in_band and sel.chosen["name"] == "epoch-2"
    assert "2 checkpoint(s)" in sel.reason
    sel = select_checkpoint([inside, ck(2, beyond, tokens=200)], low, high)
    assert sel.in_band and sel.chosen["name"] == "epoch-1"
    assert "1 checkpoint(s)" in sel.reason
    # alone, on the edge it is in band; just outside it is not (and is the closest, so still chosen)
    assert select_checkpoint([ck(3, at)], low, high).in_band
    sel = select_checkpoint([ck(3, beyond)], low, high)
    assert not sel.in_band and sel.chosen["name"] == "epoch-3"
    assert band_distance(at, low, high) == 0.0 and band_distance(beyond, low, high) > 0.0


def test_none_in_band_takes_the_closest_and_says_so():
    cks = [ck(1, 0.90), ck(2, 0.62), ck(3, 0.55), ck(4, 0.59)]
    sel = select_checkpoint(cks, 0.3, 0.5)
    assert not sel.in_band and sel.chosen["name"] == "epoch-3"
    assert "no checkpoint" in sel.reason and "0.550" in sel.reason and "0.050" in sel.reason
    below = select_checkpoint([ck(1, 0.1), ck(2, 0.25), ck(3, 0.9)], 0.3, 0.5)
    assert below.chosen["name"] == "epoch-2" and not below.in_band


def test_ties():
    # equal distance on both sides of the band: the more-trained one wins
    sel = select_checkpoint([ck(1, 0.55), ck(2, 0.25)], 0.3, 0.5)
    assert sel.chosen["name"] == "epoch-2"
    sel = select_checkpoint([ck(2, 0.25), ck(1, 0.55)], 0.3, 0.5)
    assert sel.chosen["name"] == "epoch-2"
    # equal tokens_seen in band: the later epoch wins
    sel = select_checkpoint([ck(2, 0.4, tokens=100), ck(5, 0.45, tokens=100), ck(3, 0.35, tokens=100)], 0.3, 0.5)
    assert sel.chosen["name"] == "epoch-5"
    # same entropy outside, same tokens: the later epoch
    sel = select_checkpoint([ck(4, 0.6, tokens=7), ck(6, 0.6, tokens=7)], 0.3, 0.5)
    assert sel.chosen["name"] == "epoch-6"


def test_band_distance_and_bad_input():
    assert band_distance(0.4, 0.3, 0.5) == 0.0
    assert band_distance(0.2, 0.3, 0.5) == pytest.approx(0.1)
    assert band_distance(0.8, 0.3, 0.5) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        select_checkpoint([], 0.3, 0.5)
    with pytest.raises(ValueError):
        select_checkpoint([ck(1, 0.4)], 0.5, 0.3)


def write_run(tmp_path, cks):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"kind": "sft", "checkpoints": cks}))
    return run


def test_cli_table_and_selection_json(tmp_path, capsys):
    run = write_run(tmp_path, [ck(1, 1.2), ck(2, 0.9, accuracy=0.25), ck(3, 0.7)])
    assert main(["select-checkpoint", str(run), "--band", "0.8", "1.0"]) == 0
    out = capsys.readouterr().out
    for col in ("epoch", "tokens_seen", "entropy", "accuracy", "chosen"):
        assert col in out
    row = next(line for line in out.splitlines() if "2,000" in line)
    assert "0.900" in row and "0.250" in row and "<-" in row
    assert sum("<-" in line for line in out.splitlines()) == 1
    sel = json.loads((run / "selection.json").read_text())
    assert sel["chosen"] == "epoch-2" and sel["in_band"] is True and sel["band"] == [0.8, 1.0]
    assert sel["path"] == str((run / "checkpoints" / "epoch-2").resolve())
    assert (sel["entropy"], sel["tokens_seen"], sel["epoch"]) == (0.9, 2000, 2)


def test_cli_default_band_is_the_papers_and_warns_out_of_band(tmp_path, capsys):
    run = write_run(tmp_path, [ck(1, 1.2), ck(2, 0.9), ck(3, 0.7)])
    assert main(["select-checkpoint", str(run)]) == 0
    captured = capsys.readouterr()
    sel = json.loads((run / "selection.json").read_text())
    assert sel["band"] == [0.3, 0.5] and sel["in_band"] is False and sel["chosen"] == "epoch-3"
    assert "warning" in captured.err and "no checkpoint has entropy in [0.3, 0.5]" in captured.err


def test_cli_missing_or_bad_summary_exit_2(tmp_path, capsys):
    assert main(["select-checkpoint", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "summary.json" in err and "not found" in err and len(err.splitlines()) == 1
    run = write_run(tmp_path, [])
    assert main(["select-checkpoint", str(run)]) == 2
    assert "no checkpoints" in capsys.readouterr().err
    (run / "summary.json").write_text(json.dumps({"checkpoints": [{"name": "epoch-1", "entropy": "high"}]}))
    assert main(["select-checkpoint", str(run)]) == 2
    assert "entropy" in capsys.readouterr().err
    (run / "summary.json").write_text("{oops")
    assert main(["select-checkpoint", str(run)]) == 2
    assert "summary.json:1" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    run2 = write_run(tmp_path / "other", [ck(1, 0.4)])
    assert main(["select-checkpoint", str(run2), "--band", "0.5", "0.3"]) == 2
    assert "LOW" in capsys.readouterr().err
    assert not (run2 / "selection.json").exists()


def test_select_on_a_real_sft_run(tmp_path, ringrl_moe_dir, ringrl_util, capsys):
    """The whole path: an SFT run's summary -> selection.json naming a loadable checkpoint."""
    from transformers import AutoModelForCausalLM

    from ringrl.config import load_config
    from ringrl.sft.config import SFTConfig
    from ringrl.sft.trainer import train_sft

    out = tmp_path / "sft"
    cfg = load_config(
        SFTConfig,
        overrides=[
            f"model.path={ringrl_moe_dir}",
            "model.device=cpu",
            f"out={out}",
            "data.train_size=4",
            "data.eval_size=2",
            "epochs=2",
            "entropy.max_new_tokens=4",
            "progress=false",
            "tensorboard=false",
        ],
    )
    summary = train_sft(cfg, grader=ringrl_util.zero_grader)
    ents = sorted(c["entropy"] for c in summary["checkpoints"])
    assert main(["select-checkpoint", str(out), "--band", str(ents[0] - 1e-6), str(ents[-1] + 1e-6)]) == 0
    sel = json.loads((out / "selection.json").read_text())
    assert sel["chosen"] == "epoch-2" and sel["in_band"]
    assert AutoModelForCausalLM.from_pretrained(sel["path"]) is not None

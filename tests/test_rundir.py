"""Run directories (ringrl/utils/rundir.py): one writer, one run, no leftovers of a killed save.

The lock is a real ``flock``: a second open in this process conflicts like another process
would; the stale-lock case uses a child process killed with SIGKILL while it held the lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ringrl.errors import UserError
from ringrl.utils.rundir import open_run_dir, resume_from, truncate_metrics

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_second_writer_is_refused_and_the_lock_is_released_at_the_end(tmp_path):
    first = open_run_dir(tmp_path / "run", "sft", resume=False, overwrite=False)
    holder = json.loads((tmp_path / "run" / ".lock").read_text())
    assert holder["pid"] == os.getpid()
    with pytest.raises(UserError, match=rf"is in use by process {os.getpid()} on "):
        open_run_dir(tmp_path / "run", "sft", resume=True, overwrite=False)
    with pytest.raises(UserError, match="in use"):  # overwrite does not break a live lock either
        open_run_dir(tmp_path / "run", "sft", resume=False, overwrite=True)
    first.close()
    assert not (tmp_path / "run" / ".lock").exists()
    again = open_run_dir(tmp_path / "run", "sft", resume=True, overwrite=False)
    assert again.run_id == first.run_id and again.resuming
    again.close()


def test_a_second_cli_writer_gets_one_line_and_exit_2(tmp_path):
    held = open_run_dir(tmp_path / "run", "rl", resume=False, overwrite=False)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "ringrl", "rl", "model.path=unused", f"out={tmp_path / 'run'}", "resume=true"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
    finally:
        held.close()
    assert res.returncode == 2, res.stderr
    assert "is in use by process" in _one_line(res.stderr)


def test_the_lock_of_a_killed_process_is_taken_over_saying_so(tmp_path, capfd):
    run = tmp_path / "run"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from ringrl.utils.rundir import open_run_dir; "
            f"open_run_dir({str(run)!r}, 'sft', False, False); print('locked', flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    out, _ = child.communicate(timeout=120)
    assert "locked" in out and child.returncode == -signal.SIGKILL
    assert json.loads((run / ".lock").read_text())["pid"] == child.pid  # the dead holder's file is still there
    capfd.readouterr()
    rd = open_run_dir(run, "sft", resume=True, overwrite=False)
    err = capfd.readouterr().err
    assert f"taking over the lock of process {child.pid}" in err and "no longer running" in err
    assert rd.resuming  # the killed run is the one continued
    rd.close()


def _finished(path: Path, kind: str) -> str:
    rd = open_run_dir(path, kind, resume=False, overwrite=False)
    (path / "checkpoints" / "final").mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"kind": kind}))
    rd.finish()
    rd.close()
    return rd.run_id


def test_a_finished_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    run = tmp_path / "run"
    run_id = _finished(run, "rl")
    with pytest.raises(UserError, match=r"holds a finished rl run: resume=true continues it, overwrite=true"):
        open_run_dir(run, "rl", resume=False, overwrite=False)
    rd = open_run_dir(run, "rl", resume=True, overwrite=False)
    assert rd.resuming and rd.run_id == run_id
    assert json.loads((run / "run.json").read_text())["finished"] is False  # running again
    assert (run / "checkpoints" / "final").is_dir()
    rd.close()
    (run / "notes.txt").write_text("the user's own file")
    rd = open_run_dir(run, "rl", resume=False, overwrite=True)
    assert rd.run_id != run_id and not rd.resuming
    assert not (run / "checkpoints").exists() and not (run / "summary.json").exists()
    assert (run / "notes.txt").read_text() == "the user's own file"  # overwrite removes run artefacts only
    rd.close()


def test_a_run_of_another_kind_is_refused_even_with_resume(tmp_path):
    run = tmp_path / "run"
    _finished(run, "rl")
    for resume in (False, True):
        with pytest.raises(UserError, match=r"holds a rl run, not sft: choose another out, or overwrite=true"):
            open_run_dir(run, "sft", resume=resume, overwrite=False)
    rd = open_run_dir(run, "sft", resume=False, overwrite=True)
    assert json.loads((run / "run.json").read_text())["kind"] == "sft"
    rd.close()


def test_a_directory_written_before_run_json_is_recognised(tmp_path):
    """Legacy run directories (no run.json): the kind from summary.json or config.yaml."""
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.yaml").write_text("algo: c3po\nsteps: 2\n")
    (run / "summary.json").write_text(json.dumps({"kind": "rl"}))
    with pytest.raises(UserError, match="holds a rl run, not sft"):
        open_run_dir(run, "sft", resume=False, overwrite=False)
    with pytest.raises(UserError, match="holds a finished rl run"):
        open_run_dir(run, "rl", resume=False, overwrite=False)


def test_an_unfinished_run_not_resumed_is_refused_so_nothing_is_lost(tmp_path):
    run = tmp_path / "run"
    first = open_run_dir(run, "rl", resume=False, overwrite=False)
    (run / "checkpoints" / "step-4").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    first.close()  # killed, in effect: not finished
    with pytest.raises(UserError, match="holds an unfinished rl run .*resume=true continues it, overwrite=true starts"):
        open_run_dir(run, "rl", resume=False, overwrite=False)
    assert (run / "checkpoints" / "step-4").is_dir() and (run / "metrics.jsonl").is_file()  # kept
    second = open_run_dir(run, "rl", resume=False, overwrite=True)  # asked to: replaced
    assert second.run_id != first.run_id and not (run / "checkpoints").exists()
    second.close()


@pytest.mark.parametrize("case", ["file", "under-file"])
def test_an_output_path_that_cannot_be_a_directory_is_one_line(tmp_path, case):
    f = tmp_path / "f"
    f.write_text("x")
    out = f if case == "file" else f / "sub" / "run"
    with pytest.raises(UserError, match=r"config key 'out': .* (is a file|which is a file), not a directory"):
        open_run_dir(out, "sft", resume=False, overwrite=False)


def test_a_read_only_output_is_one_line_and_exit_2(tmp_path):
    """A real read-only bind mount (user + mount namespace), the run directory under it."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed for this test")
    ro = tmp_path / "ro"
    ro.mkdir()
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available here: {probe.stderr.decode().strip()}")
    script = (
        f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
        f"exec {sys.executable} -m ringrl sft out={ro / 'run'} progress=false"
    )
    res = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    line = _one_line(res.stderr)
    assert f"config key 'out': cannot create {ro / 'run'}" in line and "Read-only file system" in line


def test_leftovers_of_an_interrupted_save_are_removed_at_the_next_start(tmp_path, capfd):
    run = tmp_path / "run"
    ck = run / "checkpoints"
    (ck / ".step-2.k3j2.tmp").mkdir(parents=True)  # a checkpoint being written when the process died
    (ck / ".step-2.k3j2.tmp" / "model.safetensors").write_bytes(b"\0" * 10)
    (run / ".metrics.jsonl.ab12.tmp").write_text("{")  # an atomic file write
    (ck / ".final.old").mkdir()  # killed between the two renames of a replacement of 'final'
    (ck / ".final.old" / "config.json").write_text("{}")
    (ck / "step-1").mkdir()
    (ck / ".step-1.old").mkdir()  # the replacement of step-1 completed; the old copy is garbage
    (run / "run.json").write_text(json.dumps({"kind": "rl", "run_id": "r1", "finished": False}))
    capfd.readouterr()
    rd = open_run_dir(run, "rl", resume=True, overwrite=False)
    err = capfd.readouterr().err
    assert sorted(p.name for p in ck.iterdir()) == ["final", "step-1"]
    assert (ck / "final" / "config.json").is_file()
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoints", "run.json"]
    assert "restored" in err and "removed 3 temporary file(s) of an interrupted save" in err
    rd.close()


def _ckpt(run: Path, name: str, step: int, run_id: str) -> Path:
    d = run / "checkpoints" / name
    d.mkdir(parents=True)
    (d / "trainer_state.json").write_text(json.dumps({"step": step, "run_id": run_id}))
    (d / "payload").write_text(name)
    return d


def _load(d: Path, state: dict) -> str:
    text = (d / "payload").read_text()
    if text == "damaged":
        raise EOFError("Ran out of input")
    return text


def test_resume_uses_only_this_runs_checkpoints_and_falls_back_past_damaged_ones(tmp_path, capfd):
    run = tmp_path / "run"
    _ckpt(run, "step-2", 2, "mine")
    _ckpt(run, "step-4", 4, "mine")
    _ckpt(run, "final", 9, "other-run")  # more advanced, but another run's: never used
    assert resume_from(run, "mine", _load) == (run / "checkpoints" / "step-4", "step-4")
    (run / "checkpoints" / "step-4" / "payload").write_text("damaged")
    capfd.readouterr()
    assert resume_from(run, "mine", _load) == (run / "checkpoints" / "step-2", "step-2")
    err = capfd.readouterr().err
    assert "step-4 is damaged (EOFError: Ran out of input); resuming from step-2 instead" in err
    (run / "checkpoints" / "step-2" / "trainer_state.json").write_text('{"step": 2, "run_')  # torn
    with pytest.raises(UserError, match=r"no intact checkpoint to resume from .*overwrite=true starts the run over"):
        resume_from(run, "mine", _load)
    assert resume_from(tmp_path / "empty", "mine", _load) is None


def test_a_torn_last_metrics_line_is_dropped_at_resume(tmp_path, capfd):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a": 3}\n{"step": 4, "a"')
    truncate_metrics(tmp_path, 2)
    assert [json.loads(line)["step"] for line in p.read_text().splitlines()] == [1, 2]
    assert "dropped 1 unreadable line(s)" in capfd.readouterr().err

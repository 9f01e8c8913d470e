"""Run directories: one writer at a time, one run per directory, no leftovers of a killed save.

Every training command (``sft``, ``rl``) opens its run directory with :func:`open_run_dir`
before it starts work, and closes it at the end:

- **Lock.** ``RUN_DIR/.lock`` is held (``flock``) for the whole run and names the process
  that holds it. A second writer gets one line and exit code 2. A lock file left by a
  process that died (``kill -9``) holds no ``flock`` any more and is taken over, saying so.
  Under ``torchrun`` rank 0 holds it for all ranks.
- **One run per directory.** ``RUN_DIR/run.json`` records the run's kind (``sft``/``rl``),
  a run id and whether it finished. A directory that holds a finished run, or a run of
  another kind, is refused unless ``resume=true`` (same kind: it continues) or
  ``overwrite=true`` (its run artefacts are removed first); so is an unfinished run of the
  same kind (its checkpoints are never deleted unasked), so that checkpoints of two runs
  never mix. Every checkpoint records the run id; resume uses only those of the
  directory's run.
- **Leftovers of an interrupted save.** Temporary files and directories (``.NAME.*.tmp``)
  are removed at the next start; a checkpoint caught between the two renames of a
  replacement (only ``.NAME.old`` left) is moved back.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ringrl.errors import UserError

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
# what a training run writes; overwrite=true removes these and nothing else of a directory
RUN_ARTEFACTS = ("run.json", "config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "tb", "base")


def note(message: str) -> None:
    """One line on stderr for something the user should know but that is not an error."""
    print(f"ringrl: note: {message}", file=sys.stderr, flush=True)


@dataclass
class RunDir:
    """An open run directory (rank 0 holds the lock; other ranks hold ``None``)."""

    path: Path
    kind: str
    run_id: str
    resuming: bool  # resume=true found a run of this kind to continue
    _lock_fd: int | None = field(default=None, repr=False)

    def finish(self) -> None:
        """Mark the run finished (rank 0): a later run into this directory needs resume or overwrite."""
        if self._lock_fd is not None:
            _write_run_file(self.path, {**_read_run_file(self.path), "finished": True, "finished_at": _now()})

    def close(self) -> None:
        """Release the lock (rank 0); the lock file is removed while it is still held."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path / LOCK_FILE)
        os.close(fd)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run_dir(path: str | Path, kind: str, resume: bool, overwrite: bool, dist: Any = None) -> RunDir:
    """Lock ``path`` and make it this run's directory (see the module docstring).

    Under data parallelism (``dist`` with several ranks) rank 0 does the work and every
    rank gets the same run id, or the same one-line error."""
    from ringrl.distributed import Dist, broadcast_object

    dist = dist or Dist()
    p = Path(path)
    rd: RunDir | None = None
    outcome: Any = None
    if dist.is_main:
        try:
            opened = _open(p, kind, resume, overwrite)
            rd, outcome = opened, (opened.run_id, opened.resuming)
        except UserError as e:
            outcome = str(e)
    outcome = broadcast_object(outcome, dist)
    if isinstance(outcome, str):
        raise UserError(outcome)
    if rd is None:
        rd = RunDir(p, kind, outcome[0], outcome[1])
    return rd


def _open(p: Path, kind: str, resume: bool, overwrite: bool) -> RunDir:
    ensure_dir(p, "out")
    fd = _lock(p)
    try:
        clean_interrupted_saves(p)
        info = describe_run(p)
        resuming = False
        if info is None:
            run_id = _new_id()
        elif overwrite:
            note(f"{p}: overwrite=true, removing the {info.get('kind') or 'earlier'} run there first")
            clear_run(p)
            run_id = _new_id()
        elif info.get("kind") not in (None, kind):
            raise UserError(
                f"{p} holds a {info['kind']} run, not {kind}: choose another out, or overwrite=true to replace it"
            )
        elif resume:
            run_id, resuming = info.get("run_id") or "", True
        elif info.get("finished"):
            raise UserError(
                f"{p} holds a finished {kind} run: resume=true continues it, overwrite=true replaces it, "
                "or choose another out"
            )
        else:  # an interrupted run's checkpoints are never deleted without being asked to
            raise UserError(
                f"{p} holds an unfinished {kind} run (interrupted or stopped): resume=true continues it, "
                "overwrite=true starts over, or choose another out"
            )
        record = {"kind": kind, "run_id": run_id, "finished": False, "started_at": _now()}
        if resuming:
            record = {**_read_run_file(p), **record, "started_at": _read_run_file(p).get("started_at", _now())}
        _write_run_file(p, record)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(p / LOCK_FILE)
        os.close(fd)
        raise
    return RunDir(p, kind, run_id, resuming, fd)


def ensure_dir(p: Path, key: str) -> None:
    """Create directory ``p`` (config key ``key``) or raise one line saying why it cannot be written."""
    for parent in [p, *p.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == p else f"is under {parent}, which is a file"
            raise UserError(f"config key '{key}': {p} {where}, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"config key '{key}': cannot create {p} ({e.strerror or e})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"config key '{key}': {p} is not writable")


def _lock(p: Path) -> int:
    """Take ``p/.lock`` (``flock``, non-blocking); returns its descriptor, or raises one line naming the holder."""
    lock = p / LOCK_FILE
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"config key 'out': cannot write in {p} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}" if holder else "another process"
                raise UserError(f"{p} is in use by {who} (lock {lock}); wait for it or choose another out") from None
            raise UserError(f"config key 'out': cannot lock {lock} ({e.strerror or e})") from None
        # the holder we waited for may have removed the file we opened: lock the file that is there now
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = _read_holder(fd)
    if stale:
        note(
            f"{p}: taking over the lock of process {stale.get('pid', '?')} on {stale.get('host', '?')}, "
            "which is no longer running"
        )
    me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, me, 0)
    return fd


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        out = json.loads(raw.decode()) if raw.strip() else {}
        return out if isinstance(out, dict) else {}
    except (OSError, ValueError):
        return {}


def clean_interrupted_saves(p: Path) -> None:
    """Remove what a killed atomic write left behind in ``p`` and ``p/checkpoints``."""
    removed = 0
    for d in (p, p / "checkpoints"):
        if not d.is_dir():
            continue
        for entry in sorted(d.iterdir()):
            name = entry.name
            if name.startswith(".") and name.endswith(".old"):
                final = d / name[1:-4]
                if not final.exists():  # killed between moving the old one away and the new one in
                    os.replace(entry, final)
                    note(f"restored {final} (a replacement of it was interrupted)")
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
            elif name.startswith(".") and name.endswith(".tmp"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
    if removed:
        note(f"{p}: removed {removed} temporary file(s) of an interrupted save")


def describe_run(p: Path) -> dict[str, Any] | None:
    """``run.json`` of ``p``; for a directory written before run.json existed, what its files say;
    None when ``p`` holds no run."""
    info = _read_run_file(p)
    if info:
        return info
    if not any((p / name).exists() for name in RUN_ARTEFACTS):
        return None
    kind = None
    summary = p / "summary.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        kind = json.loads(summary.read_text()).get("kind")
    if kind is None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            import yaml

            cfg = yaml.safe_load((p / "config.yaml").read_text()) or {}
            kind = "rl" if "algo" in cfg else "sft" if "epochs" in cfg else None
    # a summary may be an unfinished SFT run's (written every epoch): counted as finished all the
    # same, so that such a directory is refused rather than cleared without resume or overwrite
    return {"kind": kind, "run_id": None, "finished": summary.is_file()}


def clear_run(p: Path) -> None:
    """Remove a run's artefacts from ``p`` (nothing else: a directory may hold the user's own files)."""
    for name in RUN_ARTEFACTS:
        target = p / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def _read_run_file(p: Path) -> dict[str, Any]:
    f = p / RUN_FILE
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{f}: unreadable run record (overwrite=true replaces the run)") from None
    if not isinstance(data, dict):
        raise UserError(f"{f}: unreadable run record (overwrite=true replaces the run)")
    return data


def _write_run_file(p: Path, record: dict[str, Any]) -> None:
    from ringrl.utils.io import write_json

    write_json(p / RUN_FILE, record)


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------- resume
def resume_from(run_dir: Path, run_id: str, load: Any) -> tuple[Path, Any] | None:
    """The newest checkpoint of run ``run_id`` that ``load(path, trainer_state)`` reads without error,
    with what it returned; None when the run has no checkpoint yet.

    ``load`` must read everything it needs before it changes anything (so that a failure
    leaves the trainer as it was). A checkpoint that fails (truncated ``optimizer.pt``,
    corrupt ``trainer_state.json`` or weights) is passed over for the previous one, saying
    so; when every checkpoint of the run fails, one line and exit code 2."""
    candidates: list[tuple[int, Path, dict[str, Any]]] = []
    broken: list[str] = []
    root = Path(run_dir) / "checkpoints"
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        f = d / "trainer_state.json"
        if d.name.startswith(".") or not d.is_dir() or not f.exists():
            continue
        try:
            state = json.loads(f.read_text(encoding="utf-8"))
            step = int(state["step"])
        except (OSError, ValueError, KeyError, TypeError):
            note(f"{f} is unreadable; checkpoint {d.name} is skipped")
            broken.append(d.name)
            continue
        if (state.get("run_id") or "") != run_id:
            continue  # another run's checkpoint (copied in): never resumed from
        candidates.append((step, d, state))
    candidates.sort(key=lambda c: (c[0], c[1].name == "final"), reverse=True)
    for i, (_, d, state) in enumerate(candidates):
        try:
            return d, load(d, state)
        except Exception as e:  # torch, safetensors and json raise many kinds for a damaged file
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}" if str(e) else type(e).__name__
            after = f"resuming from {candidates[i + 1][1].name} instead" if i + 1 < len(candidates) else ""
            note(f"checkpoint {d} is damaged ({why}); {after or 'no earlier checkpoint'}")
            broken.append(d.name)
    if broken:
        raise UserError(
            f"{run_dir}: no intact checkpoint to resume from ({', '.join(broken)} damaged); "
            "overwrite=true starts the run over"
        )
    return None


def truncate_metrics(run_dir: Path, step: int) -> None:
    """Keep the metric lines up to ``step`` (those after the checkpoint a resume starts from are
    dropped). A torn line (a kill in the middle of a write) is dropped, saying so."""
    p = Path(run_dir) / "metrics.jsonl"
    if not p.is_file():
        return
    from ringrl.utils.io import atomic_write_text

    keep, torn = [], 0
    for line in p.read_bytes().decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            s = int(rec.get("step", 0))
        except (ValueError, AttributeError, TypeError):
            torn += 1
            continue
        if s <= step:
            keep.append(line)
    if torn:
        note(f"{p}: dropped {torn} unreadable line(s) (a write interrupted by a kill)")
    atomic_write_text(p, "".join(line + "\n" for line in keep))


def resume_blob(optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """What ``optimizer.pt`` holds besides the weights: optimizer, schedule and RNG states
    (``optimizer`` None: a sharded model's, kept in the checkpoint's ``distcp/`` instead)."""
    import random

    import torch

    return {
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }


def read_resume_blob(ckpt: Path) -> dict[str, Any]:
    """``optimizer.pt`` of a checkpoint, read whole (a truncated file raises here, before anything changed)."""
    import torch

    blob = torch.load(Path(ckpt) / "optimizer.pt", weights_only=False, map_location="cpu")
    if not isinstance(blob, dict) or not {"optimizer", "scheduler", "torch_rng", "python_rng"} <= set(blob):
        raise ValueError("optimizer.pt lacks the optimizer, scheduler or RNG states")
    return blob


def apply_resume_blob(blob: dict[str, Any], optimizer: Any, scheduler: Any) -> None:
    """Restore the optimizer (it moves its state to each parameter's device), schedule and RNG states."""
    import random

    import torch

    if blob["optimizer"] is not None:  # None: restored with the sharded weights (apply_weights)
        optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(blob["python_rng"])


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` periodic ``step-N`` checkpoints (a run directory holds one run)."""
    steps = sorted(
        (int(d.name.split("-")[1]), d)
        for d in (Path(run_dir) / "checkpoints").glob("step-*")
        if d.name.split("-")[1].isdigit()
    )
    for _, d in steps[: max(0, len(steps) - keep)]:
        shutil.rmtree(d, ignore_errors=True)

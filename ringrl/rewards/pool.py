"""RewardPool: one call scores a whole batch in parallel, in input order, and never raises.

Two kinds of workers, both started lazily and reused across calls:

- **grader processes** (``multiprocessing`` spawn context) for math, science, logic and
  registered domains. Math-Verify uses signal-based timeouts, so it must run in a
  process's main thread; the pool also enforces a hard per-item limit (``timeout``):
  a worker past it is killed and replaced, and the item gets status ``timeout``.
- **sandbox zygotes** (:class:`~ringrl.rewards.sandbox.Sandbox`) for code, one per
  worker slot; ``code_timeout`` is the wall limit of one execution (one test case in
  stdin/stdout mode), the parent adds an outer deadline per item.

The parent does the cheap part itself: row validation, extraction of the last box
(a response without one is ``no_answer`` at once), an exact-string fast path, and
code-block extraction; only the answer (not the whole response) travels to a grader.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import select
import subprocess
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from ringrl.rewards.codejudge import build_job, job_seconds, to_verdict
from ringrl.rewards.extract import extract_last_boxed
from ringrl.rewards.grading import _gold_text, fast_verdict, normalize_answer
from ringrl.rewards.logic import normalize_logic
from ringrl.rewards.registry import get_spec, row_problem
from ringrl.rewards.sandbox import Limits, Sandbox, SandboxDied
from ringrl.rewards.types import Verdict

_OUTER_GRACE_S = 5.0
_CACHE_SIZE = 100_000
_NOT_GRADED = ("id", "response")  # row fields no built-in verifier reads
Item = int | tuple[int, ...]  # what a worker holds: one item, or a chunk for a batched reward function


def _size(item: Item) -> int:
    return len(item) if isinstance(item, tuple) else 1


def _cache_key(domain: str, row: Mapping[str, Any], pred: str) -> tuple[str, str, str] | None:
    """Everything a built-in verdict can depend on: the domain, the boxed answer and every
    field of the row but ``id`` and ``response`` (a registered logic checker may read any
    field). None when the row cannot be serialised canonically: such an item is not cached."""
    fields = {k: v for k, v in row.items() if k not in _NOT_GRADED}
    try:
        return (domain, pred, json.dumps(fields, sort_keys=True, default=repr))
    except (TypeError, ValueError):
        return None


def _positive_seconds(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return v


@dataclass
class PoolStats:
    """Counters of what a pool did (tests assert on these, never on time)."""

    graded: int = 0  # items sent to a grader process
    cache_hits: int = 0  # items answered from the verdict cache (earlier calls)
    batch_duplicates: int = 0  # items that shared the grading of an identical item in the same call
    code_runs: int = 0  # jobs sent to a sandbox (retries included)
    code_retries: int = 0  # jobs run again on a fresh sandbox after a sandbox failure not their own
    sandboxes_started: int = 0


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
    return env


@dataclass
class _Grader:
    """A grader process (``ringrl.rewards._grader``) and its two pipe ends."""

    proc: subprocess.Popen[bytes]
    tx: Connection
    rx: Connection
    ready: bool = False
    item: Item | None = None
    deadline: float = 0.0

    @staticmethod
    def start() -> _Grader:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ringrl.rewards._grader"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_env(),
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        tx = Connection(os.dup(proc.stdin.fileno()), readable=False)
        rx = Connection(os.dup(proc.stdout.fileno()), writable=False)
        proc.stdin.close()
        proc.stdout.close()
        return _Grader(proc, tx, rx, deadline=time.monotonic() + 120.0)  # start-up limit

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(5)
        except Exception:
            pass
        for c in (self.tx, self.rx):
            with contextlib.suppress(Exception):
                c.close()


@dataclass
class _Box:
    sandbox: Sandbox
    item: Item | None = None
    deadline: float = 0.0


class RewardPool:
    """Parallel, reusable scorer of ``(row, response)`` pairs.

    ``workers`` (default: the CPU count) grader processes and as many code sandboxes;
    ``timeout``: hard limit per math/science/logic item in seconds; ``code_timeout``:
    wall limit per program execution; ``limits``: the other sandbox limits.
    Without sandbox isolation, code rows get status ``error`` (the reason in the detail)
    unless ``unsafe_no_sandbox`` (or ``RINGRL_SANDBOX_UNSAFE=1``) allows rlimits only.
    ``reward_fn``: a picklable ``(row, response) -> Verdict`` that scores every row in the
    grader processes instead of the domain verifiers (``reward.function``, :mod:`.custom`);
    when it has ``batched`` true, each grader gets one contiguous chunk of the call's items
    through its ``score_many(rows, responses) -> list[Verdict]``, with a time limit of
    ``timeout`` per item of the chunk.
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = 5.0,
        code_timeout: float = 10.0,
        limits: Limits | None = None,
        unsafe_no_sandbox: bool = False,
        reward_fn: Callable[[Mapping[str, Any], str], Verdict] | None = None,
    ):
        self.reward_fn = reward_fn
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.timeout = _positive_seconds("timeout", timeout)
        self.limits = Limits(timeout=_positive_seconds("code_timeout", code_timeout)) if limits is None else limits
        self.unsafe_no_sandbox = bool(unsafe_no_sandbox)
        self.stats = PoolStats()
        self._graders: list[_Grader] = []
        self._boxes: list[_Box] = []
        self._closed = False
        self._starts = 0  # grader processes started (bounded per call: no respawn storm)
        # (domain, boxed answer, row fields) -> Verdict: a group of K samples often
        # repeats the same final answer, and Math-Verify is the slow part.
        self._cache: OrderedDict[tuple[str, str, str], Verdict] = OrderedDict()

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- workers --------------------------------------------------------------
    def _new_grader(self) -> _Grader:
        self._starts += 1
        return _Grader.start()

    def _ensure_graders(self) -> None:
        alive = []
        for g in self._graders:
            if g.alive():
                alive.append(g)
            else:
                g.kill()
        self._graders = alive
        while len(self._graders) < self.workers:
            self._graders.append(self._new_grader())

    def _ensure_boxes(self) -> str | None:
        """Start missing sandboxes; the error text if none can start."""
        alive = []
        for b in self._boxes:
            if b.sandbox.alive():
                alive.append(b)
            else:
                b.sandbox.close()
        self._boxes = alive
        err = None
        while len(self._boxes) < self.workers:
            try:
                self._boxes.append(_Box(self._new_sandbox()))
            except (SandboxDied, OSError) as e:
                err = str(e)
                break
        return None if self._boxes else (err or "sandbox unavailable")

    # -- scoring --------------------------------------------------------------
    def _prepare(self, row: Any, response: Any) -> tuple[str, Any]:
        """``("done", Verdict)``, ``("grade", (fn, row, response))`` or ``("code", job)``."""
        if not isinstance(response, str):
            response = "" if response is None else str(response)
        if self.reward_fn is not None:
            return "grade", (self.reward_fn, dict(row), response)
        problem = row_problem(row)
        if problem is not None:
            field, msg = problem
            return "done", Verdict.of("error", f"field '{field}': {msg}")
        spec = get_spec(row["domain"])
        assert spec is not None
        if spec.fn is None:
            job = build_job(row, response, self.limits)
            return ("done", job) if isinstance(job, Verdict) else ("code", job)
        inner = max(1, int(self.timeout * 0.8))
        if not spec.boxed_only:
            return "grade", (spec.fn, dict(row), response)
        pred = extract_last_boxed(response)
        if pred is None:
            return "done", Verdict.of("no_answer", "no \\boxed{} answer")
        if spec.domain == "math":
            fast = fast_verdict(_gold_text(row["answer"]), pred)
            if fast is not None:
                return "done", fast
        if spec.domain == "science" and normalize_answer(pred) == normalize_answer(_gold_text(row["answer"])):
            return "done", Verdict.of("correct", "exact match")
        if (
            spec.domain == "logic"
            and (row.get("checker") or "exact") == "exact"
            and normalize_logic(pred) == normalize_logic(row["answer"])
        ):
            return "done", Verdict.of("correct", "exact match")
        key = _cache_key(spec.domain, row, pred)
        hit = self._cache.get(key) if key is not None else None
        if hit is not None:
            self.stats.cache_hits += 1
            return "done", hit
        # the built-in boxed verifiers (math, science, logic) take a time limit besides (row, response)
        graded = cast(Callable[..., Verdict], spec.fn)
        return "grade", (functools.partial(graded, timeout=inner), dict(row), "\\boxed{" + pred + "}", key)

    def score(
        self, rows: Sequence[Mapping[str, Any]], responses: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> list[Verdict]:
        """Verdicts for ``zip(rows, responses)`` in input order. Never raises for any response.

        ``progress(n)`` is called with the number of items finished since the last call.
        """
        if self._closed:
            raise RuntimeError("RewardPool is closed")
        if len(rows) != len(responses):
            raise ValueError(f"{len(rows)} rows but {len(responses)} responses")
        n = len(rows)
        out: list[Verdict | None] = [None] * n
        grade_q: deque[tuple[Item, Any]] = deque()
        code_q: deque[tuple[Item, Any]] = deque()
        if self.reward_fn is not None and getattr(self.reward_fn, "batched", False) is True and n:
            self._chunks(rows, responses, grade_q)
            self._ensure_graders()
            with self._dropping_busy_on_error():
                self._loop(out, grade_q, code_q, {}, progress, self._starts)
            return _filled(out)
        done_now = 0
        keys: dict[int, tuple[str, str, str]] = {}
        leaders: dict[tuple[str, str, str], int] = {}  # cache key -> the item graded for it
        followers: dict[int, int] = {}  # item -> the item with the same key in this batch
        for i, (row, resp) in enumerate(zip(rows, responses)):
            try:
                kind, payload = self._prepare(row, resp)
            except Exception as e:  # a verifier bug must not take the batch down
                kind, payload = "done", Verdict.of("error", f"{type(e).__name__}: {e}")
            if kind == "done":
                out[i] = payload
                done_now += 1
            elif kind == "grade":
                if len(payload) == 4:  # a built-in boxed verifier: grade each distinct answer once
                    key = payload[3]
                    payload = payload[:3]
                    if key is None:
                        grade_q.append((i, payload))
                        continue
                    if key in leaders:
                        followers[i] = leaders[key]
                        self.stats.batch_duplicates += 1
                        continue
                    leaders[key], keys[i] = i, key
                grade_q.append((i, payload))
            else:
                code_q.append((i, payload))
        if progress and done_now:
            progress(done_now)
        if grade_q:
            self._ensure_graders()
        if code_q:
            err = self._ensure_boxes()
            if err is not None:
                for item, _ in code_q:
                    assert isinstance(item, int)  # code items are never chunked
                    out[item] = Verdict.of("error", err if err.startswith("sandbox") else f"sandbox: {err}")
                if progress:
                    progress(len(code_q))
                code_q.clear()
        with self._dropping_busy_on_error():
            self._loop(out, grade_q, code_q, {i: job for i, job in code_q}, progress, self._starts)
        for i, j in followers.items():
            out[i] = out[j]
        if progress and followers:
            progress(len(followers))
        for i, key in keys.items():
            v = out[i]
            if v is not None and v.status in ("correct", "wrong"):
                self._cache[key] = v
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return _filled(out)

    def _chunks(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[Any], q: deque[tuple[Item, Any]]) -> None:
        """Queue the whole call as one contiguous chunk per worker for a batched reward function."""
        assert self.reward_fn is not None
        n = len(rows)
        k = min(self.workers, n)
        texts = [r if isinstance(r, str) else ("" if r is None else str(r)) for r in responses]
        score_many = self.reward_fn.score_many  # type: ignore[attr-defined]  # present whenever batched is
        for c in range(k):
            idx = tuple(range(c * n // k, (c + 1) * n // k))
            q.append((idx, (score_many, [dict(rows[i]) for i in idx], [texts[i] for i in idx])))

    @contextlib.contextmanager
    def _dropping_busy_on_error(self) -> Iterator[None]:
        try:
            yield
        except BaseException:  # e.g. Ctrl-C: busy workers would answer into the next call
            self._drop_busy()
            raise

    def _loop(
        self,
        out: list[Verdict | None],
        grade_q: deque[tuple[Item, Any]],
        code_q: deque[tuple[Item, Any]],
        code_jobs: dict[Item, Any],
        progress: Callable[[int], None] | None,
        starts_at_entry: int,
    ) -> None:
        attempts: dict[Item, int] = {}  # item -> times it was run again

        def finish(i: Item, v: Any) -> None:
            """Item ``i``'s verdict; for a chunk, a list of them in order (or one for all of it)."""
            idx = i if isinstance(i, tuple) else (i,)
            vs = v if isinstance(v, list) and len(v) == len(idx) else [v] * len(idx)
            for j, x in zip(idx, vs):
                out[j] = checked_verdict(x)
            if progress:
                progress(len(idx))

        def retry(i: Item, why: str) -> None:
            """Run item ``i`` again on a fresh sandbox, once: the failure was the sandbox's."""
            if attempts.get(i, 0) >= 1:
                finish(i, Verdict.of("error", why))
                return
            attempts[i] = attempts.get(i, 0) + 1
            self.stats.code_retries += 1
            code_q.appendleft((i, code_jobs[i]))

        while True:
            now = time.monotonic()
            for g in self._graders:
                while g.ready and g.item is None and grade_q:
                    i, task = grade_q.popleft()
                    try:
                        g.tx.send(task)
                        self.stats.graded += 1
                        g.item, g.deadline = i, now + self.timeout * _size(i)
                    except Exception as e:
                        finish(i, Verdict.of("error", f"could not send to grader: {type(e).__name__}"))
                        g.kill()
            for b in list(self._boxes):
                if b.item is None and code_q:
                    i, job = code_q.popleft()
                    try:
                        b.sandbox.submit(job)
                        self.stats.code_runs += 1
                        b.item = i
                        b.deadline = now + job_seconds(job) + _OUTER_GRACE_S
                    except SandboxDied as e:  # it died idle: not this item's doing
                        self._replace_box(b)
                        retry(i, f"sandbox: {e}")
            starting = [g for g in self._graders if not g.ready and g.alive()]
            busy_g = [g for g in self._graders if g.item is not None]
            busy_b = [b for b in self._boxes if b.item is not None]
            if not busy_g and not busy_b and not (starting and grade_q):
                if grade_q or code_q:  # every worker died: start new ones, within a bound
                    if grade_q and self._starts > starts_at_entry + 3 * self.workers:
                        for i, _ in grade_q:
                            finish(i, Verdict.of("error", "grader processes keep dying"))
                        grade_q.clear()
                    elif grade_q:
                        self._ensure_graders()
                    if code_q and self._ensure_boxes() is not None:
                        for i, _ in code_q:
                            finish(i, Verdict.of("error", "sandbox unavailable"))
                        code_q.clear()
                    continue
                return
            nearest = min([g.deadline for g in busy_g] + [b.deadline for b in busy_b] + [g.deadline for g in starting])
            fds: dict[int, Any] = {g.rx.fileno(): g for g in busy_g + starting}
            fds.update({b.sandbox.fileno(): b for b in busy_b})
            ready, _, _ = select.select(list(fds), [], [], max(0.0, nearest - time.monotonic()))
            for fd in ready:
                w = fds[fd]
                if isinstance(w, _Grader):
                    item = w.item
                    try:
                        v = w.rx.recv()
                    except (EOFError, OSError):
                        v = Verdict.of("error", "grader process died")
                        w.kill()
                        self._graders.remove(w)
                    if item is None:  # the start-up "ready" message (or its death)
                        w.ready = v == "ready"
                        continue
                    w.item = None
                    finish(item, v)
                else:
                    item = w.item
                    assert item is not None
                    try:
                        res = w.sandbox.poll_result()
                    except SandboxDied as e:
                        self._replace_box(w)
                        retry(item, f"sandbox: {e}")
                        continue
                    if res is not None and res.get("internal"):  # the zygote failed, then exited
                        self._replace_box(w)
                        retry(item, str(res.get("detail", "sandbox failure")))
                    elif res is not None:
                        w.item = None
                        finish(item, to_verdict(res))
            now = time.monotonic()
            for g in list(self._graders):
                if not g.ready and g.item is None and now >= g.deadline:
                    g.kill()
                    self._graders.remove(g)
                if g.item is not None and now >= g.deadline:
                    item = g.item
                    self._replace_grader(g)
                    finish(item, Verdict.of("timeout", f"grading took longer than {self.timeout * _size(item):g}s"))
            for b in list(self._boxes):
                if b.item is not None and now >= b.deadline:
                    item = b.item
                    self._replace_box(b)
                    limit = job_seconds(code_jobs[item]) + _OUTER_GRACE_S
                    finish(item, Verdict.of("timeout", f"sandbox gave no answer within {limit:g}s"))

    def _drop_busy(self) -> None:
        for g in [g for g in self._graders if g.item is not None or not g.ready]:
            g.kill()
            self._graders.remove(g)
        for b in [b for b in self._boxes if b.item is not None]:
            b.sandbox.close()
            self._boxes.remove(b)

    def _replace_grader(self, g: _Grader) -> None:
        g.kill()
        g.item = None
        self._graders.remove(g)
        self._graders.append(self._new_grader())

    def _replace_box(self, b: _Box) -> None:
        b.sandbox.close()
        b.item = None
        self._boxes.remove(b)
        with contextlib.suppress(SandboxDied, OSError):
            self._boxes.append(_Box(self._new_sandbox()))

    def _new_sandbox(self) -> Sandbox:
        box = Sandbox(allow_unsafe=self.unsafe_no_sandbox)
        self.stats.sandboxes_started += 1
        return box

    def close(self) -> None:
        """Stop every worker and sandbox (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for g in self._graders:
            with contextlib.suppress(Exception):
                g.tx.send(None)
        for g in self._graders:
            with contextlib.suppress(subprocess.TimeoutExpired):
                g.proc.wait(2)
            g.kill()
        for b in self._boxes:
            b.sandbox.close()
        self._graders, self._boxes = [], []

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _filled(out: list[Verdict | None]) -> list[Verdict]:
    return [v if v is not None else Verdict.of("error", "not graded") for v in out]


def checked_verdict(v: Any) -> Verdict:
    """``v`` if it is a Verdict with a finite reward and a string status, else an ``error`` one:
    a custom verifier's NaN or infinite reward must never reach a mean or a loss."""
    if not isinstance(v, Verdict):
        return Verdict.of("error", f"verifier returned {type(v).__name__}, not a Verdict")
    r = v.reward
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r):
        return Verdict.of("error", f"verifier returned a non-finite or non-numeric reward {r!r}")
    if not isinstance(v.status, str):
        return Verdict.of("error", f"verifier returned a status that is not a string: {v.status!r}")
    return v if isinstance(r, float) else Verdict(float(r), v.status, v.detail)


def score_batch(rows: Sequence[Mapping[str, Any]], responses: Sequence[str], **pool_kwargs: Any) -> list[Verdict]:
    """Score one batch with a pool made for this call (use :class:`RewardPool` in loops)."""
    with RewardPool(**pool_kwargs) as pool:
        return pool.score(rows, responses)

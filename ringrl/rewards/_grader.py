"""Grader process entry point: ``python -m ringrl.rewards._grader``.

Reads pickled ``(fn, row, response)`` tasks from stdin and writes pickled Verdicts to
stdout (``multiprocessing.connection`` framing); for a chunk of a batched reward function,
``fn`` is ``score_many`` of lists and the answer a list of Verdicts. Started with
``subprocess`` rather than ``multiprocessing`` so that the caller's ``__main__`` is never
re-imported.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from multiprocessing.connection import Connection

from ringrl.rewards.types import Verdict


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints from verifiers must not corrupt the channel
    sys.stdout = sys.stderr
    rx, tx = Connection(0, writable=False), Connection(out_fd, readable=False)
    # Math-Verify logs a warning per internal timeout; the verdict already says "wrong".
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import ringrl.rewards.grading  # noqa: F401  (warm: Math-Verify and sympy imported once)

    try:
        import math_verify

        math_verify.parse("$1$")
    except Exception:
        pass
    tx.send("ready")
    while True:
        try:
            msg = rx.recv()
        except (EOFError, OSError):
            return
        except Exception as e:  # the verifier could not be unpickled (not importable here)
            tx.send(Verdict.of("error", f"could not load the verifier: {type(e).__name__}: {e}"))
            continue
        if msg is None:
            return
        try:
            fn, row, response = msg
            v = fn(row, response)  # a chunk's rows and responses give a list of Verdicts
            if isinstance(v, list) and isinstance(row, list):
                v = [x if isinstance(x, Verdict) else Verdict.of("error", "verifier returned no Verdict") for x in v]
            elif not isinstance(v, Verdict):
                v = Verdict.of("error", f"verifier returned {type(v).__name__}, not a Verdict")
        except Exception as e:
            v = Verdict.of("error", f"verifier raised {type(e).__name__}: {e}")
        tx.send(v)


if __name__ == "__main__":
    main()

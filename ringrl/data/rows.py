"""Dataset rows: the one format every stage reads (DESIGN.md, "Dataset rows").

A row is a JSON object with ``prompt`` (or ``problem``), a ``domain`` in
:data:`DOMAINS`, and what its verifier needs: ``answer`` for math, science and logic;
``tests`` for code (a list of ``{"input", "output"}`` pairs for stdin/stdout judging, or
a string of assert-style test code, optionally with ``entry_point``); ``response`` for
SFT rows. Extra fields are kept. Loading validates every row before any training
starts and names the file, line and field of the first bad one.

Chat-format rows give ``messages`` (a list of ``{"role", "content"}`` with roles
``system``, ``user``, ``assistant``) instead of ``prompt``/``response``: an SFT row's
conversation holds at least one assistant turn (the loss covers every assistant turn); an
RL or eval row's conversation ends with the user turn the model answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ringrl.errors import DataError, UserError
from ringrl.utils.io import iter_jsonl
from ringrl.utils.io import max_row_bytes as io_max_row_bytes

DOMAINS = ("math", "code", "science", "logic", "general")
ROLES = ("system", "user", "assistant")


def row_prompt(row: dict[str, Any]) -> str:
    """The user-facing question of a row (``prompt``, else ``problem``, else ``question``, else the
    last user turn of ``messages``)."""
    for key in ("prompt", "problem", "question"):
        value = row.get(key)
        if isinstance(value, str):
            return value
    messages = row.get("messages")
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                return str(m["content"])
    return ""


def check_messages(messages: Any, purpose: str) -> str | None:
    """What is wrong with a ``messages`` list for ``purpose``, or None."""
    if not isinstance(messages, list) or not messages:
        return "must be a non-empty list of {role, content} objects"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            return f"item {i} must be an object with 'role' and 'content'"
        if m["role"] not in ROLES:
            return f"item {i}: unknown role {m['role']!r} (one of {', '.join(ROLES)})"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"item {i}: 'content' must be a non-empty string"
        if m["role"] == "system" and i != 0:
            return f"item {i}: a system message may only come first"
    roles = [m["role"] for m in messages]
    if "user" not in roles:
        return "needs a user turn"
    if purpose == "sft":
        if "assistant" not in roles:
            return "needs an assistant turn (the SFT target)"
    elif roles[-1] != "user":
        return "must end with the user turn the model answers"
    return None


def check_row(row: dict[str, Any], purpose: str) -> tuple[str, str] | None:
    """Return ``(field, message)`` for the first problem of ``row`` for ``purpose``
    (``"sft"``, ``"rl"``, ``"eval"``, or ``"prompt"``: only a prompt, for rows a
    ``reward.function`` scores), or None when the row is usable."""
    if "messages" in row:
        problem = check_messages(row["messages"], purpose)
        if problem is not None:
            return "messages", problem
        if purpose == "sft":
            return None if row.get("domain", "general") in DOMAINS else ("domain", f"unknown domain {row['domain']!r}")
    elif not any(isinstance(v := row.get(k), str) and v.strip() for k in ("prompt", "problem", "question")):
        if any(k in row for k in ("prompt", "problem", "question")):
            return "prompt", "must be a non-empty string"
        return "prompt", "missing (a row needs 'prompt', 'problem' or 'messages')"
    if purpose == "prompt":
        return None
    if purpose == "rl":  # what RL can score is the verifier registry's decision (registered domains too)
        from ringrl.rewards.registry import row_problem

        return row_problem(row)
    domain = row.get("domain", "general" if purpose == "sft" else None)
    if domain is None:
        return "domain", f"missing (one of {', '.join(DOMAINS)})"
    if domain not in DOMAINS:
        return "domain", f"unknown domain {domain!r} (one of {', '.join(DOMAINS)})"
    if purpose == "sft":
        if "response" not in row:
            return "response", "missing (SFT rows need the target response)"
        if not isinstance(row["response"], str) or not row["response"]:
            return "response", "must be a non-empty string"
        return None
    if domain == "logic" and row.get("checker") == "countdown":
        for key in ("numbers", "target"):
            if key not in row:
                return key, "missing (countdown rows need 'numbers' and 'target')"
        return None
    if domain in ("math", "science", "logic"):
        if "answer" not in row:
            return "answer", f"missing ({domain} rows need the reference answer)"
        if not isinstance(row["answer"], (str, int, float)) or isinstance(row["answer"], bool):
            return "answer", "must be a string or a number"
    elif domain == "code":
        tests = row.get("tests", row.get("test_code"))
        if tests is None:
            return "tests", "missing (code rows need stdin/stdout pairs or assert-style test code)"
        if isinstance(tests, list):
            for i, t in enumerate(tests):
                if not isinstance(t, dict) or "input" not in t or "output" not in t:
                    return "tests", f"item {i} must be an object with 'input' and 'output'"
        elif not isinstance(tests, str):
            return "tests", "must be a list of {input, output} or a string of test code"
    return None


def load_rows(
    path: str | Path,
    purpose: str,
    limit: int | None = None,
    max_row_bytes: int | None = None,
    limit_key: str = "data.max_row_bytes",
) -> list[dict[str, Any]]:
    """Read and validate rows from a JSONL file, a Parquet file or a `datasets` folder.

    A row over ``max_row_bytes`` (default: :func:`ringrl.utils.io.max_row_bytes`) is an error
    naming its line, found before any row is tokenised; ``limit_key`` names the setting."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: data file not found")
    cap = max_row_bytes or io_max_row_bytes()
    rows: list[tuple[int | None, dict[str, Any]]]
    if p.is_dir() or p.suffix == ".parquet":
        rows = []
        for i, r in enumerate(load_table(p), start=1):
            size = sum(len(v.encode("utf-8", "replace")) for v in r.values() if isinstance(v, str))
            if size > cap:
                raise DataError(str(p), None, None, f"row {i} holds over {cap:,} bytes of text (raise {limit_key})")
            rows.append((None, r))
    else:
        rows = list(iter_jsonl(p, cap, limit_key))
    out = []
    for lineno, row in rows[: limit if limit else None]:
        problem = check_row(row, purpose)
        if problem is not None:
            field, message = problem
            raise DataError(str(p), lineno, field, message)
        out.append(row)
    if not out:
        raise UserError(f"{p}: no rows")
    return out


def load_table(p: Path) -> Iterable[dict[str, Any]]:
    """The rows of a Parquet file or a ``datasets`` folder (its ``train`` split, or its only one)."""
    if p.is_dir():
        try:
            import datasets
        except ImportError:
            raise UserError(f"{p}: reading a `datasets` folder needs `pip install datasets`") from None
        try:
            ds = datasets.load_from_disk(str(p))
        except Exception as e:  # datasets raises FileNotFoundError, ValueError, ... for a folder it cannot read
            raise UserError(
                f"{p}: not a `datasets` folder ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
            ) from None
        if hasattr(ds, "keys"):  # DatasetDict: take 'train' or the only split
            ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
        return list(ds)
    with p.open("rb") as f:
        head = f.read(4)
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 4))
        tail = f.read(4)
    if head != b"PAR1" or tail != b"PAR1":
        raise UserError(f"{p}: not a Parquet file (no PAR1 magic bytes); JSONL files end in .jsonl")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{p}: reading Parquet needs `pip install ringrl[parquet]` (pyarrow)") from None
    try:
        return pq.read_table(p).to_pylist()
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise UserError(f"{p}: unreadable Parquet file ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None

"""Answer extraction from model responses: the last ``\\boxed{...}`` and the last fenced code block.

Both are total and linear-time on the response (they search from the end with
``str.rfind``), so a response of megabytes costs milliseconds.
"""

from __future__ import annotations

import re

MAX_ANSWER_CHARS = 2000  # a boxed answer longer than this is not an answer
_BOX_TOKENS = ("\\boxed", "\\fbox")
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*$", re.M)


def _box_content(text: str, start: int) -> str | None:
    """Content of the box whose command ends at ``start`` (just after ``\\boxed``)."""
    i, n = start, len(text)
    while i < n and text[i] in " \t\n":
        i += 1
    if i >= n:
        return None
    if text[i] == "{":
        depth, j = 0, i
        while j < n:
            c = text[j]
            if c == "\\" and j + 1 < n:  # escaped brace (\{ \}) does not count
                j += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j].strip()
            j += 1
            if j - i > MAX_ANSWER_CHARS * 4:
                return None
        return None  # unbalanced: truncated response
    if start > 0 and text[start - 1].isalpha() and text[i - 1] not in " \t\n":
        return None  # e.g. \boxedx is a different macro
    m = re.match(r"[^\s$]+", text[i : i + MAX_ANSWER_CHARS])  # \boxed 5 (TeX without braces)
    return m.group(0) if m else None


def extract_last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``).

    Braces are balanced; a box nested in another yields the innermost last one. If the
    last box is unbalanced (a truncated response), earlier boxes are tried.
    """
    if not isinstance(text, str):
        return None
    end = len(text)
    for _ in range(64):
        pos, tok = max((text.rfind(t, 0, end), t) for t in _BOX_TOKENS)
        if pos < 0:
            return None
        content = _box_content(text, pos + len(tok))
        if content is not None and len(content) <= MAX_ANSWER_CHARS:
            return content
        end = pos
    return None


def extract_code_block(text: str) -> tuple[str, str] | None:
    """``(language, code)`` of the last fenced code block (```` ``` ```` or ``~~~``).

    A final block that was opened but never closed (truncated response) counts. The
    language is the lower-cased info string (``""`` when absent).
    """
    if not isinstance(text, str):
        return None
    fences = list(_FENCE.finditer(text))
    if not fences:
        return None
    last: tuple[str, str] | None = None
    i = 0
    while i < len(fences):
        opening = fences[i]
        mark = opening.group(1)
        j = i + 1
        while j < len(fences) and not (fences[j].group(1).startswith(mark[0] * len(mark)) and not fences[j].group(2)):
            j += 1
        body_start = opening.end() + 1
        body_end = fences[j].start() if j < len(fences) else len(text)
        last = (opening.group(2).lower(), text[body_start:body_end] if body_start <= body_end else "")
        i = j + 1
    return last
